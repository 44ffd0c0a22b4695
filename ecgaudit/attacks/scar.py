"""SCAR: a universal perturbation by normalised SGD with in-process gradient smoothing.

Jia and Liao, "SCAR: Semantic Cardiac Adversarial Representation via Spatiotemporal Manifold
Optimization in ECG", eq. 3–5: g = ∇_v L(f(x + v), y) over a minibatch, g' = K_temp * F_low(g),
v ← Π_ε(v + α g'/‖g'‖₂), over epochs of the craft set. Distance: L∞ per lead (the ε box).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ecgaudit.attacks.interface import UniversalAttack, UniversalResult, attack_loss, usable_gradients
from ecgaudit.constraints import PhysioConstraint
from ecgaudit.errors import AttackError
from ecgaudit.models.interface import ModelAdapter
from ecgaudit.progress import ProgressFn, no_progress


@dataclass(frozen=True)
class SCAR(UniversalAttack):
    """Args: `constraint` (ε per lead, cutoff, window); `fs` of the model; `alpha` the step length as a
    fraction of the ε box's L2 radius ‖ε‖₂ (so it means the same at any fs and length); `epochs` over the
    craft set; `batch_size` records per gradient.
    """

    name = "scar"
    constraint: PhysioConstraint
    fs: float
    alpha: float = 0.05
    epochs: int = 10
    batch_size: int = 32

    def __post_init__(self) -> None:
        if not self.alpha > 0:
            raise AttackError(f"scar: alpha must be positive; got {self.alpha}.")
        if self.epochs < 1 or self.batch_size < 1:
            raise AttackError("scar: epochs and batch_size must be at least 1.")

    def params(self) -> dict[str, Any]:
        c = self.constraint
        return {
            "eps_mv": list(c.eps_mv), "cutoff_hz": c.cutoff_hz, "window_ms": c.window_ms, "low_hz": c.low_hz,
            "lead_space": c.lead_space, "fs": self.fs,
            "alpha": self.alpha, "epochs": self.epochs, "batch_size": self.batch_size,
        }

    def craft(
        self, model: ModelAdapter, x_mv: torch.Tensor, targets: torch.Tensor, *, generator: torch.Generator,
        progress: ProgressFn = no_progress, init: torch.Tensor | None = None,
    ) -> UniversalResult:
        n, n_leads, n_samples = x_mv.shape
        eps = self.constraint.eps_tensor(x_mv)
        step_l2 = self.alpha * math.sqrt(n_samples) * float(eps.norm())
        v = torch.zeros((n_leads, n_samples), dtype=x_mv.dtype) if init is None else \
            self.constraint.project(init.to(x_mv.dtype).clone())
        excluded: set[int] = set()
        total = self.epochs * n
        for epoch in range(self.epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                # The gradient with respect to each record's input: their sum is the gradient with respect to v,
                # and a record whose gradient is not finite or absurd (a flat lead under a z-score) is left out
                # instead of turning the whole step into NaN or into that one record's direction.
                z = (x_mv[idx] + v).detach().requires_grad_(True)
                logits = model.torch_forward(z)
                per_record, per_logit = torch.autograd.grad(attack_loss(model, logits, targets[idx]), (z, logits))
                keep = usable_gradients(per_record, per_logit)
                excluded.update(int(i) for i in idx[~keep])
                grad = per_record[keep].sum(dim=0)
                smoothed = self.constraint.smooth(grad, self.fs)
                norm = smoothed.norm()
                if norm > 0:
                    v = self.constraint.project(v + step_l2 * smoothed / norm)
                progress(epoch * n + min(start + self.batch_size, n), total)
        info: dict[str, Any] = {"steps": self.epochs * math.ceil(n / self.batch_size)}
        if excluded:
            info["excluded_gradient_records"] = sorted(excluded)  # positions in x_mv; the harness names them
        return UniversalResult(perturbation=v, info=info)


class StealthSCAR(SCAR):
    """SCAR with a 5 Hz cutoff (paper §4.3): the perturbation is meant to be invisible to a reader."""

    name = "scar-stealth"
