"""Gate rules: a metric's conservative 95% bound against the profile's threshold, and regressions."""

from __future__ import annotations

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


def evaluate_rules(report: Report, rules: list[dict[str, Any]]) -> list[GateRule]:
    """One result per rule; a metric that could not be measured fails its rule, with the reason."""
    results: list[GateRule] = []
    for rule in rules:
        value, bound, ci = measured(report, rule)
        if bound is None:
            passed = False
            message = f"{rule['metric']} was not measured (the data may carry no labels)"
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
        new, _, _ = measured(report, rule)
        old, _, _ = measured(baseline, rule)
        if new is None or old is None:
            continue
        worse_by = (new - old) if rule["op"] == "<=" else (old - new)
        passed = worse_by <= tolerance
        results.append({
            "id": f"regression-{rule['id']}", "kind": "regression", "attack": rule.get("attack"),
            "metric": rule["metric"], "op": "<=", "threshold": tolerance, "value": worse_by, "bound": worse_by,
            "ci95": None, "baseline_value": old, "new_value": new, "passed": passed,
            "why": f"no worse than the baseline report by more than the profile's tolerance ({tolerance:g})",
            "message": f"{rule['metric']} {old:.4g} → {new:.4g} (worse by {worse_by:+.4g}; tolerance {tolerance:g}): "
                       f"{'pass' if passed else 'REGRESSION'}",
        })
    return results
