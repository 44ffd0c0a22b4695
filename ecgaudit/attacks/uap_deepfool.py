"""Universal DeepFool with post-hoc physiological filtering: the SCAR paper's baseline (eq. 2).

Moosavi-Dezfooli, Fawzi, Fawzi, Frossard, "Universal adversarial perturbations", CVPR 2017, Alg. 1,
with DeepFool (Moosavi-Dezfooli, Fawzi, Frossard, CVPR 2016) as the inner minimal-perturbation step.
Distance: L∞ per lead (the ε box), then Φ(v) = clip_ε(low-pass(smooth(v))) after crafting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ecgaudit.attacks.interface import (
    ProgressFn,
    UniversalAttack,
    UniversalResult,
    changed,
    no_progress,
    surrogate_decisions,
)
from ecgaudit.constraints import PhysioConstraint
from ecgaudit.errors import AttackError
from ecgaudit.models.interface import ModelAdapter


def deepfool_batch(
    model: ModelAdapter, x: torch.Tensor, *, max_iter: int, overshoot: float
) -> torch.Tensor:
    """Minimal L2 perturbations `(B, L, T)` that change each record's decision (linearised, iterated).

    Per iteration: one forward and one backward per class for the whole batch. Single-label: the
    nearest class boundary f_k - f_orig = 0. Multi-label: the nearest single-label flip z_k = logit(thr_k).
    """
    x = x.detach()
    with torch.no_grad():
        logits0 = model.torch_forward(x)
    original = surrogate_decisions(model, logits0)
    r_total = torch.zeros_like(x)
    active = torch.ones(x.shape[0], dtype=torch.bool)
    n_classes = logits0.shape[1]
    if model.card.multilabel:
        assert model.card.thresholds is not None
        thr = torch.tensor(model.card.thresholds, dtype=x.dtype)
        boundary = torch.log(thr) - torch.log1p(-thr)
    for _ in range(max_iter):
        if not active.any():
            break
        idx = active.nonzero().flatten()
        xa = (x + (1 + overshoot) * r_total)[idx].requires_grad_(True)
        logits = model.torch_forward(xa)
        now = surrogate_decisions(model, logits.detach())
        still = ~changed(model, original[idx], now)
        active[idx[~still]] = False
        if not still.any():
            break
        grads = torch.stack(
            [torch.autograd.grad(logits[:, k].sum(), xa, retain_graph=k < n_classes - 1)[0] for k in range(n_classes)],
            dim=1,
        )  # (B, K, L, T)
        flat = grads.flatten(2)
        if model.card.multilabel:
            f = logits.detach() - boundary  # distance to each class's own threshold, in logit units
            w = flat
        else:
            orig = original[idx]
            rows = torch.arange(len(orig))
            f = logits.detach() - logits.detach()[rows, orig].unsqueeze(1)
            w = flat - flat[rows, orig].unsqueeze(1)
        w_norm = w.norm(dim=2).clamp_min(1e-12)
        dist = f.abs() / w_norm
        if not model.card.multilabel:
            dist[rows, orig] = float("inf")
        best = dist.argmin(dim=1)
        pick = torch.arange(len(best))
        f_best = f[pick, best]
        # Linearised step onto the boundary: |f|/‖w‖² along w, towards the side where the decision flips
        # (single-label f < 0, so +w; multi-label against the sign of z_k − boundary).
        direction = -torch.sign(f_best) if model.card.multilabel else torch.ones_like(f_best)
        step = (direction * (f_best.abs() + 1e-4) / w_norm[pick, best] ** 2).view(-1, 1) * w[pick, best]
        step = step.view(-1, *x.shape[1:])
        keep = idx[still]
        r_total[keep] = r_total[keep] + step[still]
    return (1 + overshoot) * r_total


@dataclass(frozen=True)
class UniversalDeepFool(UniversalAttack):
    """Args: `constraint` (ε box and the post-hoc filter Φ); `target_fooling_rate` (1 − δ); `max_passes`
    over the craft set; `overshoot` and `deepfool_max_iter` for the inner DeepFool; `batch_size` records
    whose DeepFool steps are computed together (each is then added to v in turn, projecting after each,
    unless the v built so far already fools that record). `batch_size=1` is Alg. 1 exactly; measured on the
    bundled CNN (200 craft / 200 eval), 8 matches it (filtered fooling 22.5% vs 20.5%) while 32 does not
    (4%): steps computed against a stale v add up to high-frequency noise that the filter then removes.
    """

    name = "uap-deepfool"
    constraint: PhysioConstraint
    fs: float
    target_fooling_rate: float = 0.8
    max_passes: int = 5
    overshoot: float = 0.02
    deepfool_max_iter: int = 10
    batch_size: int = 8

    def __post_init__(self) -> None:
        if not 0 < self.target_fooling_rate <= 1:
            raise AttackError("uap-deepfool: target_fooling_rate must be in (0, 1].")
        if self.max_passes < 1 or self.deepfool_max_iter < 1 or self.batch_size < 1:
            raise AttackError("uap-deepfool: max_passes, deepfool_max_iter and batch_size must be at least 1.")

    def params(self) -> dict[str, Any]:
        c = self.constraint
        return {
            "eps_mv": list(c.eps_mv), "cutoff_hz": c.cutoff_hz, "window_ms": c.window_ms, "fs": self.fs,
            "target_fooling_rate": self.target_fooling_rate, "max_passes": self.max_passes,
            "overshoot": self.overshoot, "deepfool_max_iter": self.deepfool_max_iter, "batch_size": self.batch_size,
        }

    def craft(
        self, model: ModelAdapter, x_mv: torch.Tensor, targets: torch.Tensor, *, generator: torch.Generator,
        progress: ProgressFn = no_progress,
    ) -> UniversalResult:
        n = x_mv.shape[0]
        v = torch.zeros(x_mv.shape[1:], dtype=x_mv.dtype)
        with torch.no_grad():
            clean = surrogate_decisions(model, model.torch_forward(x_mv))
        passes, fooling = 0, 0.0
        total = self.max_passes * n
        for passes in range(1, self.max_passes + 1):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                with torch.no_grad():
                    fooled = changed(model, clean[idx], surrogate_decisions(model, model.torch_forward(x_mv[idx] + v)))
                todo = idx[~fooled]
                if len(todo):
                    steps = deepfool_batch(
                        model, x_mv[todo] + v, max_iter=self.deepfool_max_iter, overshoot=self.overshoot
                    )
                    for record, r in zip(todo, steps):
                        # Alg. 1 updates v only for records the current v does not fool; within a batch the
                        # DeepFool steps were computed together, so recheck each against the v built so far.
                        with torch.no_grad():
                            now = surrogate_decisions(model, model.torch_forward((x_mv[record] + v).unsqueeze(0)))
                        if not changed(model, clean[record].unsqueeze(0), now).item():
                            v = self.constraint.project(v + r)
                progress((passes - 1) * n + min(start + self.batch_size, n), total)
            with torch.no_grad():
                fooling = float(
                    changed(model, clean, surrogate_decisions(model, model.torch_forward(x_mv + v))).float().mean()
                )
            if fooling >= self.target_fooling_rate:
                break
        progress(total, total)
        filtered = self.constraint.physiological_filter(v, self.fs)
        return UniversalResult(
            perturbation=filtered,
            extras={"unfiltered": v},
            info={"passes": passes, "craft_fooling_rate_unfiltered_surrogate": fooling},
        )
