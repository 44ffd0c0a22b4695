"""ONNX convolution semantics in torch: `auto_pad`, asymmetric `pads`, strides, dilations and groups.

Shared by the float `Conv` with strided `SAME_*` padding (whose pads depend on the input length, so they
are computed per call) and by the integer convolutions (`ConvInteger`, `QLinearConv`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def same_pads(lengths: Sequence[int], kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
              mode: str) -> list[int]:
    """Begin pads then end pads, as the ONNX spec defines SAME_UPPER / SAME_LOWER.

    Per axis: out = ceil(in / stride), total = max(0, (out - 1) * stride + (k - 1) * dilation + 1 - in);
    SAME_UPPER puts total // 2 at the beginning and the rest at the end, SAME_LOWER the reverse.
    """
    begins, ends = [], []
    for size, k, s, d in zip(lengths, kernel, strides, dilations, strict=True):
        total = max(0, (math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size)
        small, large = total // 2, total - total // 2
        begins.append(small if mode == "SAME_UPPER" else large)
        ends.append(large if mode == "SAME_UPPER" else small)
    return begins + ends


def conv_nd(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, attributes: Mapping[str, Any]
            ) -> torch.Tensor:
    """ONNX Conv on `x` `(N, C, *spatial)` with weights `(M, C / group, *kernel)`."""
    rank = x.dim() - 2
    if rank not in _CONV:
        raise NotImplementedError(f"a {rank}-D convolution")
    kernel = list(attributes.get("kernel_shape") or w.shape[2:])
    strides = list(attributes.get("strides") or [1] * rank)
    dilations = list(attributes.get("dilations") or [1] * rank)
    mode = attributes.get("auto_pad", "NOTSET")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        pads = same_pads(list(x.shape[2:]), kernel, strides, dilations, mode)
    elif mode == "VALID":
        pads = [0] * (2 * rank)
    else:
        pads = list(attributes.get("pads") or [0] * (2 * rank))
    if any(pads):
        # F.pad takes (last-axis begin, last-axis end, previous axis ...).
        torch_pads: list[int] = []
        for axis in reversed(range(rank)):
            torch_pads += [pads[axis], pads[axis + rank]]
        x = F.pad(x, torch_pads)
    return _CONV[rank](x, w.to(x.dtype), None if bias is None else bias.to(x.dtype), stride=strides,
                       dilation=dilations, groups=int(attributes.get("group", 1)))
