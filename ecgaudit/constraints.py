"""The physiological constraint set S_phy (SCAR paper §2.3.1), in physical units.

Amplitude ε per lead in mV, a zero-phase Butterworth low-pass cutoff in Hz and a Gaussian
smoothing window in ms. They become samples only at the model's `fs`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ecgaudit.dsp import gaussian_smooth, zero_phase_filter
from ecgaudit.errors import AttackError
from ecgaudit.leads import STANDARD_LEADS

CHEST_LEADS_WIDE = ("V2", "V3", "V4", "V5", "V6")
"""Leads given the larger amplitude budget; V1 stays with the limb leads (paper §2.3.1)."""


def default_eps_mv(leads: tuple[str, ...] = STANDARD_LEADS, *, limb_mv: float = 0.1, chest_mv: float = 0.2
                   ) -> tuple[float, ...]:
    """ε per lead: `limb_mv` for I, II, III, aVR, aVL, aVF and V1; `chest_mv` for V2–V6."""
    return tuple(chest_mv if lead in CHEST_LEADS_WIDE else limb_mv for lead in leads)


@dataclass(frozen=True)
class LinfBox:
    """The L∞ box every attack's perturbation must lie in: |v| ≤ ε per lead, in mV.

    `eps_mv` holds one budget per lead, or a single one shared by every lead.
    """

    eps_mv: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.eps_mv or any(not e > 0 for e in self.eps_mv):
            raise AttackError(f"every amplitude budget must be a positive number of mV; got {self.eps_mv}.")

    def eps_tensor(self, like: torch.Tensor) -> torch.Tensor:
        """ε shaped `(L, 1)` (or `(1, 1)` for a shared budget) to broadcast over `(..., L, T)`."""
        return torch.tensor(self.eps_mv, dtype=like.dtype, device=like.device).view(-1, 1)

    def project(self, v: torch.Tensor) -> torch.Tensor:
        """Π_ε: element-wise clip of each lead to ±ε_lead. Shapes: `(..., L, T)` mV."""
        eps = self.eps_tensor(v)
        return torch.maximum(torch.minimum(v, eps), -eps)

    def check(self, v: torch.Tensor, *, atol_mv: float = 1e-6) -> bool:
        """True when every sample lies within its lead's ε (to float tolerance)."""
        return bool((v.abs() <= self.eps_tensor(v) + atol_mv).all())


@dataclass(frozen=True)
class PhysioConstraint(LinfBox):
    """ε box per lead plus the smoothing operator of eq. 4: `smooth(g) = K_temp * F_low(g)`."""

    cutoff_hz: float | None = 15.0
    window_ms: float | None = 50.0
    filter_order: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cutoff_hz is not None and not self.cutoff_hz > 0:
            raise AttackError(f"the low-pass cutoff must be positive; got {self.cutoff_hz} Hz.")
        if self.window_ms is not None and not self.window_ms > 0:
            raise AttackError(f"the smoothing window must be positive; got {self.window_ms} ms.")

    def smooth(self, g: torch.Tensor, fs: float) -> torch.Tensor:
        """eq. 4: low-pass below `cutoff_hz`, then Gaussian smoothing over `window_ms`. Shapes kept."""
        if self.cutoff_hz is not None and self.cutoff_hz < fs / 2:
            g = zero_phase_filter(g, fs, high_hz=self.cutoff_hz, order=self.filter_order)
        if self.window_ms is not None:
            g = gaussian_smooth(g, fs, self.window_ms)
        return g

    def physiological_filter(self, v: torch.Tensor, fs: float) -> torch.Tensor:
        """The baseline's post-hoc Φ(v) = clip_ε(low-pass(smooth(v))) (eq. 2)."""
        return self.project(self.smooth(v, fs))

    def with_chest_eps(self, chest_mv: float, leads: tuple[str, ...] = STANDARD_LEADS) -> PhysioConstraint:
        """The same constraint with V2–V6 at `chest_mv` (for the amplitude sweep)."""
        eps = tuple(chest_mv if lead in CHEST_LEADS_WIDE else e for lead, e in zip(leads, self.eps_mv))
        return replace(self, eps_mv=eps)
