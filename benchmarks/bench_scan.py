"""Wall time of `ecgaudit scan` on the bundled CNN under the `ci` and `samd` profiles.

    python benchmarks/bench_scan.py [--profiles ci samd] [--model examples/models/cnn.onnx]

Targets (2 CPU cores): ci under 2 minutes, samd under 5 minutes. Runs the real CLI in a subprocess, so the
time includes start-up, model loading, every attack, transfer, the sweep, the PDF and the report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = {"ci": 120, "samd": 300}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", nargs="+", default=["ci", "samd"])
    parser.add_argument("--model", type=Path, default=ROOT / "examples" / "models" / "cnn.onnx")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}  model: {args.model.name}")
    for profile in args.profiles:
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "ecgaudit", "scan", str(args.model), "--profile", profile,
                                   "--out", out, "--quiet"], capture_output=True, text=True)
            wall = time.perf_counter() - started
            report = json.loads((Path(out) / "report.json").read_text())
        stages = ", ".join(f"{k} {v:.0f}s" for k, v in report["timing_seconds"].items())
        target = TARGET_S.get(profile)
        verdict = "" if target is None else f" (target {target}s: {'met' if wall <= target else 'MISSED'})"
        print(f"{profile:6s} wall {wall:6.1f} s{verdict}  exit {proc.returncode}  verdict {report['gate']['verdict']}")
        print(f"       stages: {stages}")


if __name__ == "__main__":
    main()
