"""Peak memory and wall time of a `ci` scan over PTB-XL's whole test fold (2,198 records at 500 Hz).

    python benchmarks/bench_scale.py [--root ROOT] [--n-records 2198] [--model examples/models/cnn.onnx]
                                     [--json scale.json]

Builds a PTB-XL-shaped root of synthetic records in real WFDB files with `make_ptbxl_fold.py` (in a temporary
folder unless `--root` names one that already holds it), writes the `ci` profile with its split sizes
overridden so that craft + eval use the whole fold (half each), and runs the real CLI on it in a subprocess.
Peak RSS is the child's `ru_maxrss` (Linux: the largest resident set of the scan process). Target (issue 16):
at most 2 GB on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RSS_GB = 2.0


def whole_fold_profile(n_records: int, folder: Path) -> Path:
    """The `ci` profile, renamed, with n_craft + n_eval = n_records (min_n_eval dropped: the split is explicit)."""
    text = (ROOT / "profiles" / "ci.toml").read_text()
    data = tomllib.loads(text)
    n_craft = n_records // 2
    old = f"[data]\nn_craft = {data['data']['n_craft']}\nn_eval = {data['data']['n_eval']}\n"
    if old not in text:
        raise SystemExit("profiles/ci.toml's [data] table changed; update bench_scale.py")
    text = text.replace(old, f"[data]\nn_craft = {n_craft}\nn_eval = {n_records - n_craft}\n")
    text = text.replace('name = "ci"', 'name = "ci-whole-fold"')
    path = folder / "ci-whole-fold.toml"
    path.write_text(text)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, help="PTB-XL-shaped root (built there if it holds no database yet)")
    parser.add_argument("--n-records", type=int, default=2198)
    parser.add_argument("--model", type=Path, default=ROOT / "examples" / "models" / "cnn.onnx")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp) / "ptbxl"
        if not (root / "ptbxl_database.csv").is_file():
            started = time.perf_counter()
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_ptbxl_fold.py"), str(root),
                            "--n-records", str(args.n_records)], check=True)
            print(f"built {args.n_records} records in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        profile = whole_fold_profile(args.n_records, Path(tmp))
        out = Path(tmp) / "report"
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "ecgaudit", "scan", str(args.model), "--profile", str(profile),
                               "--data", str(root), "--out", str(out), "--quiet"], capture_output=True, text=True)
        wall_s = time.perf_counter() - started
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
        if not (out / "report.json").is_file():
            sys.exit(f"the scan wrote no report (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        report = json.loads((out / "report.json").read_text())
    splits = report["data"]["splits"]
    result = {
        "cores": os.cpu_count(), "load_average": os.getloadavg(), "model": args.model.name,
        "n_records": report["data"]["n_records"], "n_craft": splits["n_craft"], "n_eval": splits["n_eval"],
        "wall_s": round(wall_s, 1), "peak_rss_gb": round(peak_gb, 3), "target_rss_gb": TARGET_RSS_GB,
        "exit": proc.returncode, "verdict": report["gate"]["verdict"],
        "stages_s": {k: round(v, 1) for k, v in report["timing_seconds"].items()},
        "fooling_by_threat_model": {a["id"]: {t["threat_model"]: t["metrics"]["fooling_rate"]["value"]
                                              for t in a["threat_models"] if t.get("metrics")}
                                    for a in report["attacks"]},
    }
    print(json.dumps(result, indent=2))
    print(f"peak RSS {peak_gb:.2f} GB (target {TARGET_RSS_GB} GB: {'met' if peak_gb <= TARGET_RSS_GB else 'MISSED'})"
          f", wall {wall_s:.0f} s, {result['n_records']} records, verdict {result['verdict']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
