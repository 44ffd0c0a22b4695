"""Where a model's torch side runs: the surrogate (and a TorchScript runtime) on the CPU or one CUDA GPU.

onnxruntime's execution providers are chosen from the same device in `ecgaudit.models.onnx`.
"""

from __future__ import annotations

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
