"""`ModelAdapter`: one interface over a vendor's model, whatever its format.

Callers always pass millivolts in standard lead order at the card's `fs`, shaped `(N, L, T)`.
The adapter runs the vendor's preprocessing, scaling and layout inside, differentiably, so an
attack perturbs the signal as it would reach the device.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ecgaudit.card import FilterStep, ModelCard
from ecgaudit.dsp import apply_filter_step
from ecgaudit.errors import CardError, ModelError, NonFiniteOutput
from ecgaudit.io import file_sha256
from ecgaudit.models.bpda import BPDA, WHITE_BOX, GradientSwitch, masking_modules
from ecgaudit.models.device import CPU
from ecgaudit.normalise import NormaliseStep, apply_normalise_step

ABANDONED_THREADS: list[threading.Thread] = []
"""Model calls given up on after `timeout_s`; the CLI must not wait for them at exit."""

PARITY_TOLERANCE = 1e-3
"""Largest allowed |runtime - surrogate| on output probabilities before the surrogate is refused."""

PROBABILITY_SLACK = 1e-4
"""How far outside [0, 1] an output may stray (rounding) before a card saying `probabilities` is wrong."""


def apply_step(x: torch.Tensor, fs: float, step: FilterStep | NormaliseStep) -> torch.Tensor:
    """One card preprocessing step on `(N, L, T)` signals: a filter or a per-record normalisation."""
    if isinstance(step, NormaliseStep):
        return apply_normalise_step(x, step)
    return apply_filter_step(x, fs, step)


def prepare_input(card: ModelCard, x_mv: torch.Tensor) -> torch.Tensor:
    """Apply the vendor's preprocessing, scaling and layout, differentiably.

    Shapes: `(N, L, T)` mV -> `(N, L, T)` for layout NCT or `(N, T, L)` for NTC.
    """
    x = x_mv
    for step in card.preprocessing:
        x = apply_step(x, card.fs, step)
    scaling = card.scaling
    if scaling["kind"] == "affine":
        x = x * float(scaling["scale"]) + float(scaling["offset"])
    elif scaling["kind"] == "standardize":
        mean = torch.tensor(scaling["mean"], dtype=x.dtype, device=x.device).view(1, -1, 1)
        std = torch.tensor(scaling["std"], dtype=x.dtype, device=x.device).view(1, -1, 1)
        x = (x - mean) / std
    if card.layout == "NTC":
        x = x.transpose(1, 2)
    return x.contiguous()


class ModelAdapter(ABC):
    """A vendor model: `predict` on its own runtime, `torch_forward` for gradients."""

    format: ClassVar[str]

    def __init__(
        self, path: Path, card: ModelCard, *, fixed_batch: int | None = None, sha256: str | None = None,
        device: torch.device = CPU, threads: int | None = None,
    ) -> None:
        self.path = path
        self.card = card
        self.sha256 = file_sha256(path) if sha256 is None else sha256
        self.fixed_batch = fixed_batch
        """The batch size baked into the graph, or None when the batch axis is dynamic."""
        self.device = device
        """Where the surrogate (and a TorchScript runtime) runs; `torch_forward` hands logits back on its input's
        device, so attacks keep their tensors on the CPU."""
        self.threads = threads
        """onnxruntime's intra-op threads (None: its default); torch's are process-wide."""
        self.parity_max_abs_diff: float | None = None
        self.timeout_s: float | None = None
        """Per-batch limit on the vendor runtime; a batch that runs longer stops the audit."""
        self.surrogate_error: str | None = None
        """Why no differentiable surrogate exists (one sentence naming the operator), or None."""
        self.bpda_ops: tuple[str, ...] = ()
        """ONNX op types on the signal's path whose backward is straight-through in `bpda` mode."""
        self.findings: list[str] = []
        """What the load probe saw that is worth a reviewer's attention (e.g. NaN on a flat lead)."""
        self.extra_dtypes: dict[str, str] = {extra.name: extra.dtype for extra in card.extra_inputs}
        """The dtype each extra input is fed as (ONNX: the graph's declared type; TorchScript: the card's)."""
        self._switch = GradientSwitch()

    def attach_surrogate(self, module: torch.nn.Module) -> None:
        """Hand this adapter's gradient switch to the surrogate's masking operators, and list them."""
        masking = masking_modules(module)
        for m in masking:
            m.switch = self._switch
        self.bpda_ops = tuple(sorted({m.op_type for m in masking}))

    @property
    def gradient_modes(self) -> tuple[str, ...]:
        """The backward passes the surrogate offers: `()` without a surrogate, `("white-box",)` when it is
        exactly differentiable, `("white-box", "bpda")` when some operators mask the gradient."""
        if self.surrogate_error is not None:
            return ()
        return (WHITE_BOX, BPDA) if self.bpda_ops else (WHITE_BOX,)

    @contextmanager
    def gradient_mode(self, mode: str) -> Iterator[None]:
        """Select the backward of the graphs `torch_forward` builds inside the block (default white-box).

        `white-box` is the surrogate's true gradient (zero through Round, quantisation ...); `bpda`
        replaces the backward of `bpda_ops` by the identity. The forward is the same in both modes.
        """
        if mode not in self.gradient_modes:
            offered = ", ".join(self.gradient_modes) or "none"
            why = f" ({self.surrogate_error})" if self.surrogate_error else ""
            raise ModelError(
                f"{self.path.name} offers no '{mode}' gradients (it offers: {offered}){why}; use one of those."
            )
        previous = self._switch.mode
        self._switch.mode = mode
        try:
            yield
        finally:
            self._switch.mode = previous

    # -- what each format provides -------------------------------------------------------------
    @abstractmethod
    def _runtime_forward(self, inputs: np.ndarray) -> np.ndarray:
        """Run the vendor's runtime on model-ready inputs (scaled, in the model's layout), with the card's
        extra inputs beside them."""

    @abstractmethod
    def _surrogate_forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Differentiable forward on model-ready inputs; returns the model's raw outputs."""

    @abstractmethod
    def runtime_info(self) -> dict[str, Any]:
        """Runtime name and version, parameter count and format details, for reports."""

    def runtime_placement(self) -> str:
        """Where the vendor's runtime actually runs, in words (execution provider or device, and why); a torch
        runtime runs on the adapter's device."""
        return f"{self.runtime_info().get('runtime', self.format)} on {self.device}"

    def placement(self) -> dict[str, Any]:
        """Requested device, the surrogate's device and the runtime's placement, for the report's environment."""
        return {"device": str(self.device),
                "surrogate_device": None if self.surrogate_error is not None else str(self.device),
                "runtime": self.runtime_placement()}

    # -- shared behaviour ----------------------------------------------------------------------
    def prepare(self, x_mv: torch.Tensor) -> torch.Tensor:
        """mV in standard order -> the tensor the model consumes; see `prepare_input`."""
        return prepare_input(self.card, x_mv)

    def _check_input(self, shape: tuple[int, ...]) -> None:
        expected = (len(self.card.leads), self.card.n_samples)
        if len(shape) != 3 or tuple(shape[1:]) != expected:
            raise ModelError(
                f"signals shaped {tuple(shape)} do not fit the model, which takes (N, {expected[0]}, {expected[1]}) "
                f"(leads x samples at {self.card.fs:g} Hz)."
            )

    def _check_output(self, raw: np.ndarray, n_records: int) -> None:
        if raw.ndim != 2 or raw.shape[0] != n_records:
            raise ModelError(f"model {self.path.name} returned outputs shaped {raw.shape}; expected (N, classes).")
        if raw.shape[1] != self.card.n_classes:
            raise CardError(
                f"model {self.path.name} outputs {raw.shape[1]} values per record but its card lists "
                f"{self.card.n_classes} classes (field 'classes')."
            )
        if not np.all(np.isfinite(raw)):
            rows = tuple(int(i) for i in np.flatnonzero(~np.isfinite(raw).all(axis=1)))
            raise NonFiniteOutput(f"model {self.path.name} produced NaN or infinite outputs on {len(rows)} of "
                                  f"{n_records} records; it cannot be audited on them.", rows)
        if self.card.output == "probabilities":
            low, high = float(raw.min()), float(raw.max())
            if low < -PROBABILITY_SLACK or high > 1 + PROBABILITY_SLACK:
                raise CardError(
                    f"the card of {self.path.name} says its outputs are probabilities, but the model returned "
                    f"values from {low:.4g} to {high:.4g}, outside [0, 1]; if they are logits, set "
                    "\"output\": \"logits\" in the card (or --output-kind logits)."
                )

    def extra_arrays(self, n_records: int) -> dict[str, np.ndarray]:
        """The card's constant extra inputs for `n_records` records, by input name."""
        return {extra.name: extra.array(n_records).astype(self.extra_dtypes[extra.name], copy=False)
                for extra in self.card.extra_inputs}

    def _chunks(self, n_records: int, batch_size: int) -> list[tuple[int, int]]:
        size = self.fixed_batch or batch_size
        return [(start, min(start + size, n_records)) for start in range(0, n_records, size)]

    def _run_batched(self, x: Any, n_records: int, batch_size: int, run: Callable[[Any], Any], cat: Callable) -> Any:
        """Run `run` over chunks, padding the last chunk when the graph's batch size is fixed."""
        outputs = []
        for start, stop in self._chunks(n_records, batch_size):
            chunk = x[start:stop]
            if self.fixed_batch and stop - start < self.fixed_batch:
                pad = self.fixed_batch - (stop - start)
                filler = chunk[-1:].repeat(pad, *([1] * (chunk.ndim - 1))) if isinstance(chunk, torch.Tensor) \
                    else np.repeat(chunk[-1:], pad, axis=0)
                chunk = cat([chunk, filler])
                outputs.append(run(chunk)[: stop - start])
            else:
                outputs.append(run(chunk))
        return cat(outputs)

    def _timed_runtime_forward(self, inputs: np.ndarray) -> np.ndarray:
        """The runtime call, abandoned (never waited on) when it overruns `timeout_s`."""
        if self.timeout_s is None:
            return np.asarray(self._runtime_forward(inputs))
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["out"] = np.asarray(self._runtime_forward(inputs))
            except BaseException as exc:  # handed back to the caller's thread below
                box["error"] = exc

        # A daemon thread: a hung model cannot be interrupted, but it must not keep the process alive.
        worker = threading.Thread(target=work, name="ecgaudit-model", daemon=True)
        worker.start()
        worker.join(self.timeout_s)
        if worker.is_alive():
            ABANDONED_THREADS.append(worker)
            raise ModelError(
                f"{self.path.name} took longer than {self.timeout_s:g} s on one batch of {len(inputs)} records "
                "(--model-timeout); the audit was stopped."
            )
        if "error" in box:
            raise box["error"]
        return box["out"]

    def raw_predict(self, x_mv: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """The vendor runtime's raw outputs (logits or probabilities, as the card says).

        Shapes: `(N, L, T)` mV -> `(N, K)`.
        """
        self._check_input(x_mv.shape)

        def run(chunk: np.ndarray) -> np.ndarray:
            # The card's preprocessing works on each record alone, so it runs a chunk at a time: memory then
            # grows with the batch, not with the number of records.
            with torch.no_grad():
                inputs = self.prepare(torch.as_tensor(np.ascontiguousarray(chunk), dtype=torch.float32)).numpy()
            return self._timed_runtime_forward(inputs)

        raw = self._run_batched(x_mv, len(x_mv), batch_size, run, np.concatenate)
        self._check_output(raw, len(x_mv))
        return raw.astype(np.float32)

    def predict(self, x_mv: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """Class probabilities from the vendor's own runtime: every reported rate is measured here.

        Shapes: `(N, L, T)` mV -> `(N, K)` probabilities (softmax rows, or independent sigmoids).
        """
        raw = self.raw_predict(x_mv, batch_size=batch_size)
        return self.to_probabilities(raw)

    def to_probabilities(self, raw: np.ndarray) -> np.ndarray:
        if self.card.output == "probabilities":
            return raw
        if self.card.multilabel:
            return (1.0 / (1.0 + np.exp(-raw.astype(np.float64)))).astype(raw.dtype)
        shifted = raw - raw.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=1, keepdims=True)

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """The model's decision: class index `(N,)` for single-label, multi-hot `(N, K)` bool for multi-label."""
        if self.card.multilabel:
            assert self.card.thresholds is not None
            return probabilities >= np.asarray(self.card.thresholds, dtype=probabilities.dtype)
        return probabilities.argmax(axis=1)

    def torch_forward(self, x_mv: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
        """Differentiable logits for cross-entropy (multiclass) or BCE-with-logits (multilabel): the raw
        outputs for a logits model, log(p) or logit(p) for a probabilities one. The backward is the one
        `gradient_mode` selects.

        Shapes: `(N, L, T)` mV -> `(N, K)`.
        """
        if self.surrogate_error is not None:
            raise ModelError(self.surrogate_error)
        self._check_input(tuple(x_mv.shape))
        # Autograd follows both copies, so attacks keep their tensors on the CPU whatever the device.
        inputs = self.prepare(x_mv.to(self.device))
        raw = self._run_batched(inputs, inputs.shape[0], batch_size, self._surrogate_forward, torch.cat)
        if self.card.output == "logits":
            logits = raw
        elif self.card.multilabel:
            p = raw.clamp(1e-7, 1 - 1e-7)
            logits = torch.log(p) - torch.log1p(-p)
        else:
            logits = torch.log(raw.clamp_min(1e-12))
        return logits.to(x_mv.device)

    def surrogate_probabilities(self, x_mv: torch.Tensor) -> torch.Tensor:
        logits = self.torch_forward(x_mv)
        return torch.sigmoid(logits) if self.card.multilabel else torch.softmax(logits, dim=1)

    def check_parity(self, x_mv: np.ndarray, *, tolerance: float = PARITY_TOLERANCE,
                     refuse: bool = True) -> float | None:
        """Compare runtime and surrogate probabilities on real inputs; refuse the surrogate if they differ.

        Records and returns the max abs difference (`parity_max_abs_diff`); None, without error, when the
        model has no surrogate (`surrogate_error` says why). When they differ, `refuse` raises `ModelError`;
        without it the surrogate is dropped instead (`surrogate_error` names the gap), so the audit goes on
        runtime-only, with transfer and black-box attacks: a model whose copy cannot be trusted on these records
        is still audited, as one with no copy at all is.
        """
        if self.surrogate_error is not None:
            self.parity_max_abs_diff = None
            return None
        runtime = self.predict(x_mv)
        with torch.no_grad():
            surrogate = self.surrogate_probabilities(torch.as_tensor(x_mv, dtype=torch.float32)).numpy()
        diff = float(np.max(np.abs(runtime - surrogate)))
        self.parity_max_abs_diff = diff
        if not diff <= tolerance:
            if refuse:
                raise ModelError(
                    f"the differentiable copy of {self.path.name} disagrees with its runtime by {diff:.3g} "
                    f"(tolerance {tolerance:g}); gradients from it cannot be trusted."
                )
            self.surrogate_error = (
                f"parity {diff:.3g} > {tolerance:g} on these records: the differentiable copy of {self.path.name} "
                "disagrees with its runtime on the audit's data, so gradients from it cannot be trusted and the "
                "gradient attacks (white-box, BPDA) are not possible; the transfer and black-box attacks ran, "
                "judged on the runtime"
            )
        return diff

    def describe(self) -> dict[str, Any]:
        """Identity and contract of the model, for `inspect` and reports."""
        return {
            "path": str(self.path),
            "format": self.format,
            "sha256": self.sha256,
            "card": self.card.to_dict(),
            "runtime": self.runtime_info(),
            "fixed_batch": self.fixed_batch,
            "parity_max_abs_diff": self.parity_max_abs_diff,
            "gradient_modes": list(self.gradient_modes),
            "bpda_ops": list(self.bpda_ops),
            "surrogate_error": self.surrogate_error,
            "extra_inputs": [{**extra.to_dict(), "dtype": self.extra_dtypes[extra.name]}
                             for extra in self.card.extra_inputs],
            "findings": list(self.findings),
        }
