"""Attacks, one per file, and the registry the CLI and profiles name them by."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ecgaudit.attacks.interface import PerSampleAttack, UniversalAttack
from ecgaudit.attacks.pgd import PGD
from ecgaudit.attacks.scar import SCAR
from ecgaudit.attacks.uap_deepfool import UniversalDeepFool
from ecgaudit.constraints import PhysioConstraint, default_eps_mv
from ecgaudit.errors import AttackError

ATTACK_NAMES: tuple[str, ...] = ("pgd", "uap-deepfool", "scar", "scar-stealth")

__all__ = ["ATTACK_NAMES", "PGD", "SCAR", "UniversalDeepFool", "build_attack"]


def build_attack(
    name: str, *, fs: float, leads: tuple[str, ...], params: dict[str, Any] | None = None
) -> UniversalAttack | PerSampleAttack:
    """Build an attack by registry name with the paper's defaults, overridden by `params`.

    Constraint parameters (`eps_limb_mv`, `eps_chest_mv`, `eps_mv` per lead, `cutoff_hz`, `window_ms`)
    apply to the universal attacks; the rest go to the attack's constructor.
    """
    params = dict(params or {})
    if name == "pgd":
        eps = params.pop("eps_mv", 0.01)
        return _construct(PGD, name, eps_mv=tuple(eps) if isinstance(eps, list) else float(eps), **params)
    if name not in ATTACK_NAMES:
        raise AttackError(f"unknown attack '{name}'; choose one of {', '.join(ATTACK_NAMES)}.")
    eps_mv = params.pop("eps_mv", None)
    limb = float(params.pop("eps_limb_mv", 0.1))
    chest = float(params.pop("eps_chest_mv", 0.2))
    cutoff = params.pop("cutoff_hz", 5.0 if name == "scar-stealth" else 15.0)
    window = params.pop("window_ms", 50.0)
    eps = tuple(float(e) for e in eps_mv) if eps_mv is not None else default_eps_mv(leads, limb_mv=limb, chest_mv=chest)
    if len(eps) != len(leads):
        raise AttackError(f"{name}: eps_mv has {len(eps)} values but the model has {len(leads)} leads.")
    constraint = PhysioConstraint(eps, cutoff_hz=cutoff, window_ms=window)
    if name == "uap-deepfool":
        return _construct(UniversalDeepFool, name, constraint=constraint, fs=fs, **params)
    attack = _construct(SCAR, name, constraint=constraint, fs=fs, **params)
    return replace(attack) if name == "scar" else _Stealth(**{**attack.__dict__})


class _Stealth(SCAR):
    """SCAR with a 5 Hz cutoff (paper §4.3): the perturbation is meant to be invisible to a reader."""

    name = "scar-stealth"


def _construct(cls: type, name: str, **kwargs: Any) -> Any:
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise AttackError(f"{name}: unknown parameter ({exc}).") from exc
