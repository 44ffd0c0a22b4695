"""The report's shape, defined once as types: what `report.json` holds, key by key.

The report travels as plain JSON-able dicts (it is signed byte for byte and read back by `verify`, `render` and
`--baseline`), so its parts are `TypedDict`s: the scan builds them, the gate, reproduce and the renderers read
them, and a type checker holds each to the same names. `schemas/report.schema.json` states the same shape for
readers outside Python, and every report is validated against it before it is written.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE"]
ThreatModelName = Literal["white-box", "bpda", "transfer", "black-box"]


class Rate(TypedDict):
    """A proportion with its 95% Wilson score interval (`value` None when nothing was counted)."""

    value: float | None
    ci95: list[float]
    successes: int
    total: int


class Misdiagnosis(TypedDict):
    classes: list[str]
    matrix: list[list[int]]
    n_changed: int
    top_target: str | None
    top_target_share: float | None
    top_targets: NotRequired[list[str]]
    per_label: NotRequired[dict[str, dict[str, int]]]


class Metrics(TypedDict):
    """Every figure of one perturbation on the evaluation records, measured on the vendor's runtime."""

    n_records: int
    fooling_rate: Rate
    attack_success_rate: NotRequired[Rate]
    robust_accuracy: NotRequired[Rate]
    clean_accuracy: NotRequired[Rate]
    snr_db: float | None
    ssim: float | None
    linf_mv: float
    per_lead: dict[str, dict[str, float]]
    power_below_cutoff: NotRequired[float]
    cutoff_hz: NotRequired[float]
    misdiagnosis: Misdiagnosis


class Perturbation(TypedDict):
    shape: list[int]
    unit: Literal["mV"]
    sha256: str
    path: str


QUERY_BUDGET_SENTENCE = " Query budget: "
"""Starts the last sentence of a black-box `knowledge` text: that one attack's query budget (summaries across
attacks cut it off there)."""


class ThreatModelResult(TypedDict):
    """One attack under one threat model: what the attacker knew, whether it ran, and its own figures."""

    threat_model: ThreatModelName
    status: Literal["ran", "not-possible", "not-applicable", "off"]
    knowledge: str
    reason: NotRequired[str]
    method: NotRequired[str]
    metrics: NotRequired[Metrics]
    seconds: NotRequired[dict[str, float]]
    info: NotRequired[dict[str, Any]]
    perturbation: NotRequired[Perturbation]
    query_budget: NotRequired[int]
    surrogates: NotRequired[list[dict[str, Any]]]


class NoiseFloor(TypedDict):
    kind: str
    draws: int
    per_draw: list[Rate]
    mean: float
    max: Rate


class AttackResult(TypedDict):
    """One profile attack: its gated (worst-case) metrics, each threat model's own, and what they mean."""

    id: str
    attack: str
    params: dict[str, Any]
    universal: bool
    n_craft: int
    n_eval: int
    metrics: Metrics
    worst_case: dict[str, str]
    threat_models: list[ThreatModelResult]
    noise_floor: NoiseFloor
    clinical: dict[str, Any]
    seconds: dict[str, float]
    info: dict[str, Any]
    variants: NotRequired[dict[str, Metrics]]
    perturbation: NotRequired[Perturbation]


class GateRule(TypedDict):
    """One rule's result: the metric's conservative bound against the profile's threshold, and why it exists."""

    id: str
    kind: Literal["threshold", "regression"]
    attack: str | None
    metric: str
    op: Literal["<=", ">="]
    threshold: float
    value: float | None
    bound: float | None
    ci95: list[float] | None
    passed: bool
    why: str
    message: str
    baseline_value: NotRequired[float]
    new_value: NotRequired[float]
    change: NotRequired[dict[str, Any]]
    """Regression rules: new − baseline with Newcombe's 95% interval, and whether it improved or got worse."""


class Gate(TypedDict):
    rules: list[GateRule]
    verdict: Verdict
    inconclusive: list[str]


class Indicator(TypedDict):
    """An attack-failure indicator (`ecgaudit.indicators`) with its evidence."""

    id: str
    title: str
    status: Literal["fired", "passed", "not-applicable"]
    summary: str
    evidence: dict[str, Any]
    attack: str | None


class Report(TypedDict):
    """The whole `report.json`."""

    schema_version: str
    tool: dict[str, str]
    created: str
    profile: dict[str, Any]
    model: dict[str, Any]
    data: dict[str, Any]
    environment: dict[str, Any]
    seed: int
    clean: dict[str, Any]
    threat_models: dict[str, Any]
    attacks: list[AttackResult]
    transfer: list[dict[str, Any]]
    transfer_data: NotRequired[list[dict[str, Any]]]
    sweep: dict[str, Any] | None
    indicators: list[Indicator]
    gate: Gate
    timing_seconds: dict[str, float]
    baseline: NotRequired[dict[str, Any]]
    samples: NotRequired[dict[str, Any]]
    artifacts: NotRequired[list[dict[str, str]]]
    signing: NotRequired[dict[str, Any]]
