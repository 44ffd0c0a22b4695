"""JUnit XML: one test case per gate rule, so CI systems show each rule natively."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any


def render_junit(report: dict[str, Any]) -> bytes:
    rules = report["gate"]["rules"]
    failures = sum(1 for r in rules if not r["passed"])
    suite = ET.Element(
        "testsuite",
        {
            "name": f"ecgaudit.{report['profile']['name']}",
            "tests": str(len(rules)),
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
    ET.indent(suite)
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        + ET.tostring(ET.ElementTree(suite).getroot(), encoding="utf-8")
        + b"\n"
    )
