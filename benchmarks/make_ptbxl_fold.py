"""Write a PTB-XL-shaped root of synthetic records: real WFDB files, PTB-XL's CSVs, PTB-XL's test-fold size.

    python benchmarks/make_ptbxl_fold.py ROOT [--n-records 2198] [--fold 10] [--seed 2026]

PTB-XL's recommended test fold (`strat_fold` 10) holds 2,198 records of 10 s at 500 Hz. This writes that many
seeded synthetic records (`ecgaudit.data.synthetic`, one superclass label each) as WFDB format-16 files at 500 Hz
(`records500/`, gain 1000 per mV as PTB-XL writes them) and at 100 Hz (`records100/`, decimated), a
`ptbxl_database.csv` with `ecg_id`, `patient_id`, `scp_codes`, `strat_fold`, `filename_lr` and `filename_hr`,
and a `scp_statements.csv` mapping one SCP code to each superclass. Nothing here is committed data: the
benchmark `bench_scale.py` builds it in a temporary folder (about 320 MB for 2,198 records).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from ecgaudit.data.interface import SUPERCLASSES
from ecgaudit.data.synthetic import generate_synthetic
from ecgaudit.leads import STANDARD_LEADS

FS_HR = 500.0
FS_LR = 100.0
SECONDS = 10
CODE_OF = {"NORM": "NORM", "MI": "IMI", "STTC": "NDT", "CD": "CLBBB", "HYP": "LVH"}
"""One real PTB-XL SCP code per diagnostic superclass."""
CHUNK = 200
"""Records generated at once: keeps the generator's own memory small for any fold size."""


def _write_record(folder: Path, name: str, signal_mv: np.ndarray, fs: float) -> None:
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    digital = np.round(signal_mv.T.astype(np.float64) * 1000.0).clip(-32767, 32767).astype(np.int16)
    wfdb.wrsamp(name, fs=fs, units=["mV"] * len(STANDARD_LEADS), sig_name=list(STANDARD_LEADS),
                d_signal=digital, fmt=["16"] * len(STANDARD_LEADS), adc_gain=[1000.0] * len(STANDARD_LEADS),
                baseline=[0] * len(STANDARD_LEADS), write_dir=str(folder))


def write_fold(root: Path, n_records: int, fold: int, seed: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for start in range(0, n_records, CHUNK):
        count = min(CHUNK, n_records - start)
        X, y = generate_synthetic(count, FS_HR, int(FS_HR * SECONDS), seed + start)
        for i in range(count):
            ecg_id = start + i + 1
            block = f"{(ecg_id // 1000) * 1000:05d}"
            hr, lr = f"{ecg_id:05d}_hr", f"{ecg_id:05d}_lr"
            _write_record(root / "records500" / block, hr, X[i], FS_HR)
            _write_record(root / "records100" / block, lr, X[i][:, :: int(FS_HR / FS_LR)], FS_LR)
            codes = {CODE_OF[SUPERCLASSES[int(y[i])]]: 100.0}
            rows.append({"ecg_id": ecg_id, "patient_id": f"{10000 + ecg_id // 2}.0", "scp_codes": repr(codes),
                         "strat_fold": fold, "filename_lr": f"records100/{block}/{lr}",
                         "filename_hr": f"records500/{block}/{hr}"})
        print(f"{start + count}/{n_records} records", file=sys.stderr, flush=True)
    with (root / "ptbxl_database.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with (root / "scp_statements.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["", "description", "diagnostic", "diagnostic_class"])
        for superclass, code in CODE_OF.items():
            writer.writerow([code, f"synthetic {superclass}", 1.0, superclass])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--n-records", type=int, default=2198)
    parser.add_argument("--fold", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    write_fold(args.root, args.n_records, args.fold, args.seed)


if __name__ == "__main__":
    main()
