"""Converters for what torch's exporters write at opsets 18-21, and for recurrent layers.

* Version aliases: an op whose newer versions only widened its type list (Shape-19/21, Constant-19/21,
  Identity-19/21, Unsqueeze/Transpose/Flatten-21, ConstantOfShape-20/21, Size, IsInf/IsNaN-20,
  Equal-19, AveragePool-19 without dilations) reuses onnx2torch's converter for the previous version.
* New semantics: `Pad` with an `axes` input (18) and `wrap` mode (19), `Split` with `num_outputs` (18),
  `CastLike` (15/19/21, through the same cast modules as `Cast`), `Size`, `GroupNormalization` (21).
* `LSTM` and `GRU` (7/14) as torch's own `nn.LSTM` / `nn.GRU` with the ONNX weights reordered (ONNX gates
  i, o, f, c and z, r, h; torch's i, f, g, o and r, z, n), for the forms torch's exporters write: default
  activations, no clip or peepholes, forward or bidirectional, layout 0, GRU with `linear_before_reset=1`.
Anything outside those forms raises NotImplementedError, which names the op in `surrogate_error`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from onnx2torch.node_converters import registry
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxMapping, OnnxToTorchModule, OperationConverterResult
from torch import nn

from ecgaudit.models import bpda
from ecgaudit.models.bpda import result

Converter = registry.TConverter

ALIASES: dict[tuple[str, int], int] = {
    ("Shape", 19): 15, ("Shape", 21): 15,
    ("Constant", 19): 13, ("Constant", 21): 13,
    ("Identity", 19): 16, ("Identity", 21): 16,
    ("Unsqueeze", 21): 13, ("Transpose", 21): 13, ("Flatten", 21): 13,
    ("ConstantOfShape", 20): 9, ("ConstantOfShape", 21): 9,
    ("IsInf", 20): 10, ("IsNaN", 20): 13, ("Equal", 19): 13,
}
"""(op type, since-version) -> the onnx2torch version whose converter computes the same thing."""


def _elem_type(name: str, graph: OnnxGraph) -> int | None:
    if name in graph.initializers:
        return int(graph.initializers[name].proto.data_type)
    info = graph.value_info.get(name)
    if info is not None and info.type.tensor_type.elem_type:
        return int(info.type.tensor_type.elem_type)
    return None


# ---- Pad, Split, Size, CastLike --------------------------------------------------------------------

class OnnxPadAxes(nn.Module, OnnxToTorchModule):
    """ONNX Pad (18+): `pads` for the listed `axes` (all when absent); constant, reflect, edge or wrap."""

    _TORCH_MODES = {"reflect": "reflect", "edge": "replicate", "wrap": "circular"}

    def __init__(self, mode: str) -> None:
        super().__init__()
        if mode != "constant" and mode not in self._TORCH_MODES:
            raise NotImplementedError(f"Pad with mode={mode!r}")
        self.mode = mode

    def forward(self, x: torch.Tensor, pads: torch.Tensor, constant_value: torch.Tensor | None = None,
                axes: torch.Tensor | None = None) -> torch.Tensor:
        rank = x.dim()
        axes_list = list(range(rank)) if axes is None else [int(a) % rank for a in axes.tolist()]
        values = [int(v) for v in pads.tolist()]
        n = len(axes_list)
        begin = {a: values[i] for i, a in enumerate(axes_list)}
        end = {a: values[i + n] for i, a in enumerate(axes_list)}
        padded = [a for a in range(rank) if begin.get(a, 0) or end.get(a, 0)]
        if not padded:
            return x
        first = min(padded)
        torch_pads: list[int] = []
        for axis in reversed(range(first, rank)):
            torch_pads += [begin.get(axis, 0), end.get(axis, 0)]
        if self.mode == "constant":
            value = 0.0 if constant_value is None or constant_value.numel() == 0 else float(constant_value)
            return F.pad(x, torch_pads, mode="constant", value=value)
        if rank - first > 3 or min(torch_pads) < 0:
            raise NotImplementedError(f"Pad mode {self.mode!r} over {rank - first} trailing axes or cropping")
        # torch's other modes want (batch, channel, 1-3 padded axes): fold the leading axes into one batch.
        lead = x.shape[:first]
        folded = x.reshape(-1, 1, *x.shape[first:])
        out = F.pad(folded, torch_pads, mode=self._TORCH_MODES[self.mode])
        return out.reshape(*lead, *out.shape[2:])


def _convert_pad(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(OnnxPadAxes(str(node.attributes.get("mode", "constant"))), node)


class OnnxSplitOutputs(nn.Module, OnnxToTorchModule):
    """ONNX Split-18: by the `split` input, or into `num_outputs` chunks of ceil(dim / n) (last smaller)."""

    def __init__(self, axis: int, num_outputs: int) -> None:
        super().__init__()
        self.axis = axis
        self.num_outputs = num_outputs

    def forward(self, x: torch.Tensor, split: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        if split is not None:
            return tuple(torch.split(x, [int(s) for s in split.tolist()], dim=self.axis))
        return tuple(torch.split(x, math.ceil(x.shape[self.axis] / self.num_outputs), dim=self.axis))


def _convert_split(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    count = int(node.attributes.get("num_outputs", len(node.output_values)))
    return result(OnnxSplitOutputs(int(node.attributes.get("axis", 0)), count), node)


class OnnxSize(nn.Module, OnnxToTorchModule):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor(x.numel(), dtype=torch.int64, device=x.device)


def _convert_size(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(OnnxSize(), node)


class OnnxCastLike(nn.Module, OnnxToTorchModule):
    """CastLike(x, like) = Cast(x, to=like's type); `like` is only read for its type."""

    def __init__(self, cast: nn.Module | None) -> None:
        super().__init__()
        self.cast = cast

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return x.to(like.dtype) if self.cast is None else self.cast(x)


def _convert_cast_like(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    target = _elem_type(node.input_values[1], graph)
    cast = None if target is None else bpda.cast_module(target, bpda.on_value_path(node, graph), "CastLike")
    return result(OnnxCastLike(cast), node)


class OnnxGroupNorm(nn.Module, OnnxToTorchModule):
    """ONNX GroupNormalization-21: per-channel scale and bias (version 18, per group, fails the ONNX checker
    as deprecated, so such a model never gets this far)."""

    def __init__(self, num_groups: int, epsilon: float) -> None:
        super().__init__()
        self.num_groups, self.epsilon = num_groups, epsilon

    def forward(self, x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.num_groups, scale.to(x.dtype), bias.to(x.dtype), self.epsilon)


def _convert_group_norm(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    if int(node.attributes.get("stash_type", 1)) != 1:
        raise NotImplementedError("GroupNormalization with stash_type other than float32")
    groups, epsilon = int(node.attributes["num_groups"]), float(node.attributes.get("epsilon", 1e-5))
    return result(OnnxGroupNorm(groups, epsilon), node)


def _convert_average_pool(original: Converter) -> Converter:
    def convert(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
        if any(d != 1 for d in node.attributes.get("dilations", [])):
            raise NotImplementedError("AveragePool with dilations")
        return original(node, graph)

    return convert


# ---- recurrent layers ------------------------------------------------------------------------------

_GATES = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2]}
"""For torch's gate order (LSTM i, f, g, o; GRU r, z, n), the index of each gate in ONNX's (i, o, f, c; z, r, h)."""


class OnnxRecurrent(nn.Module, OnnxToTorchModule):
    """ONNX LSTM / GRU through torch's own layer, its weights taken from the node's inputs on each call
    (they may be initializers or computed in the graph); returns the node's outputs (Y, Y_h[, Y_c])."""

    def __init__(self, op_type: str, hidden: int, n_outputs: int) -> None:
        super().__init__()
        self.kind = nn.LSTM if op_type == "LSTM" else nn.GRU
        self.hidden = hidden
        self.gate_order = _GATES[op_type]
        self.n_outputs = n_outputs
        self.layers: dict[tuple[int, int], nn.Module] = {}

    def _layer(self, input_size: int, n_dir: int) -> nn.Module:
        """A torch layer of the right sizes, used only for its forward (its parameters are replaced)."""
        key = (input_size, n_dir)
        if key not in self.layers:
            self.layers[key] = self.kind(input_size, self.hidden, bidirectional=n_dir == 2).eval()
        return self.layers[key]

    def _weights(self, w: torch.Tensor, r: torch.Tensor, b: torch.Tensor | None) -> dict[str, torch.Tensor]:
        hidden, gates = self.hidden, len(self.gate_order)

        def reorder(t: torch.Tensor) -> torch.Tensor:
            return torch.cat([t[i * hidden : (i + 1) * hidden] for i in self.gate_order], dim=0)

        params = {}
        for d in range(w.shape[0]):
            suffix = "_reverse" if d == 1 else ""
            bias = b[d] if b is not None else w.new_zeros(2 * gates * hidden)
            params[f"weight_ih_l0{suffix}"] = reorder(w[d])
            params[f"weight_hh_l0{suffix}"] = reorder(r[d])
            params[f"bias_ih_l0{suffix}"] = reorder(bias[: gates * hidden])
            params[f"bias_hh_l0{suffix}"] = reorder(bias[gates * hidden :])
        return params

    def forward(self, x: torch.Tensor, w: torch.Tensor, r: torch.Tensor, b: torch.Tensor | None = None,
                sequence_lens: torch.Tensor | None = None, initial_h: torch.Tensor | None = None,
                initial_c: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if sequence_lens is not None and bool((sequence_lens != x.shape[0]).any()):
            raise NotImplementedError("LSTM/GRU with sequences shorter than the input")
        n_dir, hidden = w.shape[0], self.hidden
        layer = self._layer(int(w.shape[2]), int(n_dir))
        zeros = x.new_zeros(n_dir, x.shape[1], hidden)
        h0 = zeros if initial_h is None else initial_h.to(x.dtype)
        params = self._weights(w.to(x.dtype), r.to(x.dtype), None if b is None else b.to(x.dtype))
        if self.kind is nn.LSTM:
            c0 = zeros if initial_c is None else initial_c.to(x.dtype)
            y, (h_n, c_n) = torch.func.functional_call(layer, params, (x, (h0, c0)))
            states: tuple[torch.Tensor, ...] = (h_n, c_n)
        else:
            y, h_n = torch.func.functional_call(layer, params, (x, h0))
            states = (h_n,)
        y = y.reshape(y.shape[0], y.shape[1], n_dir, hidden).permute(0, 2, 1, 3)  # (seq, dir, batch, H)
        outputs = (y, *states)
        return outputs[0] if self.n_outputs == 1 else outputs[: self.n_outputs]


def _convert_recurrent(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    op = node.operation_type
    attrs = node.attributes
    names = list(node.input_values) + [""] * (8 - len(node.input_values))
    unsupported = [
        ("direction='reverse'", str(attrs.get("direction", "forward")) == "reverse"),
        ("clip", "clip" in attrs),
        ("non-default activations", "activations" in attrs or "activation_alpha" in attrs),
        ("input_forget", int(attrs.get("input_forget", 0)) != 0),
        ("peepholes", op == "LSTM" and bool(names[7])),
        ("linear_before_reset=0", op == "GRU" and int(attrs.get("linear_before_reset", 0)) != 1),
        ("no hidden_size", "hidden_size" not in attrs),
        ("layout=1", int(attrs.get("layout", 0)) != 0),  # onnxruntime's CPU kernels refuse it too
    ]
    reasons = [what for what, bad in unsupported if bad]
    if reasons:
        raise NotImplementedError(f"{op} with {', '.join(reasons)}")
    module = OnnxRecurrent(op, int(attrs["hidden_size"]), len(node.output_values))
    mapping = OnnxMapping(inputs=tuple(node.input_values[:7]), outputs=node.output_values)
    return result(module, node, mapping)


def converters() -> dict[tuple[str, int], Converter]:
    """New converters by (op type, since-version); none replaces one of onnx2torch's."""
    original = registry._CONVERTER_REGISTRY
    table: dict[tuple[str, int], Converter] = {}
    for (op_type, version), base in ALIASES.items():
        table[(op_type, version)] = original[registry.OperationDescription("", op_type, base)]
    for version in (18, 19, 21):
        table[("Pad", version)] = _convert_pad
    table[("Split", 18)] = _convert_split
    for version in (1, 13, 19, 21):
        table[("Size", version)] = _convert_size
    for version in (15, 19, 21):
        table[("CastLike", version)] = _convert_cast_like
    table[("AveragePool", 19)] = _convert_average_pool(
        original[registry.OperationDescription("", "AveragePool", 11)])
    table[("GroupNormalization", 21)] = _convert_group_norm
    for op_type in ("LSTM", "GRU"):
        for version in (7, 14):
            table[(op_type, version)] = _convert_recurrent
    return table
