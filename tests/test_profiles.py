"""Scan profiles: the built-ins load and ship unchanged; a bad profile is exit 2 with one sentence, before any
model is opened."""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from pathlib import Path

import pytest

from ecgaudit.errors import ProfileError
from ecgaudit.profiles import builtin_names, load_profile, parse_profile

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "examples" / "models"
BUILTINS = ("ci", "paper", "samd")
TOP_LEVEL = REPO / "profiles"
LENIENT = Path(__file__).resolve().parent / "profiles" / "scan-lenient.toml"


# --- built-in profiles ---------------------------------------------------------------------------------------------


def test_builtin_names_are_the_three_shipped_profiles() -> None:
    assert builtin_names() == sorted(BUILTINS)


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_profile_loads_and_validates(name: str) -> None:
    by_name = load_profile(name)
    raw = (TOP_LEVEL / f"{name}.toml").read_bytes()
    assert by_name.name == name
    assert by_name.sha256 == hashlib.sha256(raw).hexdigest()
    assert by_name.attacks and by_name.rules
    # Loading the same file by path gives the same document and the same hash.
    by_path = load_profile(str(TOP_LEVEL / f"{name}.toml"))
    assert by_path.data == by_name.data
    assert by_path.sha256 == by_name.sha256
    # Every rule that names an attack names one of this profile's attacks.
    ids = {a["id"] for a in by_name.attacks}
    assert all(r.get("attack") in ids for r in by_name.rules if r["metric"] != "accuracy")


def test_installed_builtin_profiles_are_byte_identical_to_the_top_level_folder() -> None:
    installed = {entry.name: entry.read_bytes() for entry in resources.files("ecgaudit.builtin_profiles").iterdir()
                 if entry.name.endswith(".toml")}
    top = {path.name: path.read_bytes() for path in TOP_LEVEL.glob("*.toml")}
    assert set(installed) == set(top) == {f"{n}.toml" for n in BUILTINS}
    for name, data in top.items():
        assert installed[name] == data, f"installed {name} differs from profiles/{name}"


def test_profiles_list_shows_every_builtin(run_cli) -> None:
    code, out, err = run_cli("profiles", "list")
    assert code == 0, err
    for name in BUILTINS:
        assert re.search(rf"\b{name}\b", out), f"{name} missing from `profiles list`:\n{out}"


def test_profiles_show_prints_the_exact_toml_and_its_sha256(run_cli) -> None:
    raw = (TOP_LEVEL / "samd.toml").read_bytes()
    code, out, err = run_cli("profiles", "show", "samd")
    assert code == 0, err
    match = re.search(r"sha256 ([0-9a-f]{64})", out)
    assert match, out
    assert match.group(1) == hashlib.sha256(raw).hexdigest()
    assert raw.decode("utf-8") in out


def test_profiles_show_of_an_unknown_name_is_exit_2(run_cli) -> None:
    code, out, err = run_cli("profiles", "show", "no-such-profile")
    assert code == 2
    assert "no-such-profile" in err
    assert "Traceback" not in out + err


# --- bad profiles --------------------------------------------------------------------------------------------------

LENIENT_TEXT = LENIENT.read_text(encoding="utf-8")

# (case id, text to replace in the lenient profile, its replacement, strings the error must contain)
BAD = [
    ("unknown-attack", 'attack = "pgd"', 'attack = "fgsm"', ["attacks[0].attack", "fgsm"]),
    ("negative-eps", "eps_mv = 0.01", "eps_mv = -0.01", ["attacks[0].params.eps_mv"]),
    ("missing-threshold", "threshold = 0.0\n", "", ["gate.rules[0].threshold", "missing"]),
    ("toml-syntax", "[gate]\n", "[gate]\nthis is = = not toml\n", ["TOML"]),
    ("unknown-rule-attack", 'attack = "scar"\nmetric', 'attack = "nope"\nmetric', ["gate.rules[1].attack", "nope"]),
    ("unknown-key", "[data]\n", "[data]\nn_records = 3\n", ["data.n_records"]),
    # a rate threshold outside 0..1 (a percentage, say) would make the rule unable to fail, or to pass
    ("threshold-above-range", "threshold = 1.0\n", "threshold = 1.5\n", ["gate.rules[1].threshold", "never fail"]),
    ("threshold-percent", "threshold = 0.0\n", "threshold = 80\n", ["gate.rules[0].threshold", "0.8, not 80"]),
    ("threshold-below-range", "threshold = 0.0\n", "threshold = -1\n", ["gate.rules[0].threshold", "never fail"]),
]


@pytest.fixture
def no_model_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly (exit 3, not 2) if `scan` opens a model before the profile is known to be good."""
    import ecgaudit._cli.scan as scan_cli

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("scan opened a model before validating its profile")

    monkeypatch.setattr(scan_cli, "open_model", forbidden)


def assert_one_sentence(err: str, *needles: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line of error, got:\n{err}"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


def test_the_bad_profile_cases_start_from_a_valid_profile() -> None:
    load_profile(str(LENIENT))
    for case, old, new, _ in BAD:
        assert LENIENT_TEXT.count(old) == 1, f"{case}: {old!r} does not occur exactly once"
        with pytest.raises(ProfileError):
            parse_profile(LENIENT_TEXT.replace(old, new).encode(), source=case)


@pytest.mark.parametrize("case, old, new, needles", BAD, ids=[b[0] for b in BAD])
def test_bad_profile_is_exit_2_naming_key_and_file(
    run_cli, no_model_work, tmp_path: Path, case: str, old: str, new: str, needles: list[str]
) -> None:
    bad = tmp_path / f"bad-{case}.toml"
    bad.write_text(LENIENT_TEXT.replace(old, new), encoding="utf-8")
    out_dir = tmp_path / "out"
    code, out, err = run_cli("scan", MODELS / "cnn.onnx", "--profile", bad, "--out", out_dir)
    assert code == 2, err
    assert "Traceback" not in out + err
    assert_one_sentence(err, bad.name, *needles)
    assert not out_dir.exists()


def test_unknown_builtin_profile_is_exit_2(run_cli, no_model_work, tmp_path: Path) -> None:
    code, out, err = run_cli("scan", MODELS / "cnn.onnx", "--profile", "nosuch", "--out", tmp_path / "a" / "b" / "out")
    assert code == 2, err
    assert "Traceback" not in out + err
    assert_one_sentence(err, "nosuch", "samd")
    assert list(tmp_path.iterdir()) == []  # not even the missing parents of --out, which the lock file needed


def test_missing_profile_file_is_exit_2(run_cli, no_model_work, tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    code, out, err = run_cli("scan", MODELS / "cnn.onnx", "--profile", missing, "--out", tmp_path / "out")
    assert code == 2, err
    assert "Traceback" not in out + err
    assert_one_sentence(err, "absent.toml")


def test_attack_registry_cli_choices_and_schema_enums_agree() -> None:
    """One registry: the CLI's --attack choices and both schemas' enums are exactly its names."""
    import json
    from importlib import resources

    from ecgaudit._cli.attack import AttackName
    from ecgaudit.attacks import ATTACKS
    from ecgaudit.report.schema import report_schema

    names = list(ATTACKS)
    assert [member.value for member in AttackName] == names
    sweepable = [n for n, spec in ATTACKS.items() if spec.sweepable]
    for schema_file in ("profile.schema.json", "report.schema.json"):
        shipped = json.loads(resources.files("ecgaudit").joinpath(f"schemas/{schema_file}").read_text())
        assert shipped["$defs"]["attack_name"]["enum"] == names, f"{schema_file} is stale"
    shipped = json.loads(resources.files("ecgaudit").joinpath("schemas/profile.schema.json").read_text())
    assert shipped["$defs"]["sweepable_attack_name"]["enum"] == sweepable
    assert report_schema()["$defs"]["attack_name"]["enum"] == names


def test_every_registered_attack_is_accepted_by_profiles_and_builds_with_defaults() -> None:
    from ecgaudit.attacks import ATTACKS, build_attack
    from ecgaudit.leads import STANDARD_LEADS
    from ecgaudit.profiles import validate_profile

    for name, spec in ATTACKS.items():
        data = {"profile": {"name": "x", "version": "1", "description": ""},
                "data": {"n_craft": 1, "n_eval": 1, "seed": 0}, "attacks": [{"id": "a", "attack": name}],
                "gate": {"regression_tolerance": 0.1, "rules": [{"id": "r", "metric": "accuracy", "op": ">=",
                                                                 "threshold": 0.5, "why": "w"}]}}
        validate_profile(data, "test")
        attack = build_attack(name, fs=250, leads=STANDARD_LEADS, params={})
        assert attack.universal == spec.universal
        assert attack.name == name


def test_profile_schema_and_registry_bound_attack_counts_alike() -> None:
    """A count `--param` accepts is one a profile accepts: the schema's integer maxima are the registry's."""
    import json
    from importlib import resources

    from ecgaudit.attacks.registry import MAX_COUNT

    shipped = json.loads(resources.files("ecgaudit").joinpath("schemas/profile.schema.json").read_text())
    counts = {key: spec for key, spec in shipped["$defs"]["params"]["properties"].items()
              if spec.get("type") == "integer"}
    assert {"epochs", "steps", "batch_size", "max_passes", "deepfool_max_iter"} <= set(counts)
    assert {spec["maximum"] for spec in counts.values()} == {MAX_COUNT}
    assert {spec["minimum"] for spec in counts.values()} == {1}
