"""Black-box SCAR: SCAR's universal update (eq. 5) with the gradient estimated from the runtime's scores alone.

The attacker queries the vendor runtime and never sees a gradient. Each step estimates the gradient of the
summed margin over a minibatch by antithetic finite differences (Nesterov and Spokoiny 2017; Ilyas et al.,
ICML 2018, "Black-box adversarial attacks with limited queries and information") along random directions drawn
from the constraint's own smooth, band-limited subspace: white noise passed through the constraint's low-pass
and smoothing (eq. 4), scaled to fill the ε box. At 15 Hz over 10 s that subspace has a few hundred degrees of
freedom per lead instead of thousands of samples, which is what makes the estimate affordable. A running
average of the estimates (the "time prior" of Ilyas et al., ICLR 2019, "Prior convictions") carries
information across minibatches, which suits a universal perturbation: its gradient changes slowly.
Distance: L∞ per lead (the ε box).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ecgaudit.attacks.interface import UniversalAttack, UniversalResult
from ecgaudit.attacks.scores import QueryCounter, margin, margin_cap, runtime_log_scores
from ecgaudit.constraints import PhysioConstraint
from ecgaudit.errors import AttackError
from ecgaudit.models.interface import ModelAdapter
from ecgaudit.progress import ProgressFn, no_progress

RUNTIME_BATCH = 64
"""Records per runtime call: the batch `ModelAdapter.raw_predict` runs anyway."""


def smooth_directions(constraint: PhysioConstraint, fs: float, shape: tuple[int, ...],
                      generator: torch.Generator, *, slope: float = 0.0, floor_hz: float = 0.0) -> torch.Tensor:
    """Random perturbations with the constraint's spectrum and amplitude: white noise shaped by the frequency
    response of its smoothing operator, each lead scaled so its peak is that lead's ε. `slope` tilts the noise's
    amplitude spectrum as 1/(f - floor + 0.1 Hz)^slope above `floor_hz` and removes what lies below it (0: white,
    no floor). Shapes: `(..., L, T)` mV."""
    n_samples = shape[-1]
    freqs = torch.fft.rfftfreq(n_samples, d=1.0 / fs)
    weight = constraint.frequency_response(freqs, fs)
    if slope or floor_hz:
        weight = weight * torch.where(freqs >= floor_hz, (freqs - floor_hz + 0.1) ** -slope, torch.zeros_like(freqs))
    # White noise's spectrum is itself white complex Gaussian noise, so it is drawn directly, and only in the bins
    # the weight leaves above a millionth of its peak: at 15 Hz and 50 ms with the 1/f tilt, the lowest 34 Hz,
    # 13% of a 500 Hz record's bins. One inverse FFT instead of drawing, filtering and smoothing in the time domain
    # (SPSA draws 180 of these in a samd scan: 87 ms each at 64 records of 5000 samples in the time domain, 33 ms
    # here, on 2 cores).
    kept = int((weight > weight.abs().max() * 1e-6).nonzero().max()) + 1
    spectrum = torch.complex(torch.randn((*shape[:-1], kept), generator=generator),
                             torch.randn((*shape[:-1], kept), generator=generator))
    smooth = constraint.in_lead_space(torch.fft.irfft(spectrum * weight[:kept], n=n_samples, dim=-1))
    peak = smooth.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12)
    # Filling each lead's box, then projecting: in the physical lead space the scaling breaks Einthoven's laws.
    return constraint.project(smooth / peak * constraint.eps_tensor(smooth))


@dataclass(frozen=True)
class BlackBoxSCAR(UniversalAttack):
    """Args: `constraint` (ε per lead, cutoff, window); `fs`; `queries` the budget (records scored by the
    runtime, all steps together); `directions` antithetic pairs per step; `batch_size` records per estimate;
    `probe` the finite-difference step as a fraction of ε; `alpha` the step length as a fraction of the ε box's
    L2 radius (as in SCAR); `prior` the weight of the running gradient average; `slope` the 1/f tilt of the
    directions' spectrum (1: most of their power near the low band edge, where a universal ECG perturbation
    does its work — on the bundled CNN it reached the white-box rate in 3,000 queries, white noise 22% in 10,000);
    `floor_hz` where that tilt starts: the lowest frequency the model's published preprocessing passes (a
    0.5 Hz high-pass in the card removes anything slower, and the search should not spend queries there).
    """

    name = "scar-blackbox"
    constraint: PhysioConstraint
    fs: float
    queries: int = 20000
    directions: int = 8
    batch_size: int = 16
    probe: float = 0.5
    alpha: float = 0.1
    prior: float = 0.5
    slope: float = 1.0
    floor_hz: float = 0.0

    def __post_init__(self) -> None:
        if self.queries < 1 or self.directions < 1 or self.batch_size < 1:
            raise AttackError("black-box: queries, directions and batch_size must be at least 1.")
        if not 0 < self.probe <= 1 or not self.alpha > 0 or not 0 <= self.prior < 1:
            raise AttackError("black-box: probe must be in (0, 1], alpha positive and prior in [0, 1).")

    def params(self) -> dict[str, Any]:
        c = self.constraint
        return {
            "eps_mv": list(c.eps_mv), "cutoff_hz": c.cutoff_hz, "window_ms": c.window_ms, "low_hz": c.low_hz,
            "lead_space": c.lead_space, "fs": self.fs,
            "queries": self.queries, "directions": self.directions, "batch_size": self.batch_size,
            "probe": self.probe, "alpha": self.alpha, "prior": self.prior, "slope": self.slope,
            "floor_hz": self.floor_hz,
        }

    def craft(
        self, model: ModelAdapter, x_mv: torch.Tensor, targets: torch.Tensor, *, generator: torch.Generator,
        progress: ProgressFn = no_progress,
    ) -> UniversalResult:
        n, n_leads, n_samples = x_mv.shape
        x = x_mv.numpy()
        reference = targets.numpy()
        eps = self.constraint.eps_tensor(x_mv)
        step_l2 = self.alpha * math.sqrt(n_samples) * float(eps.norm())
        batch = min(self.batch_size, n)
        per_step = 2 * self.directions * batch
        counter = QueryCounter()
        v = torch.zeros((n_leads, n_samples))
        running = torch.zeros_like(v)
        order = torch.randperm(n, generator=generator)
        cursor, steps = 0, 0
        while counter.queries + per_step <= self.queries:
            if cursor + batch > n:
                order, cursor = torch.randperm(n, generator=generator), 0
            idx = order[cursor : cursor + batch].numpy()
            cursor += batch
            u = smooth_directions(self.constraint, self.fs, (self.directions, n_leads, n_samples), generator,
                                  slope=self.slope, floor_hz=self.floor_hz)
            probes = torch.cat([u, -u]) * self.probe  # (2m, L, T): antithetic pairs
            records = torch.from_numpy(x[idx])
            per_probe_parts = []
            # Every record of the minibatch under every probe, a runtime batch of records at a time: all 2m × B
            # candidates at once were 61 MB at 16 probes × 16 records of 5000 samples, for the same queries.
            for chunk in probes.split(max(1, RUNTIME_BATCH // batch)):
                candidates = (records[None] + (v + chunk)[:, None]).reshape(-1, n_leads, n_samples)
                scores = runtime_log_scores(model, candidates.numpy(), counter)
                gains = margin(model, scores, np.tile(reference[idx], (len(chunk),) + (1,) * (reference.ndim - 1)))
                # A fooled record's margin keeps growing past the boundary; capping it spends the estimate on the
                # records not fooled yet.
                capped = np.minimum(gains, margin_cap(model))
                per_probe_parts.append(capped.reshape(len(chunk), batch).sum(axis=1))
            per_probe = torch.from_numpy(np.concatenate(per_probe_parts))
            difference = (per_probe[: self.directions] - per_probe[self.directions :]).float()
            estimate = (difference.view(-1, 1, 1) * u).sum(dim=0)
            running = self.prior * running + (1 - self.prior) * estimate
            norm = running.norm()
            if norm > 0:
                v = self.constraint.project(v + step_l2 * running / norm)
            steps += 1
            progress(counter.queries, self.queries)
        progress(self.queries, self.queries)
        return UniversalResult(perturbation=v, info={"queries": counter.queries, "steps": steps})
