from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecgaudit.card import parse_card
from ecgaudit.errors import CardError
from ecgaudit.leads import STANDARD_LEADS
from ecgaudit.models import resolve_card


def card(**changes: object) -> dict:
    base = {
        "fs": 500, "n_samples": 5000, "leads": list(STANDARD_LEADS), "layout": "NCT",
        "scaling": {"kind": "none"}, "classes": ["NORM", "MI", "STTC", "CD", "HYP"], "output": "logits",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_valid_card_round_trips() -> None:
    parsed = parse_card(card(), source="t")
    assert parsed.fs == 500 and parsed.n_samples == 5000 and parsed.leads == STANDARD_LEADS
    assert parse_card(parsed.to_dict(), source="again") == parsed


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"fs": None}, "'fs'"),
        ({"classes": None}, "'classes'"),
        ({"layout": "NHWC"}, "layout"),
        ({"leads": ["I", "II", "Z9"]}, "leads"),
        ({"scaling": {"kind": "standardize", "mean": [0.0] * 12}}, "scaling"),
        ({"scaling": {"kind": "standardize", "mean": [0.0] * 3, "std": [1.0] * 3}}, "scaling.mean"),
        ({"output": "sigmoid"}, "thresholds"),
        ({"output": "sigmoid", "thresholds": [0.5, 0.5]}, "thresholds"),
        ({"thresholds": 0.5}, "thresholds"),
        ({"preprocessing": [{"kind": "bandpass", "low_hz": 0.5, "high_hz": 300, "order": 2}]}, "Nyquist"),
        ({"preprocessing": [{"kind": "lowpass", "low_hz": 0.5, "order": 2}]}, "preprocessing"),
        ({"n_samples": 12.5}, "n_samples"),
    ],
)
def test_missing_or_contradictory_field_is_named(changes: dict, field: str) -> None:
    with pytest.raises(CardError, match=field.replace(".", r"\.")):
        parse_card(card(**changes), source="t")


def test_multilabel_thresholds_broadcast_per_class() -> None:
    parsed = parse_card(card(output="sigmoid", thresholds=0.3), source="t")
    assert parsed.multilabel and parsed.thresholds == (0.3,) * 5
    per_class = parse_card(card(output="sigmoid", thresholds=[0.1, 0.2, 0.3, 0.4, 0.5]), source="t")
    assert per_class.thresholds == (0.1, 0.2, 0.3, 0.4, 0.5)


def test_sources_merge_with_cli_flags_winning(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    (tmp_path / "m.card.json").write_text(json.dumps(card(fs=250, n_samples=2500)))
    embedded = json.dumps(card(fs=100, n_samples=1000, name="embedded"))
    merged = resolve_card(model, embedded_json=embedded, overrides={"n_samples": 1234, "fs": None})
    assert merged.fs == 250  # sidecar beats metadata
    assert merged.n_samples == 1234  # flag beats sidecar
    assert merged.name == "embedded"  # fields only the metadata gives survive


def test_no_card_anywhere_says_how_to_give_one(tmp_path: Path) -> None:
    with pytest.raises(CardError, match="no model card"):
        resolve_card(tmp_path / "m.onnx")


def test_card_file_with_bad_json_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "c.json"
    bad.write_text("{not json")
    with pytest.raises(CardError, match="not valid JSON"):
        resolve_card(tmp_path / "m.onnx", card_path=bad)
