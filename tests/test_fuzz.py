"""Property-based fuzzing of every parser that reads untrusted input: only the project's own errors escape."""

from __future__ import annotations

import io
import tomllib
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecgaudit.card import CARD_SCHEMA, parse_card
from ecgaudit.data import load_dataset
from ecgaudit.errors import EcgauditError
from ecgaudit.leads import STANDARD_LEADS
from ecgaudit.profiles import load_profile, parse_profile, validate_profile

from .conftest import REPO

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**12)
    | st.floats(allow_nan=True, allow_subnormal=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
VALID_CARD = {
    "fs": 500,
    "n_samples": 5000,
    "leads": list(STANDARD_LEADS),
    "layout": "NCT",
    "scaling": {"kind": "none"},
    "classes": ["NORM", "MI"],
    "output": "logits",
}


@FUZZ
@given(
    changes=st.dictionaries(
        st.sampled_from(sorted(CARD_SCHEMA["properties"])) | st.text(max_size=5), json_values, max_size=4
    ),
    drop=st.sets(st.sampled_from(sorted(VALID_CARD)), max_size=2),
)
def test_card_parser_raises_only_card_errors(changes: dict, drop: set) -> None:
    card = {k: v for k, v in {**VALID_CARD, **changes}.items() if k not in drop}
    try:
        parse_card(card, source="fuzz")
    except EcgauditError:
        pass


SAMD = tomllib.loads((REPO / "profiles" / "samd.toml").read_text())


def _paths(value: object, prefix: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [prefix] + [p for k, v in value.items() for p in _paths(v, (*prefix, k))]
    if isinstance(value, list):
        return [prefix] + [p for i, v in enumerate(value) for p in _paths(v, (*prefix, i))]
    return [prefix]


SAMD_PATHS = _paths(SAMD)


@FUZZ
@given(
    where=st.lists(st.sampled_from(SAMD_PATHS), min_size=1, max_size=3),
    values=st.lists(json_values, min_size=3, max_size=3),
)
def test_profile_validation_raises_only_profile_errors(where: list, values: list) -> None:
    import copy

    data = copy.deepcopy(SAMD)
    for path, value in zip(where, values):
        if not path:
            data = value
            continue
        node = data
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    try:
        validate_profile(data, "fuzz")
    except EcgauditError:
        pass


@FUZZ
@given(text=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_profile_text_raises_only_profile_errors(text: bytes) -> None:
    try:
        parse_profile(text, source="fuzz.toml")
    except EcgauditError:
        pass


def test_builtin_profile_still_validates() -> None:
    assert load_profile("samd").name == "samd"


arrays = st.one_of(
    st.integers(0, 4).flatmap(lambda n: st.just(np.zeros((n, 12, 50), np.float32))),
    st.just(np.array([1, 2, 3])),
    st.just(np.array(["a", "b"])),
    st.just(np.array([{"x": 1}], dtype=object)),
    st.just(np.full((2, 12, 50), np.nan, np.float32)),
    st.just(np.array(100.0)),
    st.just(np.array(-5.0)),
    st.just(np.array(list(STANDARD_LEADS))),
    st.just(np.zeros((2, 5), np.float64)),
    st.just(np.zeros((2,), np.int64)),
    st.just(np.array([0, 7], np.int64)),
)


@FUZZ
@given(
    content=st.dictionaries(
        st.sampled_from(["X", "y", "fs", "leads", "classes", "record_ids", "junk"]), arrays, max_size=7
    )
)
def test_npz_loader_raises_only_data_errors(tmp_path_factory, content: dict) -> None:
    path = tmp_path_factory.mktemp("npz") / "fuzz.npz"
    buffer = io.BytesIO()
    np.savez(buffer, **content)  # object arrays are pickled here on purpose: the loader must refuse them
    path.write_bytes(buffer.getvalue())
    try:
        load_dataset(str(path), fs=100.0, n_samples=50, leads=STANDARD_LEADS)
    except EcgauditError:
        pass


HEADER_LINES = st.lists(
    st.one_of(
        st.just("rec 12 500 5000"),
        st.just("rec 12 500 1000000000000"),
        st.just("rec 1 500"),
        st.just("rec.dat 16 1000/mV 16 0 0 0 0 I"),
        st.just("rec.dat 212 200 12 0 0 0 0 II"),
        st.just("rec.dat 999 1000 16 0 0 0 0 V1"),
        st.just("rec.dat 16 1000(0)/uV 16 0 -12 3 0 aVR"),
        st.text(alphabet="rec.dat 0123456789/mVI#-", max_size=40),
    ),
    min_size=1,
    max_size=14,
)


@FUZZ
@given(lines=HEADER_LINES, signal=st.binary(max_size=2000))
def test_wfdb_loader_raises_only_data_errors(tmp_path_factory, lines: list, signal: bytes) -> None:
    folder: Path = tmp_path_factory.mktemp("wfdb")
    (folder / "rec.hea").write_text("\n".join(lines) + "\n")
    (folder / "rec.dat").write_bytes(signal)
    try:
        load_dataset(str(folder / "rec.hea"), fs=100.0, n_samples=100, leads=STANDARD_LEADS)
    except EcgauditError:
        pass
