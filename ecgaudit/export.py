"""Clinician samples (paper §5, "educational samples"): adversarial records as WFDB, readable by any ECG viewer."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

ADC_GAIN = 1000.0
"""ADC units per mV for the 16-bit format: 1 µV resolution, ±32.7 mV range."""


def _name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def export_wfdb(samples: dict[str, np.ndarray], out_dir: Path, attack_ids: list[str]) -> list[tuple[str, str]]:
    """Write clean + perturbation of each kept record as `<attack>_<record>` WFDB records (format 16, mV).

    Returns (relative path of the header, SHA-256 of header + signal bytes) per record written.
    """
    import wfdb

    out_dir.mkdir(parents=True, exist_ok=True)
    fs = float(samples["fs"])
    leads = [str(lead) for lead in samples["leads"]]
    written = []
    for attack_id in attack_ids:
        for i, record_id in enumerate(samples["record_ids"]):
            name = _name(f"{attack_id}_{record_id}")
            signal = (samples["X"][i] + samples[f"delta_{attack_id}"][i]).T.astype(np.float64)
            wfdb.wrsamp(
                name, fs=fs, units=["mV"] * len(leads), sig_name=leads, p_signal=signal, fmt=["16"] * len(leads),
                adc_gain=[ADC_GAIN] * len(leads), baseline=[0] * len(leads), write_dir=str(out_dir),
                comments=[f"ecgaudit adversarial sample: attack {attack_id}, source record {record_id}",
                          "NOT A REAL PATIENT RECORDING: for education and red-teaming only"],
            )
            digest = hashlib.sha256((out_dir / f"{name}.hea").read_bytes() + (out_dir / f"{name}.dat").read_bytes())
            written.append((f"{out_dir.name}/{name}.hea", digest.hexdigest()))
    return written
