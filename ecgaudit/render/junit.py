"""JUnit XML: one test case per gate rule, so CI systems show each rule natively."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any


def render_junit(report: dict[str, Any]) -> bytes:
    """One case per gate rule, plus one per attack-failure indicator (a fired one fails, so a CI system never
    reads an INCONCLUSIVE scan as a pass)."""
    rules = report["gate"]["rules"]
    indicators = [i for i in report.get("indicators", []) if i["status"] != "not-applicable"]
    failures = sum(1 for r in rules if not r["passed"]) + sum(1 for i in indicators if i["status"] == "fired")
    suite = ET.Element(
        "testsuite",
        {
            "name": f"ecgaudit.{report['profile']['name']}",
            "tests": str(len(rules) + len(indicators)),
            "failures": str(failures),
            "errors": "0",
            "skipped": "0",
            "time": f"{report.get('timing_seconds', {}).get('total', 0.0):.3f}",
            "timestamp": report["created"],
        },
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("model_sha256", report["model"]["sha256"]),
        ("profile_sha256", report["profile"]["sha256"]),
        ("verdict", report["gate"]["verdict"]),
    ):
        ET.SubElement(props, "property", {"name": name, "value": value})
    for rule in rules:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": f"ecgaudit.{report['profile']['name']}.{rule['kind']}",
                "name": rule["id"],
            },
        )
        if not rule["passed"]:
            failure = ET.SubElement(
                case,
                "failure",
                {
                    "message": rule["message"],
                    "type": "RegressionFailure" if rule["kind"] == "regression" else "GateFailure",
                },
            )
            failure.text = (
                f"measured={rule['value']} bound={rule['bound']} op={rule['op']} "
                f"threshold={rule['threshold']}\nwhy: {rule['why']}"
            )
        else:
            ET.SubElement(case, "system-out").text = rule["message"]
    for indicator in indicators:
        name = indicator["id"] + (f"-{indicator['attack']}" if indicator.get("attack") else "")
        case = ET.SubElement(suite, "testcase", {
            "classname": f"ecgaudit.{report['profile']['name']}.indicator", "name": f"indicator-{name}"})
        if indicator["status"] == "fired":
            failure = ET.SubElement(case, "failure", {"message": indicator["summary"], "type": "Inconclusive"})
            failure.text = f"{indicator['title']}: {indicator['summary']}"
        else:
            ET.SubElement(case, "system-out").text = f"{indicator['status']}: {indicator['summary']}"
    ET.indent(suite)
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        + ET.tostring(ET.ElementTree(suite).getroot(), encoding="utf-8")
        + b"\n"
    )
