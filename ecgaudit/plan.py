"""Planning a run: everything `ecgaudit scan` and `ecgaudit attack` decide before any model work.

`plan_scan` / `plan_attack` do all the failing that can happen before model work: every attack is built (so a
parameter the attack rejects is found before the first one runs), transfer lead maps are resolved, surrogate
paths are checked and the data spec is settled. `ecgaudit.scan.execute` then carries the plan out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ecgaudit.attacks import build_attack
from ecgaudit.defaults import DEFAULT_DATA, builtin_model_path
from ecgaudit.errors import AttackError
from ecgaudit.profiles import Profile
from ecgaudit.threats import ThreatSettings

if TYPE_CHECKING:
    from ecgaudit.attacks.interface import PerSampleAttack, UniversalAttack
    from ecgaudit.attacks.scar import SCAR
    from ecgaudit.data.labels import LabelMap
    from ecgaudit.models.interface import ModelAdapter


@dataclass(frozen=True)
class ScanConfig:
    model: ModelAdapter
    profile: Profile
    data: str = DEFAULT_DATA
    seed: int | None = None
    """Overrides the profile's seed when given."""
    transfer_models: Sequence[ModelAdapter] = ()
    baseline: dict[str, Any] | None = None
    surrogates: Sequence[str] = ()
    """Extra reference surrogates for the transfer threat model (`--surrogate`), beside the profile's."""
    label_map: LabelMap | None = None
    """How the data's diagnosis codes become labels (`--label-map`); None: the source's own or the built-in."""


@dataclass(frozen=True)
class PlannedAttack:
    id: str
    attack: UniversalAttack | PerSampleAttack
    transfer: bool
    """Measure its universal perturbation on the transfer models too."""


@dataclass(frozen=True)
class TransferTarget:
    model: ModelAdapter
    lead_index: tuple[int, ...]
    """For each of the target's leads, its index among the source model's leads."""


@dataclass(frozen=True)
class Plan:
    """Everything a run will do, checked before any model work."""

    model: ModelAdapter
    profile: Profile | None
    """None for `ecgaudit attack` (no gate)."""
    data_spec: str
    seed: int
    n_craft: int
    n_eval: int
    attacks: tuple[PlannedAttack, ...]
    transfer_targets: tuple[TransferTarget, ...] = ()
    transfer_data: tuple[str, ...] = ()
    sweep: tuple[SCAR, tuple[float, ...]] | None = None
    baseline: dict[str, Any] | None = None
    threats: ThreatSettings = field(default_factory=ThreatSettings)
    indicators: bool = True
    """Compute the attack-failure indicators (scans); a bare `attack` run skips them."""
    label_map: LabelMap | None = None


def resolve_data_spec(spec: str, n_records: int) -> str:
    """`builtin:synthetic` without options generates exactly the records the splits need."""
    return f"{DEFAULT_DATA}:n={n_records}" if spec == DEFAULT_DATA else spec


def _transfer_targets(model: ModelAdapter, targets: Sequence[ModelAdapter]) -> tuple[TransferTarget, ...]:
    source = list(model.card.leads)
    resolved = []
    for target in targets:
        missing = [lead for lead in target.card.leads if lead not in source]
        if missing:
            raise AttackError(
                f"cannot transfer to {target.path.name}: it takes lead(s) {', '.join(missing)}, which "
                f"{model.path.name} does not have, so no perturbation exists for them."
            )
        resolved.append(TransferTarget(target, tuple(source.index(lead) for lead in target.card.leads)))
    return tuple(resolved)


def plan_scan(config: ScanConfig) -> Plan:
    """Build every attack of the profile, resolve transfer lead maps and the data spec; raise on any error."""
    profile, card = config.profile, config.model.card
    settings = profile.data["data"]
    seed = settings["seed"] if config.seed is None else config.seed
    if seed < 0:
        raise AttackError(f"the seed must be a non-negative integer; got {seed}.")
    transfer_ids = set(profile.data.get("transfer", {}).get("attacks", []))
    attacks = tuple(
        PlannedAttack(entry["id"], build_attack(entry["attack"], fs=card.fs, leads=card.leads,
                                                params=entry.get("params")), entry["id"] in transfer_ids)
        for entry in profile.attacks
    )
    sweep = None
    if profile.data.get("sweep"):
        settings_sweep = profile.data["sweep"]
        sweep_attack = build_attack(settings_sweep["attack"], fs=card.fs, leads=card.leads,
                                    params=settings_sweep.get("params"))
        chest = tuple(float(v) for v in settings_sweep["chest_eps_mv"])
        for value in chest:  # builds each point's constraint now, so a bad amplitude fails before any work
            sweep_attack.constraint.with_chest_eps(value, card.leads)  # type: ignore[union-attr]
        sweep = (sweep_attack, chest)
    n_craft, n_eval = settings["n_craft"], settings["n_eval"]
    threats = ThreatSettings.from_profile(profile.data.get("threat_models"))
    threats = _with_surrogates(threats, threats.transfer + tuple(str(s) for s in config.surrogates))
    return Plan(
        model=config.model, profile=profile, data_spec=resolve_data_spec(config.data, n_craft + n_eval), seed=seed,
        n_craft=n_craft, n_eval=n_eval, attacks=attacks,
        transfer_targets=_transfer_targets(config.model, config.transfer_models), sweep=sweep,
        baseline=config.baseline, threats=threats, label_map=config.label_map,
    )


def _with_surrogates(threats: ThreatSettings, specs: Sequence[str]) -> ThreatSettings:
    """Check every surrogate spec names a bundled model or an existing file (before any model work)."""
    from dataclasses import replace

    from ecgaudit.errors import ModelError

    unique = tuple(dict.fromkeys(specs))
    for spec in unique:
        path = builtin_model_path(spec)
        if not path.is_file():
            raise ModelError(f"surrogate model {spec} does not exist; give builtin:cnn or a model file path.")
    return replace(threats, transfer=unique)


def plan_attack(
    model: ModelAdapter, name: str, *, params: dict[str, Any] | None = None, data: str = DEFAULT_DATA,
    n_craft: int = 200, n_eval: int = 200, seed: int = 0, transfer_models: Sequence[ModelAdapter] = (),
    transfer_data: Sequence[str] = (), sweep_chest_mv: Sequence[float] = (),
    threat_models: Sequence[str] = ("white-box", "bpda"), surrogates: Sequence[str] = ("builtin:cnn",),
    queries: int | None = None,
) -> Plan:
    """One attack (the `attack` command): no profile, no gate; optional transfer and amplitude sweep.

    `threat_models` picks which of white-box, bpda, transfer and black-box run (default: the gradient ones);
    `queries` is the black-box budget (universal: in all; per-record: per record).
    """
    card = model.card
    if n_craft < 1 or n_eval < 1:
        raise AttackError("craft and eval splits need at least one record each.")
    if seed < 0:
        raise AttackError(f"the seed must be a non-negative integer; got {seed}.")
    attack = build_attack(name, fs=card.fs, leads=card.leads, params=params)
    sweep = None
    if sweep_chest_mv:
        if not getattr(attack.constraint, "cutoff_hz", None) or not attack.universal:
            raise AttackError("--sweep applies to scar and scar-stealth only.")
        sweep = (attack, tuple(float(v) for v in sweep_chest_mv))
    from ecgaudit.threats import THREAT_MODELS

    unknown = [t for t in threat_models if t not in THREAT_MODELS]
    if unknown:
        raise AttackError(f"unknown threat model '{unknown[0]}'; choose from {', '.join(THREAT_MODELS)}.")
    defaults = ThreatSettings()
    budget = queries or (defaults.queries_universal if attack.universal else defaults.queries_per_record)
    threats = ThreatSettings(
        white_box="white-box" in threat_models, bpda="bpda" in threat_models,
        transfer=tuple(surrogates) if "transfer" in threat_models else (), black_box="black-box" in threat_models,
        queries_universal=budget, queries_per_record=budget)
    return Plan(
        model=model, profile=None, data_spec=resolve_data_spec(data, n_craft + n_eval), seed=seed, n_craft=n_craft,
        n_eval=n_eval, attacks=(PlannedAttack(name, attack, True),),
        transfer_targets=_transfer_targets(model, transfer_models), transfer_data=tuple(transfer_data),
        sweep=sweep, threats=_with_surrogates(threats, threats.transfer), indicators=False,  # type: ignore[arg-type]
    )
