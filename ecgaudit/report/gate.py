"""Gate rules: a metric's conservative 95% bound against the profile's threshold, and regressions."""

from __future__ import annotations

import math
from typing import Any

from ecgaudit.errors import ProfileError
from ecgaudit.report.model import GateRule, Report


def _metric(report: Report, rule: dict[str, Any]) -> Any:
    if rule["metric"] == "accuracy":
        return report["clean"].get("accuracy")
    attack = next((a for a in report["attacks"] if a["id"] == rule["attack"]), None)
    return None if attack is None else attack["metrics"].get(rule["metric"])


def measured(report: Report, rule: dict[str, Any]) -> tuple[float | None, float | None, list[float] | None]:
    """(value, conservative bound, ci95) of the rule's metric; None where the metric was not measured."""
    entry = _metric(report, rule)
    if entry is None:
        return None, None, None
    if isinstance(entry, dict):
        value = entry.get("value")
        ci = entry.get("ci95")
        if value is None or ci is None:
            return None, None, None
        bound = ci[1] if rule["op"] == "<=" else ci[0]
        return float(value), float(bound), [float(ci[0]), float(ci[1])]
    return float(entry), float(entry), None


def _why_unmeasured(report: Report) -> str:
    labels = (report.get("data") or {}).get("labels")
    if labels:
        return (f"the data's labels, from {labels.get('name')}, name none of the model's classes; map its codes to "
                "them with --label-map FILE.csv (code,class rows)")
    return "the data may carry no labels"


def evaluate_rules(report: Report, rules: list[dict[str, Any]]) -> list[GateRule]:
    """One result per rule; a metric that could not be measured fails its rule, with the reason."""
    results: list[GateRule] = []
    for rule in rules:
        value, bound, ci = measured(report, rule)
        if bound is None:
            passed = False
            message = f"{rule['metric']} was not measured ({_why_unmeasured(report)})"
        else:
            passed = bound <= rule["threshold"] if rule["op"] == "<=" else bound >= rule["threshold"]
            side = "upper" if rule["op"] == "<=" else "lower"
            message = (f"{rule['metric']} {value:.4g} ({side} 95% bound {bound:.4g}) {rule['op']} "
                       f"{rule['threshold']:g}: {'pass' if passed else 'FAIL'}")
        results.append({
            "id": rule["id"], "kind": "threshold", "attack": rule.get("attack"), "metric": rule["metric"],
            "op": rule["op"], "threshold": rule["threshold"], "value": value, "bound": bound, "ci95": ci,
            "passed": passed, "why": rule["why"], "message": message,
        })
    return results


def regressions(
    report: Report, baseline: Report, rules: list[dict[str, Any]], tolerance: float
) -> list[GateRule]:
    """A rule whose metric got worse than in `baseline` by more than `tolerance` fails as a regression."""
    if baseline.get("profile", {}).get("name") != report["profile"]["name"]:
        raise ProfileError(
            f"the baseline report is from profile '{baseline.get('profile', {}).get('name')}', not "
            f"'{report['profile']['name']}'; compare reports of the same profile."
        )
    results: list[GateRule] = []
    for rule in rules:
        new, _, new_ci = measured(report, rule)
        old, _, old_ci = measured(baseline, rule)
        if new is None or old is None:
            continue
        worse_by = (new - old) if rule["op"] == "<=" else (old - new)
        passed = worse_by <= tolerance
        change = difference_interval(new, new_ci, old, old_ci)
        # A change is an improvement or a worsening only when its interval excludes zero.
        better = (change["ci95"][1] < 0 if rule["op"] == "<=" else change["ci95"][0] > 0) if change else False
        worse = (change["ci95"][0] > 0 if rule["op"] == "<=" else change["ci95"][1] < 0) if change else False
        direction = "improved" if better else "worse" if worse else "no significant change"
        interval = (f" [95% CI of the change {change['ci95'][0]:+.3f}, {change['ci95'][1]:+.3f}]" if change else "")
        results.append({
            "id": f"regression-{rule['id']}", "kind": "regression", "attack": rule.get("attack"),
            "metric": rule["metric"], "op": "<=", "threshold": tolerance, "value": worse_by, "bound": worse_by,
            "ci95": None, "baseline_value": old, "new_value": new, "passed": passed,
            "change": {"difference": new - old, "ci95": change["ci95"] if change else None, "direction": direction},
            "why": f"no worse than the baseline report by more than the profile's tolerance ({tolerance:g})",
            "message": f"{rule['metric']} {old:.4g} → {new:.4g} ({direction}: {new - old:+.4g}{interval}; "
                       f"tolerance {tolerance:g} for a worsening): {'pass' if passed else 'REGRESSION'}",
        })
    return results


def difference_interval(new: float, new_ci: list[float] | None, old: float, old_ci: list[float] | None
                        ) -> dict[str, Any] | None:
    """`new − old` of two independent proportions with Newcombe's hybrid score interval (Newcombe 1998, method
    10), built from each one's Wilson interval; None when either has no interval (a metric that is not a rate)."""
    if new_ci is None or old_ci is None:
        return None
    low = (new - old) - math.sqrt((new - new_ci[0]) ** 2 + (old_ci[1] - old) ** 2)
    high = (new - old) + math.sqrt((new_ci[1] - new) ** 2 + (old - old_ci[0]) ** 2)
    return {"difference": new - old, "ci95": [max(-1.0, low), min(1.0, high)]}
