"""`ecgaudit verify --reproduce`: rerun the scan a report describes and list every metric that drifted."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecgaudit.errors import ReportError
from ecgaudit.io import file_sha256, json_bytes
from ecgaudit.models import load_model
from ecgaudit.models.interface import ModelAdapter
from ecgaudit.plan import ScanConfig
from ecgaudit.profiles import Profile
from ecgaudit.report.model import Report
from ecgaudit.scan import prepare_splits, run_scan

if TYPE_CHECKING:
    from ecgaudit.attacks.harness import Reporter

FLOAT_TOLERANCE = 1e-9
IGNORED = {"seconds", "timing_seconds", "created", "path", "source", "environment"}
"""Keys that legitimately differ between runs (wall times, paths, the machine)."""


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key in sorted(value):
            if key not in IGNORED:
                yield from _leaves(value[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{prefix}[{i}]")
    else:
        yield prefix, value


def _missing(value: Any) -> bool:
    """None or NaN: a report stores an unmeasurable number as null (JSON has no NaN); a rerun may hold NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _differs(old: Any, new: Any) -> bool:
    if _missing(old) or _missing(new):
        return not (_missing(old) and _missing(new))
    if isinstance(old, float | int) and isinstance(new, float | int) and not isinstance(old, bool):
        return abs(float(old) - float(new)) > FLOAT_TOLERANCE * max(1.0, abs(float(old)))
    return old != new


def _load_audited(model: Path, report: Report) -> ModelAdapter:
    card = report["model"].get("card")
    if not isinstance(card, dict):
        return load_model(model)
    with tempfile.TemporaryDirectory(prefix="ecgaudit-card-") as folder:
        card_path = Path(folder) / "card.json"
        card_path.write_bytes(json_bytes(card))
        return load_model(model, card_path=card_path)


def compare_reports(old: Report, new: Report) -> list[str]:
    """Every measured quantity (and digest) that differs, as 'path: old → new' lines."""
    if old.get("baseline") is not None:
        # regression rules depend on the baseline, not on this run: compare the profile's own rules only
        old = {**old, "gate": {"rules": [r for r in old["gate"]["rules"] if r.get("kind") != "regression"]}}
        new = {**new, "gate": {"rules": new["gate"]["rules"]}}
    drift = []
    for section in ("seed", "data", "clean", "threat_models", "attacks", "transfer", "sweep", "indicators", "gate"):
        old_leaves, new_leaves = dict(_leaves(old.get(section), section)), dict(_leaves(new.get(section), section))
        for key in sorted(set(old_leaves) | set(new_leaves)):
            a, b = old_leaves.get(key, "<absent>"), new_leaves.get(key, "<absent>")
            if _differs(a, b):
                drift.append(f"{key}: {a} → {b}")
    return drift


def reproduce(report: Report, *, model: Path, data: str | None = None,
              transfer_models: list[Path] | None = None, reporter: Reporter | None = None) -> list[str]:
    """Rerun the described scan on `model` (which must be the audited file) and return the drift lines.

    The model is read with the card the scan used (`model.card` in the report), so flags that overrode the
    sidecar card then hold now, and a sidecar edited since cannot change the rerun.
    """
    try:
        model_sha = file_sha256(model)
    except OSError as exc:
        raise ReportError(f"model file {model} cannot be read ({exc.strerror}).") from exc
    if model_sha != report["model"]["sha256"]:
        raise ReportError(
            f"{model} (sha256 {model_sha}) is not the model the report audited (sha256 {report['model']['sha256']})."
        )
    adapter = _load_audited(model, report)
    resolved = report["profile"]["resolved"]
    profile = Profile(name=report["profile"]["name"], source="report", text=b"", data=resolved)
    spec = data or report["data"]["source"]
    seed = int(report["seed"])
    # The splits decide every metric: when they already differ, say so without rerunning every attack.
    data_drift = compare_reports({"data": report["data"]}, {"data": prepare_splits(adapter, profile, spec, seed)
                                                            .summary(seed)})
    if data_drift:
        return data_drift + [f"seed: {seed} (the data splits differ, so every metric would; attacks not rerun)"]
    targets = [load_model(p) for p in (transfer_models or [])]
    config = ScanConfig(model=adapter, profile=profile, data=spec, seed=seed, transfer_models=targets)
    rerun = run_scan(config, reporter).report
    if not targets:
        rerun["transfer"] = report.get("transfer", [])
    return compare_reports(report, rerun)
