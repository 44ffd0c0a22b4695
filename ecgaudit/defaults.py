"""Defaults shared by the library and the CLI's `--help`, in a module that imports nothing heavy."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ecgaudit.errors import ProfileError

DEFAULT_DATA = "builtin:synthetic"
"""The data a scan or attack uses when none is given: synthetic records generated at the model's fs and length."""

DATA_HELP = (
    "The records: a WFDB record or folder, a PTB-XL root, DICOM 12-lead waveforms (.dcm file or folder), HL7 aECG "
    "(.xml file or folder), an .npz, or builtin:synthetic (generated at the model's fs; says nothing clinical)."
)


LABEL_MAP_HELP = (
    "How the data's diagnosis codes become labels: a CSV file of code,class rows, or snomed-challenge2021 (the "
    "default for WFDB records with '# Dx:' SNOMED CT codes: the PhysioNet/CinC Challenge 2021 scored codes). "
    "Unmapped codes are listed in the report; a record with no mapped code is unlabelled."
)


def builtin_model_path(spec: str) -> Path:
    """`builtin:cnn` -> the bundled model file shipped with ecgaudit (so a scan runs from an installed wheel, with
    no checkout: `ecgaudit scan builtin:cnn`); anything else is a path."""
    if not spec.startswith("builtin:"):
        return Path(spec)
    name = spec[len("builtin:"):]
    folder = resources.files("ecgaudit.builtin_models")
    for suffix in (".onnx", ".pt"):
        candidate = folder.joinpath(name + suffix)
        if candidate.is_file():
            return Path(str(candidate))
    raise ProfileError(f"unknown bundled model '{spec}'; ecgaudit ships builtin:cnn.")
