"""SPSA: a score-based, per-record L∞ attack that queries only the vendor runtime.

Uesato, O'Donoghue, van den Oord, Kohli, "Adversarial risk and the dangers of evaluating against weak
attacks", ICML 2018: the gradient of the margin is estimated by antithetic finite differences along random
directions, then a signed step is taken and projected onto the ε box, as PGD does with a true gradient.
The directions are drawn from a smooth, low-frequency subspace (white noise through a 15 Hz low-pass and a
50 ms smoothing, tilted towards low frequencies, as the universal black-box attack does): the attacker's prior,
not a limit on the perturbation, which may take any shape in the box. On the bundled CNN at 0.05 mV and
100 queries per record this prior fooled 23% of records where Square attack's random windows (Andriushchenko
et al., ECCV 2020) fooled 6%. Distance: L∞ per lead, in mV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ecgaudit.attacks.blackbox_scar import smooth_directions
from ecgaudit.attacks.interface import PerSampleAttack
from ecgaudit.attacks.scores import QueryCounter, changed, margin, runtime_log_scores
from ecgaudit.constraints import LinfBox, PhysioConstraint
from ecgaudit.errors import AttackError
from ecgaudit.models.interface import ModelAdapter
from ecgaudit.progress import ProgressFn, no_progress

SEARCH_CUTOFF_HZ = 15.0
SEARCH_WINDOW_MS = 50.0


@dataclass(frozen=True)
class SPSA(PerSampleAttack):
    """Args: `eps_mv` L∞ budget (one value, or one per lead); `fs` of the model; `queries` per record;
    `directions` antithetic pairs per step; `probe` the finite-difference step as a fraction of ε; `step` the
    signed step as a fraction of ε; `batch_size` records per runtime call; `floor_hz` the lowest frequency the
    model's published preprocessing passes (the search spends no queries below it).
    """

    name = "spsa"
    fs: float
    eps_mv: float | tuple[float, ...] = 0.01
    queries: int = 200
    directions: int = 5
    probe: float = 0.5
    step: float = 0.5
    batch_size: int = 32  # onnxruntime scores 32 records as fast per record as 64, with half the temporaries
    floor_hz: float = 0.0

    def __post_init__(self) -> None:
        if self.directions < 1 or self.batch_size < 1:
            raise AttackError("spsa: directions and batch_size must be at least 1.")
        if self.queries < 2 * self.directions + 1:
            raise AttackError(f"spsa: {self.queries} queries per record cannot pay for one step ({self.directions} "
                              f"directions cost 2 × {self.directions} + 1 = {2 * self.directions + 1}); give at least "
                              f"{2 * self.directions + 1} queries per record.")
        if not 0 < self.probe <= 1 or not 0 < self.step <= 1:
            raise AttackError("spsa: probe and step must be fractions of ε in (0, 1].")

    @property
    def constraint(self) -> LinfBox:
        return LinfBox(self.eps_mv if isinstance(self.eps_mv, tuple) else (self.eps_mv,))

    def params(self) -> dict[str, Any]:
        eps = list(self.eps_mv) if isinstance(self.eps_mv, tuple) else self.eps_mv
        return {"eps_mv": eps, "fs": self.fs, "queries": self.queries, "directions": self.directions,
                "probe": self.probe, "step": self.step, "batch_size": self.batch_size, "floor_hz": self.floor_hz}

    def perturb(
        self, model: ModelAdapter, x_mv: torch.Tensor, targets: torch.Tensor, *, generator: torch.Generator,
        progress: ProgressFn = no_progress,
    ) -> torch.Tensor:
        n = x_mv.shape[0]
        out = torch.empty_like(x_mv)
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            out[start:stop] = self._batch(model, x_mv[start:stop], targets[start:stop], generator)
            progress(stop, n)
        return out

    def _batch(self, model: ModelAdapter, x_mv: torch.Tensor, targets: torch.Tensor,
               generator: torch.Generator) -> torch.Tensor:
        n, n_leads, n_samples = x_mv.shape
        x = x_mv.numpy()
        reference = targets.numpy()
        box = self.constraint
        eps = box.eps_tensor(x_mv).numpy()
        search = PhysioConstraint(tuple(float(e) for e in eps.ravel()), cutoff_hz=SEARCH_CUTOFF_HZ,
                                  window_ms=SEARCH_WINDOW_MS)
        counter = QueryCounter()
        delta = np.zeros_like(x)
        active = np.arange(n)
        # Each step spends 2 × directions queries on the estimate and one on checking what it fooled.
        for _ in range(self.queries // (2 * self.directions + 1)):
            if not len(active):
                break
            # Only the estimate's sign is used, so float32 will do; the current point is formed once per step.
            point = x[active] + delta[active]
            estimate = np.zeros(point.shape, dtype=np.float32)
            # One direction at a time: drawing all of them at once held directions × records × leads × samples
            # floats through the FFT and the smoothing (GBs on 200 records at 500 Hz).
            for _ in range(self.directions):
                direction = smooth_directions(search, self.fs, (len(active), n_leads, n_samples), generator,
                                              slope=1.0, floor_hz=self.floor_hz).numpy()
                direction *= self.probe
                up = margin(model, runtime_log_scores(model, point + direction, counter), reference[active])
                down = margin(model, runtime_log_scores(model, point - direction, counter), reference[active])
                estimate += (up - down).astype(np.float32)[:, None, None] * direction
            delta[active] = np.clip(delta[active] + self.step * eps * np.sign(estimate), -eps, eps)
            scores = runtime_log_scores(model, x[active] + delta[active], counter)
            active = active[~changed(model, scores, reference[active])]
        return torch.from_numpy(delta)
