"""Every model-layer error path a user meets through the CLI: exit 2, one sentence naming cause and fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_cli import _assert_clean_exit_2
from .test_model_contract import DEMOGRAPHICS, Tiny, WithDemographics, export, write_card


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli-errors")
    return {"tiny": export(Tiny(), folder / "tiny.onnx"),
            "two": export(WithDemographics(), folder / "two.onnx", n_inputs=2)}


def _card_file(tmp_path: Path, **changes: object) -> Path:
    path = write_card(tmp_path / "card-holder.onnx", **changes)
    return path.with_name("card-holder.card.json")


@pytest.mark.parametrize(("model", "changes", "fragments"), [
    ("tiny", {"task": "multilabel", "output": "probabilities", "thresholds": 0.5},
     ["says its outputs are probabilities", "outside [0, 1]", "--output-kind logits"]),
    ("tiny", {"output": "probabilities"}, ["field 'task' is required with output 'probabilities'"]),
    ("tiny", {"thresholds": 0.5}, ["'thresholds' is only meaningful for a multilabel model", "\"task\""]),
    ("tiny", {"preprocessing": [{"kind": "bandpass", "low_hz": 0.5, "high_hz": 40}]},
     ["'preprocessing.0.order' is missing", "never assumes one"]),
    ("tiny", {"preprocessing": [{"kind": "filtfilt", "low_hz": 0.5, "high_hz": 40, "order": 4, "padlen": 2000}]},
     ["pads 2000 samples", "give a smaller 'padlen'"]),
    ("two", {}, ["has 2 inputs", "'demographics' (N, 6)", "add to the card \"inputs\""]),
    ("two", {"inputs": [{**DEMOGRAPHICS, "name": "age"}]}, ["no such input", "correct the name"]),
    ("two", {"inputs": [{**DEMOGRAPHICS, "shape": [2, 3]}]}, ["is shaped (N, 6)", "without the batch axis"]),
])
def test_card_errors_exit_2_with_cause_and_fix(run_cli, models: dict[str, Path], tmp_path: Path, model: str,
                                               changes: dict, fragments: list[str]) -> None:
    card = _card_file(tmp_path, **changes)
    _assert_clean_exit_2(run_cli("inspect", models[model], "--card", card), *fragments)


def test_missing_card_exits_2_naming_the_paths_and_flags(run_cli, models: dict[str, Path], tmp_path: Path) -> None:
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(models["tiny"].read_bytes())
    _assert_clean_exit_2(run_cli("inspect", lonely), "lonely.card.json", "lonely.onnx.card.json", "--card",
                         "--output-kind")
    _assert_clean_exit_2(run_cli("inspect", lonely, "--fs", "100"), "required field", "no card file at")


def test_two_sidecar_cards_exit_2(run_cli, models: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "twice.onnx"
    model.write_bytes(models["tiny"].read_bytes())
    write_card(model)
    (tmp_path / "twice.onnx.card.json").write_text((tmp_path / "twice.card.json").read_text())
    _assert_clean_exit_2(run_cli("inspect", model), "two cards beside it", "choose with --card")


def test_card_flags_task_and_output_kind(run_cli, models: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "flags.onnx"
    model.write_bytes(models["tiny"].read_bytes())
    write_card(model, thresholds=None)
    _assert_clean_exit_2(run_cli("inspect", model, "--output-kind", "scores"), "output")
    code, out, err = run_cli("inspect", model, "--json", "--task", "multilabel", "--output-kind", "logits",
                             "--card", _card_file(tmp_path, task="multilabel", thresholds=[0.4] * 5))
    assert code == 0, err
    assert json.loads(out)["contract"]["task"] == "multilabel"
