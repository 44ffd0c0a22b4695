"""Bad input found before any attack runs: exit 2 with one sentence, never exit 3 after the expensive work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import MODELS

LIGHT = MODELS / "cnn-ml100.onnx"
CI = Path(__file__).resolve().parents[1] / "profiles" / "ci.toml"


@pytest.fixture
def no_attack(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail the test if any attack starts: everything here must be refused before that. The trap replaces
    `run_attack` in every module that imported it by name: a module first imported while only the harness held the
    trap would keep it after the test (the amplitude sweep of a later test then 'started although the input was
    bad')."""
    import ecgaudit.attacks.harness as harness
    import ecgaudit.augmentation as augmentation
    import ecgaudit.sensitivity as sensitivity
    import ecgaudit.threats as threats

    started: list[str] = []

    def run_attack(attack, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003 - a trap with the real signature's shape
        started.append(attack.name)
        raise AssertionError(f"{attack.name} started although the input was bad")

    for module in (harness, augmentation, sensitivity, threats):
        monkeypatch.setattr(module, "run_attack", run_attack)
    return started


def _profile(tmp_path: Path, old: str, new: str) -> Path:
    text = CI.read_text(encoding="utf-8")
    assert old in text, f"the ci profile no longer holds {old!r}"
    path = tmp_path / "p.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def _refused(run_cli, no_attack: list[str], *args: object) -> str:
    code, out, err = run_cli("scan", *args)
    assert code == 2, out + err
    assert "Traceback" not in out + err and "internal error" not in err
    assert no_attack == []
    return " ".join(err.split())


def test_a_negative_seed(run_cli, no_attack, tmp_path: Path) -> None:
    err = _refused(run_cli, no_attack, LIGHT, "--profile", "ci", "--seed", "-1", "--out", tmp_path / "o")
    assert "seed" in err


PROFILE_EDITS = {
    "a-billion-records": ("n_craft = 64", "n_craft = 1000000000", "n_craft"),
    "a-pgd-budget-list-of-the-wrong-length": ("params = { eps_mv = 0.01, steps = 5 }",
                                              "params = { eps_mv = [0.01, 0.02], steps = 5 }",
                                              "eps_mv has 2 values but the model has 12 leads"),
    "a-parameter-the-schema-accepts-but-the-attack-rejects": (
        'params = { epochs = 5, batch_size = 16, lead_space = "8" }',
        'params = { epochs = 5, batch_size = 16, cutoff_hz = 10, low_hz = 20 }', "low_hz"),
    "a-non-finite-number-in-a-profile": ("threshold = 0.80", "threshold = nan", "not a finite number"),
}


@pytest.mark.parametrize(("old", "new", "needle"), PROFILE_EDITS.values(), ids=PROFILE_EDITS.keys())
def test_a_bad_profile_value(run_cli, no_attack, tmp_path: Path, old: str, new: str, needle: str) -> None:
    profile = _profile(tmp_path, old, new)
    err = _refused(run_cli, no_attack, LIGHT, "--profile", profile, "--out", tmp_path / "o")
    assert needle in err


def test_transfer_to_a_model_whose_leads_the_source_lacks(run_cli, no_attack, tmp_path: Path) -> None:
    import torch

    class ElevenLeads(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv1d(11, 5, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).mean(dim=-1)

    source = tmp_path / "eleven.pt"
    torch.jit.script(ElevenLeads()).save(str(source))
    card = json.loads((MODELS / "cnn-ml100.card.json").read_text())
    leads = [lead for lead in card["leads"] if lead != "V6"]
    (tmp_path / "eleven.card.json").write_text(json.dumps({
        "fs": 100, "n_samples": 1000, "leads": leads, "layout": "NCT", "scaling": {"kind": "none"},
        "classes": ["NORM", "MI", "STTC", "CD", "HYP"], "output": "logits"}))
    err = _refused(run_cli, no_attack, source, "--profile", "ci", "--out", tmp_path / "o", "--transfer-to", LIGHT)
    assert "takes lead(s) V6" in err


def test_an_unknown_surrogate(run_cli, no_attack, tmp_path: Path) -> None:
    profile = _profile(tmp_path, 'transfer = ["builtin:cnn"]', 'transfer = ["builtin:nope"]')
    err = _refused(run_cli, no_attack, LIGHT, "--profile", profile, "--out", tmp_path / "o")
    assert "builtin:nope" in err


@pytest.mark.parametrize("fs, message", [("nan", "not a finite number"), ("1e-6", "less than the minimum of 10")])
def test_an_absurd_sampling_rate(run_cli, no_attack, tmp_path: Path, fs: str, message: str) -> None:
    err = _refused(run_cli, no_attack, LIGHT, "--profile", "ci", "--out", tmp_path / "o", "--fs", fs)
    assert "'fs'" in err and message in err


@pytest.mark.parametrize("param", ["epochs=1e12", "epochs=2.5", "batch_size=true", "epochs=1000001"])
def test_an_attack_count_that_is_not_a_sane_whole_number(run_cli, no_attack, tmp_path: Path, param: str) -> None:
    code, out, err = run_cli("attack", LIGHT, "--attack", "scar", "--param", param, "--out", tmp_path / "o",
                             "--quiet")
    assert code == 2, out + err
    assert "internal error" not in err and no_attack == []
    key = param.partition("=")[0]
    assert f"parameter {key} must be a whole number from 1 to 1,000,000" in " ".join(err.split())
