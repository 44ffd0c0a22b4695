"""SIGKILL at random moments: the report folder is always the previous complete bundle or the new complete one.

One signed scan runs to the end first; then scans of the same folder (seeds 0, 1, ...) are killed with SIGKILL:
ten at a moment drawn uniformly over a whole scan, then ten or more over its last stretch, from the moment the new
bundle's folder appears to a little past the end of the latest measured build and swap, until at least five
were killed while building.
After each kill the folder must be byte for byte the bundle before it, or a bundle that verifies in full and is
this run's (its seed); anything left beside it that verifies must also be one run's whole bundle.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ecgaudit.errors import EcgauditError
from ecgaudit.report.signing import keygen
from ecgaudit.report.verification import verify_bundle

from .conftest import MODELS, REPO

PROFILE = REPO / "tests" / "profiles" / "scan-tiny.toml"
N_KILLS = 20
MAX_TRIALS = 40  # the adaptive kills aimed at the build stop here, however the machine is loaded


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def verified_seed(folder: Path, public: Path, model: Path) -> int | None:
    """The seed of the run whose complete bundle `folder` is, or None when it does not verify in full."""
    try:
        verification = verify_bundle(folder / "report.dsse.json", public, model=model)
    except (EcgauditError, OSError):
        return None
    return int(verification.report["seed"]) if verification.ok else None


@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_a_mixture(tmp_path: Path) -> None:
    private, public = keygen(tmp_path)
    model = tmp_path / "cnn-ml100.pt"  # TorchScript: no ONNX conversion in each of the 21 scans
    shutil.copy(MODELS / "cnn-ml100.pt", model)
    shutil.copy(MODELS / "cnn-ml100.card.json", tmp_path / "cnn-ml100.card.json")
    reports = tmp_path / "reports"
    reports.mkdir()
    out = reports / "out"
    driver = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "kill_driver.py"), str(out), "--", str(model), "--profile",
         str(PROFILE), "--key", str(private), "--quiet", "--export-wfdb"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )
    assert driver.stdin is not None and driver.stdout is not None

    def trial(seed: int, origin: str, delay_s: float) -> dict:
        driver.stdin.write(f"{seed} {origin} {delay_s:.4f}\n")
        driver.stdin.flush()
        return json.loads(driver.stdout.readline())

    try:
        assert json.loads(driver.stdout.readline()) == {"ready": True}
        first = trial(100, "never", 0.0)
        assert first["rc"] == 0, first
        assert verified_seed(out, public, model) == 100
        full_s = first["elapsed_s"]
        assert first["staging_seen_s"] is not None, "the scan built no bundle folder beside --out"
        build_s = full_s - first["staging_seen_s"]
        rng = random.Random(2024)
        before = snapshot(out)
        outcomes: list[str] = []

        def kill_and_check(seed: int, origin: str, delay: float) -> dict:
            nonlocal before
            result = trial(seed, origin, delay)
            if snapshot(out) == before:
                outcome = "previous survived"
            else:
                assert verified_seed(out, public, model) == seed, (
                    f"kill {seed} at {delay:.2f} s after {origin} left a folder that is neither the previous "
                    f"bundle nor this run's complete bundle: {result}")
                outcome = "new complete"
                before = snapshot(out)
            for leftover in [*reports.glob(".ecgaudit/out.*"), *reports.glob(".out.*")]:
                if leftover.is_dir():
                    assert verified_seed(leftover, public, model) in (None, *range(seed + 1), 100), leftover
            outcomes.append(outcome + (" (killed while building)" if result["building_at_kill"] else
                                       " (killed)" if result["killed"] else " (finished)"))
            return result

        for seed in range(N_KILLS // 2):
            kill_and_check(seed, "start", rng.uniform(0.0, full_s))
        # The build-and-swap stretch is short and its length moves with the machine's load, so the kills aimed
        # at it adapt: each run that finishes before its kill teaches the next draw how long building now takes.
        seed = N_KILLS // 2
        while seed < MAX_TRIALS and (seed < N_KILLS or sum("while building" in o for o in outcomes) < N_KILLS // 4):
            result = kill_and_check(seed, "build", rng.uniform(0.0, 1.2 * build_s))
            if not result["killed"] and result["staging_seen_s"] is not None:
                build_s = result["elapsed_s"] - result["staging_seen_s"]
            seed += 1
    finally:
        driver.stdin.close()
        driver.wait(timeout=30)
    summary = {o: outcomes.count(o) for o in sorted(set(outcomes))}
    print(f"scan {full_s:.1f} s, of which building and swapping {build_s:.1f} s; outcomes: {summary}")
    assert sum("while building" in o for o in outcomes) >= N_KILLS // 4, f"too few kills while building: {summary}"
