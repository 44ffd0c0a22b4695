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


def unique_name(name: str, used: set[str]) -> str:
    """`name`, or `name_2`, `name_3`, ... : the first not in `used` (compared without case, as on macOS and
    Windows disks), which it joins. Distinct record ids can share a file name once the characters a file name
    cannot hold are replaced (`r.`, `r,` and `r__2` all start as `r_`), and no record may overwrite another's files;
    the header's comment keeps the true id."""
    candidate, k = name, 1
    while candidate.lower() in used:
        k += 1
        candidate = f"{name}_{k}"
    used.add(candidate.lower())
    return candidate


def header_text(text: str) -> str:
    """`text` safe inside one WFDB header line: control and non-ASCII characters as backslash escapes.

    Record ids come from the data; a newline in one must not start a header line of its own.
    """
    return "".join(ch if " " <= ch <= "~" else ch.encode("unicode_escape").decode("ascii") for ch in text)


def export_wfdb(samples: dict[str, np.ndarray], out_dir: Path, attack_ids: list[str]) -> list[tuple[str, str]]:
    """Write clean + perturbation of each kept record as `<attack>_<record>` WFDB records (format 16, mV).

    Returns (path relative to `out_dir`'s parent, SHA-256) for every file written, header and signal alike.
    """
    import wfdb

    out_dir.mkdir(parents=True, exist_ok=True)
    fs = float(samples["fs"])
    leads = [str(lead) for lead in samples["leads"]]
    written: list[tuple[str, str]] = []
    used: set[str] = set()
    for attack_id in attack_ids:
        for i, record_id in enumerate(samples["record_ids"]):
            name = unique_name(_name(f"{attack_id}_{record_id}"), used)
            signal = (samples["X"][i] + samples[f"delta_{attack_id}"][i]).T.astype(np.float64)
            wfdb.wrsamp(
                name, fs=fs, units=["mV"] * len(leads), sig_name=leads, p_signal=signal, fmt=["16"] * len(leads),
                adc_gain=[ADC_GAIN] * len(leads), baseline=[0] * len(leads), write_dir=str(out_dir),
                comments=[f"ecgaudit adversarial sample: attack {header_text(attack_id)}, "
                          f"source record {header_text(str(record_id))}",
                          "NOT A REAL PATIENT RECORDING: for education and red-teaming only"],
            )
            for suffix in (".hea", ".dat"):
                digest = hashlib.sha256((out_dir / f"{name}{suffix}").read_bytes()).hexdigest()
                written.append((f"{out_dir.name}/{name}{suffix}", digest))
    return written
