"""How long `ecgaudit` takes to refuse inputs it can judge without loading the model (a CI job's wasted minutes).

Each case is a file a CI job can hand ecgaudit by mistake or by malice; each must end in exit 2 with its one-line
message, before torch and onnxruntime are imported. The script runs the installed `ecgaudit` on each case
`--repeat` times in a fresh process and prints the median and worst wall time; `--limit-s` (default 1.0) is the
target on a quiet machine, and the exit status is 1 when a case misses it or is not refused as expected.

    python benchmarks/bench_refusals.py [--repeat 5] [--limit-s 1.0] [--json refusals.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.hostile_inputs import HOSTILE  # noqa: E402  (the same inputs the tests refuse)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--limit-s", type=float, default=1.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    ecgaudit = shutil.which("ecgaudit") or str(Path(sys.executable).parent / "ecgaudit")
    rows, ok = [], True
    for name, (make, message) in HOSTILE.items():
        times = []
        with tempfile.TemporaryDirectory() as folder:
            argv = make(Path(folder))
            for _ in range(args.repeat):
                started = time.perf_counter()
                done = subprocess.run([ecgaudit, *argv], capture_output=True, text=True)
                times.append(time.perf_counter() - started)
                if done.returncode != 2 or message not in done.stderr:
                    print(f"{name}: not refused as expected (exit {done.returncode}): {done.stderr.strip()}")
                    ok = False
        row = {"case": name, "median_s": statistics.median(times), "max_s": max(times)}
        ok &= row["max_s"] < args.limit_s
        rows.append(row)
        print(f"{name:28s} median {row['median_s']:.3f} s, worst {row['max_s']:.3f} s (limit {args.limit_s} s)")
    if args.json:
        args.json.write_text(json.dumps({"limit_s": args.limit_s, "repeat": args.repeat, "cases": rows}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
