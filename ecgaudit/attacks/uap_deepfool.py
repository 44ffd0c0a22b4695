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
    UniversalAttack,
    UniversalResult,
    changed,
    surrogate_decide,
    surrogate_decisions,
    surrogate_fooled,
)
from ecgaudit.constraints import PhysioConstraint
from ecgaudit.errors import AttackError
from ecgaudit.models.interface import ModelAdapter
from ecgaudit.progress import ProgressFn, no_progress


@dataclass(frozen=True)
class DeepFoolSteps:
    """DeepFool's answer for a batch: `r` `(B, L, T)` (overshoot included) and, per record, whether the
    surrogate's decision at `x + r` differs from the one it started from (`flipped`)."""

    r: torch.Tensor
    flipped: torch.Tensor


def deepfool_batch(
    model: ModelAdapter, x: torch.Tensor, original: torch.Tensor, *, max_iter: int, overshoot: float
) -> DeepFoolSteps:
    """Minimal L2 perturbations that move each record off its `original` decision (linearised, iterated).

    Per iteration, for the records still unflipped: a forward, then K - 1 backward passes (single-label: the
    nearest class boundary f_k - f_orig = 0) or K (multi-label: the nearest single-label flip z_k = logit(thr_k)).
    After `max_iter` steps one more forward says whether the last step flipped the record.
    """
    x = x.detach()
    r_total = torch.zeros_like(x)
    flipped = torch.zeros(x.shape[0], dtype=torch.bool)
    active = torch.arange(x.shape[0])  # rows not flipped yet
    boundary = None
    if model.card.multilabel:
        assert model.card.thresholds is not None
        thr = torch.tensor(model.card.thresholds, dtype=x.dtype)
        boundary = torch.log(thr) - torch.log1p(-thr)
    for iteration in range(max_iter + 1):
        last = iteration == max_iter
        # Callers pass records they have just found unflipped, so the first forward keeps its graph. Later ones
        # run without: most rows flip within two or three steps, and a backward pass costs the whole batch, so
        # only the rows still unflipped are run again with gradients.
        if iteration == 0 and not last:
            point = x.clone().requires_grad_(True)
            logits = model.torch_forward(point)
            hit = changed(model, original, surrogate_decisions(model, logits.detach()))
        else:
            point = x[active] + (1 + overshoot) * r_total[active]
            hit = surrogate_fooled(model, point, original[active])
        flipped[active[hit]] = True
        keep = ~hit
        if last or not keep.any():
            break
        rows = active[keep]
        if iteration == 0:
            step = _linearised_step(model, logits, point, original, boundary)[keep]
        else:
            xa = point[keep].requires_grad_(True)
            step = _linearised_step(model, model.torch_forward(xa), xa, original[rows], boundary)
        r_total[rows] += step
        active = rows
    return DeepFoolSteps(r=(1 + overshoot) * r_total, flipped=flipped)


def _linearised_step(
    model: ModelAdapter, logits: torch.Tensor, xa: torch.Tensor, original: torch.Tensor,
    boundary: torch.Tensor | None,
) -> torch.Tensor:
    """One DeepFool step per record: onto the nearest linearised decision boundary, `(B, L, T)`.

    Single-label: K − 1 backward passes, each the gradient of f_k − f_orig directly (the k-th class other
    than the record's own). Multi-label: K passes, one per class's own threshold.
    """
    z = logits.detach()
    rows = torch.arange(len(z))
    n_classes = z.shape[1]
    if boundary is None:
        others = torch.arange(n_classes - 1).unsqueeze(0).expand(len(z), -1)
        others = others + (others >= original.unsqueeze(1)).long()  # (B, K-1): every class but the record's own
        objectives = [logits[rows, others[:, j]] - logits[rows, original] for j in range(n_classes - 1)]
        f = z[rows.unsqueeze(1), others] - z[rows, original].unsqueeze(1)
    else:
        objectives = [logits[:, k] for k in range(n_classes)]
        f = z - boundary  # distance to each class's own threshold, in logit units
    last = len(objectives) - 1
    grads = [torch.autograd.grad(obj.sum(), xa, retain_graph=j < last)[0] for j, obj in enumerate(objectives)]
    w_norm = torch.stack([g.flatten(1).norm(dim=1) for g in grads], dim=1).clamp_min(1e-12)  # (B, K')
    best = (f.abs() / w_norm).argmin(dim=1)
    f_best = f[rows, best]
    # Linearised step onto the boundary: |f|/‖w‖² along w, towards the side where the decision flips
    # (single-label f < 0, so +w; multi-label against the sign of z_k − boundary).
    direction = -torch.sign(f_best) if boundary is not None else torch.ones_like(f_best)
    scale = direction * (f_best.abs() + 1e-4) / w_norm[rows, best] ** 2
    step = torch.empty_like(xa)
    for j, g in enumerate(grads):  # each row takes its own best w; no (B, K', L·T) stack of every gradient
        chosen = best == j
        if chosen.any():
            step[chosen] = scale[chosen].view(-1, *([1] * (g.dim() - 1))) * g[chosen]
    return step


@dataclass(frozen=True)
class UniversalDeepFool(UniversalAttack):
    """Args: `constraint` (ε box and the post-hoc filter Φ); `target_fooling_rate` (1 − δ); `max_passes`
    over the craft set; `overshoot` and `deepfool_max_iter` for the inner DeepFool; `batch_size` records
    whose DeepFool steps are computed together, against the v at the start of the batch. Each step that
    flipped its record is then added to v in turn, projecting after each, unless the v built so far already
    fools that record (`_add_steps`); `batch_size=1` is Alg. 1 line by line. On the bundled CNN
    (100 craft / 100 eval, seeds 0-2) 8 was the fastest of 4, 8 and 16, with fooling rates within noise.
    """

    name = "uap-deepfool"
    needs_targets = False  # Alg. 1 moves each record off the surrogate's clean decision, not off a label
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
            "eps_mv": list(c.eps_mv), "cutoff_hz": c.cutoff_hz, "window_ms": c.window_ms, "low_hz": c.low_hz,
            "lead_space": c.lead_space, "fs": self.fs,
            "target_fooling_rate": self.target_fooling_rate, "max_passes": self.max_passes,
            "overshoot": self.overshoot, "deepfool_max_iter": self.deepfool_max_iter, "batch_size": self.batch_size,
        }

    def craft(
        self, model: ModelAdapter, x_mv: torch.Tensor, targets: torch.Tensor, *, generator: torch.Generator,
        progress: ProgressFn = no_progress, init: torch.Tensor | None = None,
    ) -> UniversalResult:
        n = x_mv.shape[0]
        v = torch.zeros(x_mv.shape[1:], dtype=x_mv.dtype) if init is None else \
            self.constraint.project(init.to(x_mv.dtype).clone())
        # Whole-split checks run in the attack's own batch size, as everything else here does: on one thread the
        # bundled CNN costs 2.6 ms per record at 64 records and 1.3 ms at 8 (the activations stay in cache).
        clean = surrogate_decide(model, x_mv, batch_size=self.batch_size)
        passes, fooling = 0, 0.0
        total = self.max_passes * n
        for passes in range(1, self.max_passes + 1):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                todo = idx[~surrogate_fooled(model, x_mv[idx] + v, clean[idx])]
                if len(todo):
                    steps = deepfool_batch(
                        model, x_mv[todo] + v, clean[todo], max_iter=self.deepfool_max_iter, overshoot=self.overshoot
                    )
                    flipped = steps.flipped
                    v = self._add_steps(model, x_mv, clean, v, todo[flipped], steps.r[flipped])
                progress((passes - 1) * n + min(start + self.batch_size, n), total)
            # a batch at a time: x + v for the whole craft split would be one more copy of it
            fooled = [surrogate_fooled(model, x_mv[i : i + self.batch_size] + v, clean[i : i + self.batch_size])
                      for i in range(0, n, self.batch_size)]
            fooling = float(torch.cat(fooled).float().mean())
            if fooling >= self.target_fooling_rate:
                break
        progress(total, total)
        filtered = self.constraint.physiological_filter(v, self.fs)
        return UniversalResult(
            perturbation=filtered,
            extras={"unfiltered": v},
            info={"passes": passes, "craft_fooling_rate_unfiltered_surrogate": fooling},
        )

    def _add_steps(
        self, model: ModelAdapter, x_mv: torch.Tensor, clean: torch.Tensor, v: torch.Tensor,
        records: torch.Tensor, steps: torch.Tensor,
    ) -> torch.Tensor:
        """Alg. 1's update, record by record: v ← Π_ε(v + r) unless the v built so far already fools the record.

        The steps were computed together against the `v` given (which fools none of `records`), so each later
        record is rechecked against the v that holds when its turn comes. The rechecks run speculatively in one
        batch, assuming every step is added; only a record that turns out fooled restarts the speculation after
        it. Same result as checking one record at a time, in one forward instead of one per record.
        """
        start = 0
        first_known = True  # `records[0]` was checked against this very v
        while start < len(records):
            candidates = [v]
            for r in steps[start:]:
                candidates.append(self.constraint.project(candidates[-1] + r))
            skip = 1 if first_known else 0
            fooled = torch.zeros(len(records) - start, dtype=torch.bool)
            if len(records) - start > skip:
                batch = records[start + skip :]
                fooled[skip:] = surrogate_fooled(model, x_mv[batch] + torch.stack(candidates[skip:-1]), clean[batch])
            hits = fooled.nonzero().flatten()
            if not len(hits):
                return candidates[-1]
            first = int(hits[0])
            v = candidates[first]
            start += first + 1
            first_known = False
        return v
