"""Where a model's torch side runs: the surrogate (and a TorchScript runtime) on the CPU or one CUDA GPU; and the
CPU itself, as far as it decides what the runtime computes (`cpu_description`).

onnxruntime's execution providers are chosen from the same device in `ecgaudit.models.onnx`.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch

from ecgaudit.errors import DeviceError

CPU = torch.device("cpu")


def resolve_device(name: str | torch.device) -> torch.device:
    """`cpu`, `cuda` or `cuda:N` -> a concrete torch device (`cuda` -> the current GPU's index).

    A GPU that is not there is a `DeviceError`. On a GPU, float32 arithmetic is made exact IEEE (no TF32):
    the surrogate must agree with the vendor's float32 runtime to the parity tolerance, which TF32's
    10-bit mantissa does not.
    """
    try:
        device: torch.device | None = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise DeviceError(f"--device {name}: not a device ecgaudit can use; give cpu, cuda or cuda:N.")
    if device.type == "cpu":
        return CPU
    if not torch.cuda.is_available():
        raise DeviceError(f"--device {name}: no CUDA GPU is visible to torch on this machine; run with --device cpu.")
    count = torch.cuda.device_count()
    index = torch.cuda.current_device() if device.index is None else device.index
    if index >= count:
        raise DeviceError(f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}; "
                          "pick one of those.")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch.device("cuda", index)


INT8_INSTRUCTIONS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")
"""x86 extensions that decide how onnxruntime's int8 kernels compute (see `cpu_description`)."""


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """The CPU, and whether onnxruntime's int8 (u8s8) kernels do exact integer arithmetic on it: with VNNI or AMX
    they do; on AVX2 without them, pairs of 8-bit products are summed into saturating 16-bit integers
    (onnxruntime's documentation warns of it), so an int8 model can decide differently on two CPUs."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        lines = cpuinfo.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            name = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
            break
    have = [flag for flag in INT8_INSTRUCTIONS if flag in flags]
    if not flags:
        exact = None
    else:
        exact = bool({"avx512_vnni", "avx_vnni", "amx_int8"} & flags) or "avx2" not in flags
    return {"model": name, "machine": platform.machine(), "int8_instructions": have, "int8_exact": exact}
