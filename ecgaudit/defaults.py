"""Defaults shared by the library and the CLI's `--help`, in a module that imports nothing heavy."""

from __future__ import annotations

DEFAULT_DATA = "builtin:synthetic"
"""The data a scan or attack uses when none is given: synthetic records generated at the model's fs and length."""

DATA_HELP = (
    "The records: a WFDB record or folder, a PTB-XL root, DICOM 12-lead waveforms (.dcm file or folder), HL7 aECG "
    "(.xml file or folder), an .npz, or builtin:synthetic (generated at the model's fs; says nothing clinical)."
)
