"""The physiological constraint set S_phy (SCAR paper §2.3.1), in physical units.

Amplitude ε per lead in mV, a zero-phase Butterworth low-pass cutoff in Hz and a Gaussian
smoothing window in ms. They become samples only at the model's `fs`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ecgaudit.clinical.leads import limb_index, physical_subspace, project_physical
from ecgaudit.dsp import butterworth_power_gain, gaussian_response, gaussian_smooth, zero_phase_filter
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
        return torch.clamp(v, -eps, eps)  # one new tensor; maximum(minimum(...)) made two

    def check(self, v: torch.Tensor, *, atol_mv: float = 1e-6) -> bool:
        """True when every sample lies within its lead's ε (to float tolerance)."""
        return bool((v.abs() <= self.eps_tensor(v) + atol_mv).all())


@dataclass(frozen=True)
class PhysioConstraint(LinfBox):
    """ε box per lead plus the smoothing operator of eq. 4: `smooth(g) = K_temp * F_low(g)`."""

    cutoff_hz: float | None = 15.0
    window_ms: float | None = 50.0
    filter_order: int = 4
    low_hz: float | None = None
    """Lower band edge of eq. 4's filter (Hz): with it, `smooth` band-passes low_hz–cutoff_hz, so the attack
    cannot put its budget into a DC offset or baseline drift that any ECG front end's high-pass removes."""
    lead_space: str = "12"
    """"12": every lead is free. "8": craft in the independent leads I, II, V1–V6 and derive III, aVR, aVL, aVF
    (Einthoven, Goldberger), so the perturbation could come from real electrodes; ε still holds on all 12."""
    leads: tuple[str, ...] = STANDARD_LEADS
    """Lead names in the order of `eps_mv` (needed by lead_space "8")."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cutoff_hz is not None and not self.cutoff_hz > 0:
            raise AttackError(f"the low-pass cutoff must be positive; got {self.cutoff_hz} Hz.")
        if self.window_ms is not None and not self.window_ms > 0:
            raise AttackError(f"the smoothing window must be positive; got {self.window_ms} ms.")
        below_cutoff = self.cutoff_hz is None or (self.low_hz or 0.0) < self.cutoff_hz
        if self.low_hz is not None and not (self.low_hz > 0 and below_cutoff):
            raise AttackError(f"low_hz must be positive and below the cutoff ({self.cutoff_hz} Hz); "
                              f"got {self.low_hz} Hz.")
        if self.lead_space not in ("12", "8"):
            raise AttackError(f"lead_space must be '12' (all leads free) or '8' (I, II, V1–V6 independent, the "
                              f"rest derived); got {self.lead_space!r}.")
        if self.lead_space == "8":
            if len(self.leads) != len(self.eps_mv):
                raise AttackError(f"lead_space '8' needs one lead name per ε; got {len(self.leads)} names for "
                                  f"{len(self.eps_mv)} values.")
            limb_index(self.leads)

    def project(self, v: torch.Tensor) -> torch.Tensor:
        """Π_ε: the box's clip; in lead space "8", the nearest perturbation that obeys Einthoven's laws within
        ±ε on all 12 leads (`clinical.leads.project_physical`). Shapes: `(..., L, T)` mV."""
        if self.lead_space == "8":
            return project_physical(v, self.eps_mv, self.leads)
        return super().project(v)

    def smooth(self, g: torch.Tensor, fs: float) -> torch.Tensor:
        """eq. 4: low-pass below `cutoff_hz` (band-pass from `low_hz` when set), then Gaussian smoothing over
        `window_ms`; in lead space "8", then onto the signals that obey Einthoven's laws. Shapes kept."""
        high_hz = self.cutoff_hz if self.cutoff_hz is not None and self.cutoff_hz < fs / 2 else None
        if high_hz is not None or self.low_hz is not None:
            g = zero_phase_filter(g, fs, low_hz=self.low_hz, high_hz=high_hz, order=self.filter_order)
        if self.window_ms is not None:
            g = gaussian_smooth(g, fs, self.window_ms)
        return self.in_lead_space(g)

    def frequency_response(self, freqs_hz: torch.Tensor, fs: float) -> torch.Tensor:
        """The gain `smooth` applies at each frequency before the lead-space step: the forward-backward
        Butterworth's |H(f)|^2 times the Gaussian kernel's response. Real and zero-phase; away from a record's
        ends (which `smooth` reflect-pads) smooth(g) = irfft(rfft(g) · response)."""
        high_hz = self.cutoff_hz if self.cutoff_hz is not None and self.cutoff_hz < fs / 2 else None
        gain = butterworth_power_gain(freqs_hz, low_hz=self.low_hz, high_hz=high_hz, order=self.filter_order)
        if self.window_ms is not None:
            gain = gain * gaussian_response(freqs_hz, fs, self.window_ms)
        return gain

    def in_lead_space(self, g: torch.Tensor) -> torch.Tensor:
        """In lead space "8", the nearest signals that obey Einthoven's laws; in "12", `g` itself."""
        return physical_subspace(g, self.leads) if self.lead_space == "8" else g

    def physiological_filter(self, v: torch.Tensor, fs: float) -> torch.Tensor:
        """The baseline's post-hoc Φ(v) = clip_ε(low-pass(smooth(v))) (eq. 2)."""
        return self.project(self.smooth(v, fs))

    def with_chest_eps(self, chest_mv: float, leads: tuple[str, ...] = STANDARD_LEADS) -> PhysioConstraint:
        """The same constraint with V2–V6 at `chest_mv` (for the amplitude sweep)."""
        eps = tuple(chest_mv if lead in CHEST_LEADS_WIDE else e for lead, e in zip(leads, self.eps_mv))
        return replace(self, eps_mv=eps)
