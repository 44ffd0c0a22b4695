from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
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


@pytest.mark.parametrize(("legacy", "task", "output"), [
    ("softmax", "multiclass", "probabilities"),
    ("sigmoid", "multilabel", "probabilities"),
    ("logits", "multiclass", "logits"),
])
def test_old_output_values_map_to_task_and_output(legacy: str, task: str, output: str) -> None:
    parsed = parse_card(card(output=legacy, thresholds=0.5 if legacy == "sigmoid" else None), source="t")
    assert (parsed.task, parsed.output, parsed.multilabel) == (task, output, task == "multilabel")
    assert parse_card(parsed.to_dict(), source="again") == parsed  # written back in the new form


def test_multilabel_logits_with_per_class_thresholds() -> None:
    parsed = parse_card(card(task="multilabel", output="logits", thresholds=[0.1, 0.2, 0.3, 0.4, 0.5]), source="t")
    assert parsed.multilabel and parsed.output == "logits"
    assert parsed.thresholds == (0.1, 0.2, 0.3, 0.4, 0.5)
    assert parsed.to_dict()["task"] == "multilabel"


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"output": "probabilities"}, "field 'task' is required with output 'probabilities'"),
    ({"output": "sigmoid", "task": "multiclass", "thresholds": 0.5}, "means a multilabel model but field 'task'"),
    ({"task": "multilabel"}, "'thresholds' is required for a multilabel model"),
    ({"task": "multiclass", "thresholds": 0.5}, "add \"task\": \"multilabel\""),
    ({"output": "scores"}, "output"),
    ({"task": "multilabel", "thresholds": 1.5}, "thresholds"),
])
def test_task_and_output_errors_say_what_to_write(changes: dict, fragment: str) -> None:
    with pytest.raises(CardError, match=re.escape(fragment)):
        parse_card(card(**changes), source="t")


def test_filter_order_is_required_for_every_kind() -> None:
    for kind in ("bandpass", "filtfilt", "sosfiltfilt"):
        with pytest.raises(CardError, match=r"'preprocessing\.0\.order' is missing .*never assumes one"):
            parse_card(card(preprocessing=[{"kind": kind, "low_hz": 0.5, "high_hz": 40}]), source="t")


def test_scipy_filter_steps_round_trip_with_scipy_defaults() -> None:
    steps = [{"kind": "filtfilt", "low_hz": 0.5, "high_hz": 40, "order": 4},
             {"kind": "sosfiltfilt", "high_hz": 40, "order": 2, "padtype": "even", "padlen": 30}]
    parsed = parse_card(card(preprocessing=steps), source="t")
    assert parsed.preprocessing[0].padtype == "odd" and parsed.preprocessing[0].padlen is None
    assert parsed.preprocessing[1].padtype == "even" and parsed.preprocessing[1].padlen == 30
    assert parse_card(parsed.to_dict(), source="again") == parsed


@pytest.mark.parametrize(("step", "fragment"), [
    ({"kind": "filtfilt", "order": 4}, "needs low_hz (high-pass), high_hz (low-pass) or both"),
    ({"kind": "filtfilt", "low_hz": 0.5, "high_hz": 40, "order": 4, "padlen": 5000}, "give a smaller 'padlen'"),
    ({"kind": "bandpass", "low_hz": 0.5, "high_hz": 40, "order": 2, "padtype": "odd"}, "takes no 'padtype'"),
    ({"kind": "sosfiltfilt", "low_hz": 0.5, "order": 2, "padtype": "zero"}, "padtype"),
])
def test_bad_filter_steps_are_named(step: dict, fragment: str) -> None:
    with pytest.raises(CardError, match=re.escape(fragment)):
        parse_card(card(preprocessing=[step]), source="t")


def test_extra_inputs_parse_and_fill_their_shape() -> None:
    extras = [{"name": "demographics", "shape": [6], "value": [61.0, 1, 0, 0, 0, 1], "why": "the training mean"},
              {"name": "flag", "shape": [2, 2], "value": 0.5, "dtype": "float64", "why": "unused"}]
    parsed = parse_card(card(inputs=extras), source="t")
    demo, flag = parsed.extra_inputs
    assert demo.array(3).shape == (3, 6) and demo.array(3)[2, 0] == 61.0
    assert flag.array(2).dtype == np.float64 and float(flag.array(2).sum()) == 4.0
    assert parse_card(parsed.to_dict(), source="again") == parsed


@pytest.mark.parametrize(("extra", "fragment"), [
    ({"name": "age", "shape": [2], "value": [1, 2, 3], "why": "x"}, "gives 3 finite numbers; give one number or 2"),
    ({"name": "age", "shape": [1], "value": 60}, "'inputs.0.why' is missing"),
    ({"name": "age", "shape": [1], "value": "sixty", "why": "x"}, "inputs"),
])
def test_bad_extra_inputs_are_named(extra: dict, fragment: str) -> None:
    with pytest.raises(CardError, match=re.escape(fragment)):
        parse_card(card(inputs=[extra]), source="t")


def test_card_is_found_under_either_sidecar_name(tmp_path: Path) -> None:
    model = tmp_path / "vendor.onnx"
    (tmp_path / "vendor.onnx.card.json").write_text(json.dumps(card(fs=100, n_samples=1000)))
    assert resolve_card(model).fs == 100
    (tmp_path / "vendor.card.json").write_text(json.dumps(card()))
    with pytest.raises(CardError, match="two cards beside it, vendor.card.json and vendor.onnx.card.json"):
        resolve_card(model)
    assert resolve_card(model, card_path=tmp_path / "vendor.card.json").fs == 500  # --card decides


def test_missing_card_names_every_path_tried_and_the_flags(tmp_path: Path) -> None:
    model = tmp_path / "vendor.onnx"
    with pytest.raises(CardError) as info:
        resolve_card(model)
    message = str(info.value)
    for fragment in (str(tmp_path / "vendor.card.json"), str(tmp_path / "vendor.onnx.card.json"), "--card",
                     "--fs", "--output-kind", "--task"):
        assert fragment in message
    with pytest.raises(CardError, match=r"required field 'n_samples' is missing") as partial:
        resolve_card(model, overrides={"fs": 100.0})
    assert "vendor.onnx.card.json" in str(partial.value)  # a partial card from flags says where it looked


@pytest.mark.parametrize(("thresholds", "shown"), [(2.3, "holds 2.3"), ([0.5, -1.2], "holds -1.2")])
def test_logit_scale_thresholds_are_named_with_the_probability_they_stand_for(thresholds, shown: str) -> None:
    """They read 'is not valid under any of the given schemas', which names neither the field's scale nor a fix."""
    from ecgaudit.card import parse_card
    from ecgaudit.errors import CardError

    card = {"fs": 100, "n_samples": 1000, "leads": ["I"], "layout": "NCT", "scaling": {"kind": "none"},
            "classes": ["a", "b"], "task": "multilabel", "output": "logits", "thresholds": thresholds}
    with pytest.raises(CardError) as raised:
        parse_card(card, source="t")
    message = str(raised.value)
    assert shown in message and "probability scale" in message and "1 / (1 + exp(-t))" in message
    assert "not valid under any" not in message
