"""The real records in tests/data: byte-for-byte copies with their attribution, within the size budget."""

from __future__ import annotations

import hashlib
import re

from .conftest import TEST_DATA, data_path

MAX_BYTES = 2_000_000
"""Issue 12: at most 2 MB of real records in the repository."""


def _listed() -> dict[str, str]:
    """README.md's `| file | SHA-256 |` table: relative path -> digest."""
    text = data_path("README.md").read_text(encoding="utf-8")
    return dict(re.findall(r"^\| `([^`]+)` \| `([0-9a-f]{64})` \|$", text, flags=re.MULTILINE))


def test_every_data_file_is_listed_with_its_digest() -> None:
    listed = _listed()
    present = {p.relative_to(TEST_DATA).as_posix() for p in TEST_DATA.rglob("*") if p.is_file()} - {"README.md"}
    assert present == set(listed), "every file in tests/data needs a line (path and SHA-256) in its README"
    for rel, digest in listed.items():
        assert hashlib.sha256((TEST_DATA / rel).read_bytes()).hexdigest() == digest, f"{rel} is not the copy listed"


def test_the_records_fit_the_size_budget() -> None:
    total = sum(p.stat().st_size for p in TEST_DATA.rglob("*") if p.is_file())
    assert total <= MAX_BYTES, f"tests/data holds {total} bytes, over the {MAX_BYTES}-byte budget"


def test_every_source_is_attributed() -> None:
    text = data_path("README.md").read_text(encoding="utf-8")
    for needed in ("CC BY 4.0", "ODC-By 1.0", "CC0 1.0", "Goldberger", "Bousseljot", "Reyna", "Wagner",
                   "doi:10.13026/34va-7q14", "doi:10.13026/kfzx-aw45"):
        assert needed in text
    for rel in _listed():
        stem = rel.rsplit("/", 1)[-1].split(".")[0]
        assert text.count(stem) >= 2, f"{rel} is listed but its source is not described"
