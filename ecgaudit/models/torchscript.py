"""TorchScript models: `torch.jit.load` on the chosen device serves as both runtime and gradient source."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecgaudit.card import ModelCard
from ecgaudit.errors import ModelError
from ecgaudit.models.device import CPU
from ecgaudit.models.extra_inputs import Declared, ecg_input_name
from ecgaudit.models.interface import ModelAdapter


class TorchScriptAdapter(ModelAdapter):
    format = "torchscript"

    def __init__(self, path: Path, card: ModelCard, *, device: torch.device = CPU) -> None:
        super().__init__(path, card, device=device, threads=None)
        try:
            # map_location puts a CUDA-saved archive where asked (no GPU touched for cpu); the archive is still code.
            with warnings.catch_warnings():
                # torch marks TorchScript deprecated; vendors still ship it, so the notice is noise here.
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(path), map_location=device)
        except Exception as exc:  # torch raises RuntimeError/ValueError variants for bad archives
            raise ModelError(f"{path.name} is not a loadable TorchScript archive.") from exc
        self.module = module.eval()
        for param in self.module.parameters():
            param.requires_grad_(False)
        self.n_parameters = int(sum(p.numel() for p in self.module.parameters()))
        declared = _declared_inputs(self.module)
        self.input_name = ecg_input_name(declared, card, path.name) if declared else "input"
        self.input_order = [name for name, _, _ in declared] or [self.input_name]

    def _call(self, inputs: torch.Tensor) -> torch.Tensor:
        extras = {name: torch.from_numpy(array).to(inputs.device)
                  for name, array in self.extra_arrays(len(inputs)).items()}
        args = [inputs if name == self.input_name else extras[name] for name in self.input_order]
        try:
            out = self.module(*args)
        except Exception as exc:  # a scripted forward can raise anything
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path.name} raised in forward: {first}") from exc
        return out[0] if isinstance(out, (tuple, list)) else out

    def _runtime_forward(self, inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self._call(torch.from_numpy(inputs).to(self.device)).cpu().numpy()

    def _surrogate_forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self._call(inputs)

    def runtime_info(self) -> dict[str, Any]:
        return {
            "runtime": "torchscript",
            "version": torch.__version__,
            "surrogate": "torchscript",
            "n_parameters": self.n_parameters,
            "device": str(self.device),
        }


def _declared_inputs(module: torch.jit.ScriptModule) -> list[Declared]:
    """forward's required arguments (TorchScript records names and types, not shapes)."""
    try:
        arguments = list(module.forward.schema.arguments)[1:]
    except (AttributeError, RuntimeError):  # an archive without a scripted forward: call it with one input
        return []
    return [(a.name, None, str(a.type)) for a in arguments if not a.has_default_value()]
