"""A markdown summary of a scan (for `GITHUB_STEP_SUMMARY`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _rate(entry: Any) -> str:
    if not isinstance(entry, dict) or entry.get("value") is None:
        return "—"
    return f"{entry['value']:.1%} [{entry['ci95'][0]:.1%}, {entry['ci95'][1]:.1%}]"


ICONS = {"PASS": "✅ PASS", "FAIL": "❌ FAIL", "INCONCLUSIVE": "⚠️ INCONCLUSIVE"}


def render_markdown(report: dict[str, Any]) -> str:
    verdict = report["gate"]["verdict"]
    lines = [
        f"## ecgaudit scan: {ICONS.get(verdict, verdict)}",
        "",
        f"Model `{Path(report['model']['path']).name}` (sha256 `{report['model']['sha256'][:16]}…`), "
        f"profile `{report['profile']['name']}` {report['profile']['version']}, "
        f"clean accuracy {_rate(report['clean'].get('accuracy'))}.",
        "",
        "| attack | fooling rate | robust accuracy | SNR dB | SSIM |",
        "| --- | --- | --- | --- | --- |",
    ]
    for attack in report["attacks"]:
        m = attack["metrics"]
        lines.append(f"| {attack['id']} | {_rate(m['fooling_rate'])} | {_rate(m.get('robust_accuracy'))} | "
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
    return "\n".join(lines) + "\n"
