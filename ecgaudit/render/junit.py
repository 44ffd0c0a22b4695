"""JUnit XML: one test case per gate rule, so CI systems show each rule natively.

Each case carries the time of the stage it gates (the attack's, or setup and clean evaluation for accuracy
rules), its rule as properties, and, when it fails, a body that states the rule, the measurement and the
rule's own reason from the profile.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from ecgaudit.render.interface import Artifacts


def _number(value: Any) -> str:
    return "not measured" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)


def _rule_time(report: Mapping[str, Any], rule: Mapping[str, Any]) -> float:
    timings = report.get("timing_seconds") or {}
    return float(timings.get(rule.get("attack") or "setup", 0.0) or 0.0)


def _statement(rule: Mapping[str, Any]) -> str:
    subject = f"attack {rule['attack']}" if rule.get("attack") else "clean evaluation"
    if rule["kind"] == "regression":
        return (f"{rule['metric']} of {subject} may be worse than in the baseline report by at most "
                f"{_number(rule['threshold'])}")
    side = "upper" if rule["op"] == "<=" else "lower"
    return f"{rule['metric']} of {subject}: its {side} 95% bound must be {rule['op']} {_number(rule['threshold'])}"


def _body(rule: Mapping[str, Any]) -> str:
    ci = rule.get("ci95")
    measured = f"measured {_number(rule['value'])}"
    if ci:
        measured += f", 95% CI [{_number(ci[0])}, {_number(ci[1])}]"
    measured += f", bound used {_number(rule['bound'])}"
    if rule["kind"] == "regression":
        measured += f" (baseline {_number(rule.get('baseline_value'))}, now {_number(rule.get('new_value'))})"
    return f"{rule['message']}\nrule: {_statement(rule)}\n{measured}\nwhy this rule: {rule['why']}"


def render_junit(report: Mapping[str, Any], artifacts: Artifacts | None = None) -> bytes:
    """One case per gate rule, plus one per attack-failure indicator (a fired one fails, so a CI system never
    reads an INCONCLUSIVE scan as a pass)."""
    rules = report["gate"]["rules"]
    profile = report["profile"]
    indicators = [i for i in report.get("indicators", []) if i["status"] != "not-applicable"]
    failures = sum(1 for r in rules if not r["passed"]) + sum(1 for i in indicators if i["status"] == "fired")
    suite = ET.Element(
        "testsuite",
        {
            "name": f"ecgaudit.{profile['name']}",
            "tests": str(len(rules) + len(indicators)),
            "failures": str(failures),
            "errors": "0",
            "skipped": "0",
            "time": f"{(report.get('timing_seconds') or {}).get('total', 0.0):.3f}",
            "timestamp": report["created"],
        },
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("verdict", report["gate"]["verdict"]),
        ("model", str(report["model"].get("path", ""))),
        ("model_sha256", report["model"]["sha256"]),
        ("profile", f"{profile['name']} {profile.get('version', '')}".strip()),
        ("profile_sha256", profile["sha256"]),
        ("data_source", str((report.get("data") or {}).get("source", ""))),
        ("seed", str(report.get("seed", ""))),
        ("ecgaudit_version", str((report.get("tool") or {}).get("version", ""))),
    ):
        ET.SubElement(props, "property", {"name": name, "value": value})
    for rule in rules:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": f"ecgaudit.{profile['name']}.{rule['kind']}",
                "name": rule["id"],
                "time": f"{_rule_time(report, rule):.3f}",
            },
        )
        case_props = ET.SubElement(case, "properties")
        for key in ("metric", "attack", "op", "threshold", "value", "bound"):
            if rule.get(key) is not None:
                ET.SubElement(case_props, "property", {"name": key, "value": _number(rule[key])})
        if not rule["passed"]:
            failure = ET.SubElement(
                case,
                "failure",
                {
                    "message": rule["message"],
                    "type": "RegressionFailure" if rule["kind"] == "regression" else "GateFailure",
                },
            )
            failure.text = _body(rule)
        else:
            ET.SubElement(case, "system-out").text = f"{rule['message']}\nwhy this rule: {rule['why']}"
    for indicator in indicators:
        name = indicator["id"] + (f"-{indicator['attack']}" if indicator.get("attack") else "")
        case = ET.SubElement(suite, "testcase", {
            "classname": f"ecgaudit.{profile['name']}.indicator", "name": f"indicator-{name}"})
        if indicator["status"] == "fired":
            failure = ET.SubElement(case, "failure", {"message": indicator["summary"], "type": "Inconclusive"})
            failure.text = f"{indicator['title']}: {indicator['summary']}\nevidence: {indicator['evidence']}"
        else:
            ET.SubElement(case, "system-out").text = f"{indicator['status']}: {indicator['summary']}"
    ET.indent(suite)
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        + ET.tostring(ET.ElementTree(suite).getroot(), encoding="utf-8")
        + b"\n"
    )
