"""The attack registry: every attack by the name profiles, the CLI and reports use, with its builder.

Explicit and greppable (pip-audit's and the style anchors' rule): the CLI's `--attack` choices and the enums of
the profile and report schemas are derived from `ATTACKS`, and a test checks that they agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from ecgaudit.errors import AttackError

if TYPE_CHECKING:  # the registry is read by commands that must start without torch (schemas, profiles)
    from ecgaudit.attacks.interface import PerSampleAttack, UniversalAttack
    from ecgaudit.constraints import PhysioConstraint

    Attack = UniversalAttack | PerSampleAttack

Builder = Callable[[float, tuple[str, ...], dict[str, Any]], "Attack"]


@dataclass(frozen=True)
class AttackSpec:
    """One registered attack: its builder `(fs, leads, params) -> Attack` and what the report says of it."""

    name: str
    universal: bool
    summary: str
    build: Builder
    sweepable: bool = False
    """The amplitude sweep (V2–V6 ε) can re-craft it."""


MAX_COUNT: Final = 1_000_000
"""Largest count parameter (epochs, steps, passes, iterations, batch size) an attack takes: the profile schema's
maximum for each, so `--param` and a profile accept the same values. A million SCAR epochs over 200 records is
weeks on a CPU; anything larger is a typo, and a float such as 1e12 would fail deep inside `range`."""


def _construct(cls: type, name: str, **kwargs: Any) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise AttackError(f"{name}: unknown parameter '{unknown[0]}'; it takes "
                          f"{', '.join(sorted(known - {'constraint', 'fs'}))}.")
    for field in fields(cls):
        value = kwargs.get(field.name)
        if field.type in (int, "int") and field.name in kwargs and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT):
            raise AttackError(f"{name}: parameter {field.name} must be a whole number from 1 to {MAX_COUNT:,}; "
                              f"got {value!r}.")
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a value of the wrong type, found by the attack's own checks
        raise AttackError(f"{name}: a parameter has a value of the wrong type ({exc}).") from exc


def _physio_constraint(name: str, leads: tuple[str, ...], params: dict[str, Any], cutoff_hz: float
                       ) -> PhysioConstraint:
    """Pop the constraint parameters (`eps_mv` per lead, or `eps_limb_mv` / `eps_chest_mv`; `cutoff_hz`;
    `window_ms`; `low_hz`; `lead_space` "12" | "8") from `params` and build the universal attacks' constraint."""
    from ecgaudit.clinical.leads import LIMB_LEADS
    from ecgaudit.constraints import PhysioConstraint, default_eps_mv

    eps_mv = params.pop("eps_mv", None)
    limb = params.pop("eps_limb_mv", 0.1)
    chest = params.pop("eps_chest_mv", 0.2)
    cutoff = params.pop("cutoff_hz", cutoff_hz)
    window = params.pop("window_ms", 50.0)
    low_hz = params.pop("low_hz", None)
    lead_space = str(params.pop("lead_space", "12"))
    if eps_mv is not None:
        if not isinstance(eps_mv, list | tuple):
            eps_mv = [eps_mv] * len(leads)
        eps = tuple(_number(name, "eps_mv", e) for e in eps_mv)
    else:
        eps = default_eps_mv(leads, limb_mv=_number(name, "eps_limb_mv", limb),
                             chest_mv=_number(name, "eps_chest_mv", chest))
    if len(eps) != len(leads):
        raise AttackError(f"{name}: eps_mv has {len(eps)} values but the model has {len(leads)} leads.")
    if lead_space == "8" and sum(lead in LIMB_LEADS for lead in leads) < 3:
        # Any two limb leads are independent functions of I and II: every perturbation of them is physical.
        lead_space = "12"
    return PhysioConstraint(eps, cutoff_hz=cutoff, window_ms=window, low_hz=low_hz, lead_space=lead_space,
                            leads=leads)


def _number(name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AttackError(f"{name}: parameter {key} must be a number of mV, not {value!r}.")
    return float(value)


def _build_pgd(fs: float, leads: tuple[str, ...], params: dict[str, Any]) -> Attack:
    from ecgaudit.attacks.pgd import PGD

    eps = params.pop("eps_mv", 0.01)
    if isinstance(eps, list | tuple):
        if len(eps) != len(leads):
            raise AttackError(f"pgd: eps_mv has {len(eps)} values but the model has {len(leads)} leads.")
        return _construct(PGD, "pgd", eps_mv=tuple(_number("pgd", "eps_mv", e) for e in eps), **params)
    return _construct(PGD, "pgd", eps_mv=_number("pgd", "eps_mv", eps), **params)


def _build_uap_deepfool(fs: float, leads: tuple[str, ...], params: dict[str, Any]) -> Attack:
    from ecgaudit.attacks.uap_deepfool import UniversalDeepFool

    constraint = _physio_constraint("uap-deepfool", leads, params, 15.0)
    return _construct(UniversalDeepFool, "uap-deepfool", constraint=constraint, fs=fs, **params)


def _build_scar(fs: float, leads: tuple[str, ...], params: dict[str, Any]) -> Attack:
    from ecgaudit.attacks.scar import SCAR

    return _construct(SCAR, "scar", constraint=_physio_constraint("scar", leads, params, 15.0), fs=fs, **params)


def _build_scar_stealth(fs: float, leads: tuple[str, ...], params: dict[str, Any]) -> Attack:
    from ecgaudit.attacks.scar import StealthSCAR as _Stealth

    constraint = _physio_constraint("scar-stealth", leads, params, 5.0)
    return _construct(_Stealth, "scar-stealth", constraint=constraint, fs=fs, **params)


ATTACKS: Final[Mapping[str, AttackSpec]] = MappingProxyType({
    spec.name: spec for spec in (
        AttackSpec("pgd", False, "Madry PGD, per record, L∞ per lead (10 µV: the 'invisible noise' reference)",
                   _build_pgd),
        AttackSpec("uap-deepfool", True, "universal DeepFool (Alg. 1) with post-hoc physiological filtering "
                   "(the SCAR paper's baseline, eq. 2)", _build_uap_deepfool),
        AttackSpec("scar", True, "SCAR: universal, normalised SGD with in-process gradient smoothing (eq. 3-5)",
                   _build_scar, sweepable=True),
        AttackSpec("scar-stealth", True, "SCAR with a 5 Hz cutoff (paper §4.3)", _build_scar_stealth,
                   sweepable=True),
    )
})


def build_attack(name: str, *, fs: float, leads: tuple[str, ...] | list[str], params: dict[str, Any] | None = None
                 ) -> Attack:
    """Build an attack by registry name with the paper's defaults, overridden by `params`.

    Constraint parameters (`eps_limb_mv`, `eps_chest_mv`, `eps_mv` per lead, `cutoff_hz`, `window_ms`) apply to
    the universal attacks; the rest go to the attack's constructor. Every parameter error is an `AttackError`.
    """
    spec = ATTACKS.get(name)
    if spec is None:
        raise AttackError(f"unknown attack '{name}'; choose one of {', '.join(ATTACKS)}.")
    return spec.build(float(fs), tuple(leads), dict(params or {}))


def schema_enums() -> dict[str, list[str]]:
    """The `$defs` enums the profile and report schemas take from this registry."""
    return {"attack_name": list(ATTACKS),
            "sweepable_attack_name": [name for name, spec in ATTACKS.items() if spec.sweepable]}
