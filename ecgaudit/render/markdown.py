"""A markdown summary of a scan (for `GITHUB_STEP_SUMMARY`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ecgaudit.render import facts
from ecgaudit.render.interface import Artifacts


def _rate(entry: Any) -> str:
    if not isinstance(entry, dict) or entry.get("value") is None:
        return "—"
    return f"{entry['value']:.1%} [{entry['ci95'][0]:.1%}, {entry['ci95'][1]:.1%}]"


ICONS = {"PASS": "✅ PASS", "FAIL": "❌ FAIL", "INCONCLUSIVE": "⚠️ INCONCLUSIVE"}


def render_markdown(report: Mapping[str, Any], artifacts: Artifacts | None = None) -> bytes:
    """The step summary as UTF-8 markdown: verdict, data warnings, attacks with their worst case and noise floor,
    rules, fired indicators and deviations."""
    verdict = report["gate"]["verdict"]
    lines = [
        f"## ecgaudit scan: {ICONS.get(verdict, verdict)}",
        "",
        f"Model `{Path(report['model']['path']).name}` (sha256 `{report['model']['sha256'][:16]}…`), "
        f"profile `{report['profile']['name']}` {report['profile']['version']}, "
        f"clean accuracy {_rate(report['clean'].get('accuracy'))}.",
        "",
    ]
    for warning in (facts.synthetic_warning(report), facts.shortfall(report), facts.white_box_not_possible(report)):
        if warning:
            lines += [f"> **Warning:** {warning}", ""]
    lines += [
        "| attack | worst case from | fooling rate | noise floor (max) | robust accuracy | SNR dB | SSIM |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for attack in report["attacks"]:
        m = attack["metrics"]
        worst = (attack.get("worst_case") or {}).get("threat_model", "—")
        lines.append(f"| {attack['id']} | {worst} | {_rate(m['fooling_rate'])} | "
                     f"{_rate((attack.get('noise_floor') or {}).get('max'))} | {_rate(m.get('robust_accuracy'))} | "
                     f"{m['snr_db']:.1f} | {m['ssim']:.3f} |")
    lines += ["", "| rule | result | detail |", "| --- | --- | --- |"]
    for rule in report["gate"]["rules"]:
        lines.append(f"| {rule['id']} | {'pass' if rule['passed'] else '**FAIL**'} | {rule['message']} |")
    failed = [rule for rule in report["gate"]["rules"] if not rule["passed"]]
    if failed:
        lines += ["", "Why the failing rules exist:", ""]
        lines += [f"- **{rule['id']}**: {rule['why']}" for rule in failed]
    fired = [i for i in report.get("indicators", []) if i["status"] == "fired"]
    if fired:
        lines += ["", "Attack-failure indicators that fired (the figures above cannot be read as robustness):", ""]
        lines += [f"- **{i['id']}**: {i['summary']}" for i in fired]
    deviations = facts.deviations(report)
    if deviations:
        lines += ["", "Deviations from the profile:", ""]
        lines += [f"- {d}" for d in deviations]
    return ("\n".join(lines) + "\n").encode("utf-8")
