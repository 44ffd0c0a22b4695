"""What every attack shares: two small bases, the loss, and the progress callback.

Attacks know only a model adapter, tensors and their parameters; they never read files or print.
Each declares the constraint it works within; the harness (`ecgaudit.attacks.harness`) projects what they
return onto it and measures success itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ecgaudit.constraints import LinfBox, PhysioConstraint
from ecgaudit.models.interface import ModelAdapter
from ecgaudit.progress import ProgressFn, no_progress


def attack_loss(model: ModelAdapter, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed loss an untargeted attack ascends: cross-entropy, or BCE for a multi-label (sigmoid) model.

    `targets` are class indices `(N,)` for single-label models and multi-hot `(N, K)` for multi-label ones.
    """
    if model.card.multilabel:
        return F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="sum")
    return F.cross_entropy(logits, targets.long(), reduction="sum")


ABSURD_GRADIENT = 1e3
"""A record whose input sensitivity is more than this many times the batch's median is absurd (a z-score over a
flat lead divides by its eps: 1.8e7 against ~5 was seen) and must not steer a universal perturbation."""


def usable_gradients(per_record: torch.Tensor, per_logit: torch.Tensor) -> torch.Tensor:
    """Which records' input gradients `(B, ...)` may steer a shared perturbation: finite, and with an input
    sensitivity not absurdly above the batch's median (`ABSURD_GRADIENT`). The sensitivity is the input gradient's
    norm over the loss gradient's at the logits `(B, K)`: the raw input gradient also scales with how unsure the
    model is of the record, which varies by many orders of magnitude between a confident record and one on the
    decision boundary, while a flat lead under a z-score inflates the model's own response to its input."""
    norms = per_record.flatten(start_dim=1).norm(dim=1)
    finite = torch.isfinite(norms) & torch.isfinite(per_logit).all(dim=1)
    at_logits = per_logit.norm(dim=1)
    measured = finite & (at_logits > 0)  # a record the loss no longer moves has no direction to judge, nor to give
    if not measured.any():
        return finite
    sensitivity = torch.where(measured, norms / at_logits.clamp_min(torch.finfo(norms.dtype).tiny), 0.0)
    return finite & (~measured | (sensitivity <= ABSURD_GRADIENT * sensitivity[measured].median()))


def surrogate_decisions(model: ModelAdapter, logits: torch.Tensor) -> torch.Tensor:
    """The decision the surrogate's logits imply: class index, or the multi-hot set above thresholds."""
    if model.card.multilabel:
        assert model.card.thresholds is not None
        thresholds = torch.tensor(model.card.thresholds, dtype=logits.dtype)
        return torch.sigmoid(logits) >= thresholds
    return logits.argmax(dim=1)


def changed(model: ModelAdapter, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Per record: did the decision change (any label flipped, for multi-label)?"""
    if model.card.multilabel:
        return (before != after).any(dim=1)
    return before != after


def surrogate_decide(model: ModelAdapter, x_mv: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
    """The surrogate's decisions on `x_mv` `(N, L, T)` mV, for checks that need no gradient.

    Runs in inference mode (no autograd bookkeeping at all), `batch_size` records at a time, and returns an
    ordinary tensor, which later gradient computations may index with.
    """
    with torch.inference_mode():
        decisions = surrogate_decisions(model, model.torch_forward(x_mv, batch_size=batch_size))
    return decisions.clone()


def surrogate_fooled(
    model: ModelAdapter, x_mv: torch.Tensor, before: torch.Tensor, *, batch_size: int = 64
) -> torch.Tensor:
    """Per record: does the surrogate decide differently on `x_mv` than `before`? (no gradient; `(N,)` bool)"""
    return changed(model, before, surrogate_decide(model, x_mv, batch_size=batch_size))


@dataclass(frozen=True)
class UniversalResult:
    """A universal perturbation `(L, T)` in mV plus attack-specific extras (e.g. the unfiltered v)."""

    perturbation: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


class UniversalAttack(ABC):
    """Crafts one perturbation for all records on a craft split.

    `constraint` is the set the perturbation must lie in; the harness projects whatever `craft` returns onto it.
    """

    name: ClassVar[str]
    universal: ClassVar[bool] = True
    needs_targets: ClassVar[bool] = True
    """False for an attack that moves records off the surrogate's own decisions and ignores `targets`: the harness
    then spares the runtime's clean pass over the craft split that the targets need."""
    constraint: PhysioConstraint

    @abstractmethod
    def craft(
        self, model: ModelAdapter, x_mv: torch.Tensor, targets: torch.Tensor, *, generator: torch.Generator,
        progress: ProgressFn = no_progress,
    ) -> UniversalResult:
        """Shapes: `x_mv` `(N, L, T)` mV at the model's fs; returns a `(L, T)` perturbation in mV. A gradient attack
        also takes `init`, a `(L, T)` perturbation to start from (a warm start; the harness passes it only when
        given)."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The parameters, JSON-able, for reports."""


class PerSampleAttack(ABC):
    """Perturbs each record on its own, within the L∞ box `constraint` (the harness clips to it)."""

    name: ClassVar[str]
    universal: ClassVar[bool] = False

    @property
    @abstractmethod
    def constraint(self) -> LinfBox:
        """The per-record L∞ box, in mV."""

    @abstractmethod
    def perturb(
        self, model: ModelAdapter, x_mv: torch.Tensor, targets: torch.Tensor, *, generator: torch.Generator,
        progress: ProgressFn = no_progress,
    ) -> torch.Tensor:
        """Shapes: `x_mv` `(N, L, T)` mV; returns perturbations `(N, L, T)` mV."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The parameters, JSON-able, for reports."""
