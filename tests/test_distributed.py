"""Many processes: the model work sharded over gloo ranks gives the one-process numbers.

Two levels: the sharded adapter itself (runtime outputs, surrogate logits, input gradients in every way the attacks
take them, and a failure on one rank) in two spawned ranks against one process; then a whole `torchrun` scan
against a one-process scan with the same seed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from ecgaudit import distributed
from ecgaudit.errors import DistributedError
from ecgaudit.models import load_model
from ecgaudit.models.interface import ModelAdapter
from ecgaudit.models.probe import realistic_signals
from tests.conftest import MODELS, REPO

MODEL = MODELS / "cnn.onnx"
PROFILE = REPO / "tests" / "profiles" / "scan-distributed.toml"
ROWS = (1, 5)
"""1 record: rank 1's share is empty; 5: shares of 3 and 2."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _model_work(model: ModelAdapter, x_np: np.ndarray) -> dict[str, np.ndarray]:
    """What the attacks ask of a model, each way they ask it."""
    x = torch.from_numpy(x_np)
    out = {"raw": model.raw_predict(x_np), "probabilities": model.predict(x_np)}
    with torch.no_grad():
        out["logits_no_grad"] = model.torch_forward(x).numpy()
    with torch.inference_mode():
        out["logits_inference"] = model.torch_forward(x).numpy()
    # PGD: the gradient of a loss over records, taken with autograd.grad.
    xa = x.clone().requires_grad_(True)
    logits = model.torch_forward(xa)
    out["logits"] = logits.detach().numpy()
    weights = torch.linspace(-1.0, 1.0, logits.numel()).reshape(logits.shape)
    (out["grad_pgd"],) = (g.numpy() for g in torch.autograd.grad((logits * weights).sum(), xa))
    # DeepFool: one gradient per class from the same forward (retain_graph).
    xd = x.clone().requires_grad_(True)
    logits = model.torch_forward(xd)
    out["grad_class0"] = torch.autograd.grad(logits[:, 0].sum(), xd, retain_graph=True)[0].numpy()
    out["grad_class1"] = torch.autograd.grad(logits[:, 1].sum(), xd)[0].numpy()
    # SCAR: one universal perturbation broadcast over the records, gradient by .backward().
    v = torch.zeros(x.shape[1:], requires_grad=True)
    target = torch.zeros(len(x), dtype=torch.long)
    loss = torch.nn.functional.cross_entropy(model.torch_forward(x + v), target)
    loss.backward()
    assert v.grad is not None
    out["grad_universal"] = v.grad.numpy()
    return out


def _rank_main(rank: int, port: int, folder: str, x_by_rows: dict[int, np.ndarray]) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), ECGAUDIT_DIST_TIMEOUT_S="60")
    distributed.start(device="cpu")
    model = load_model(MODEL)
    assert distributed.describe() == {"world_size": 2, "backend": "gloo"}
    results = {f"{n}/{key}": value for n, x in x_by_rows.items() for key, value in _model_work(model, x).items()}
    # A failure in one rank's share is raised on every rank: its own error there, a DistributedError naming it
    # on the other, and neither waits for the other.
    local = distributed._LocalFailure(ValueError("boom")) if rank == 1 else torch.zeros(1, 3)
    try:
        distributed._gather_rows(local, 2, (3,), torch.float32, torch.float32)
        raised = "nothing"
    except Exception as exc:  # recorded for the parent to check
        raised = f"{type(exc).__name__}: {exc}"
    results["raised"] = np.array(raised)
    np.savez(Path(folder) / f"rank{rank}.npz", **results)


def test_sharded_model_matches_one_process(tmp_path: Path) -> None:
    reference_model = load_model(MODEL)
    assert not distributed.active()
    x_by_rows = {n: realistic_signals(reference_model, n, seed=11) for n in ROWS}
    context = mp.start_processes(_rank_main, args=(_free_port(), str(tmp_path), x_by_rows), nprocs=2, join=False,
                                 start_method="spawn")
    deadline = time.monotonic() + 120
    try:
        while not context.join(timeout=1):
            assert time.monotonic() < deadline, "the two ranks did not finish within 120 s"
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]
    for n, x in x_by_rows.items():
        reference = _model_work(reference_model, x)
        for key, expected in reference.items():
            got = ranks[0][f"{n}/{key}"]
            # Every rank holds the same bits (that is what keeps the replicated scan in step) ...
            np.testing.assert_array_equal(got, ranks[1][f"{n}/{key}"], err_msg=f"{n} rows, {key}: ranks differ")
            # ... and they are the one-process numbers up to the kernels' batch-size rounding.
            assert got.shape == expected.shape and got.dtype == expected.dtype, (n, key)
            scale = float(np.abs(expected).max()) or 1.0
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * scale, err_msg=f"{n} rows, {key}")
    assert str(ranks[0]["raised"]).startswith("DistributedError: rank 1 of 2 failed")
    assert str(ranks[1]["raised"]) == "ValueError: boom"


def test_without_torchrun_nothing_is_sharded(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    distributed.start()
    model = load_model(MODEL)
    assert not distributed.active() and distributed.is_writer()
    assert "raw_predict" not in vars(model) and "torch_forward" not in vars(model)
    assert distributed.agree_on_exit_code(lambda: 4) == 4


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a CUDA GPU")
def test_torchrun_with_device_cuda_and_no_gpu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from ecgaudit.errors import DeviceError

    rank_1_of_2 = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    for name, value in rank_1_of_2.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(DeviceError, match="no CUDA GPU.*--device cpu"):
        distributed.start("cuda")
    assert not distributed.active()


def test_a_torchrun_env_without_a_rendezvous_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(DistributedError, match="MASTER_ADDR.*torchrun --nproc-per-node"):
        distributed.start()
    assert not distributed.active() and not distributed.is_writer()


# ---- a whole scan under torchrun ---------------------------------------------------------------------------------

def _scan(launcher: list[str], folder: Path) -> tuple[int, str]:
    """Run a scan in `folder` (its working directory, empty); return its exit code and stderr."""
    folder.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS="1", ECGAUDIT_DIST_TIMEOUT_S="120")
    env.pop("GITHUB_STEP_SUMMARY", None)
    args = [*launcher, "-m", "ecgaudit", "scan", str(MODEL), "--profile", str(PROFILE), "--seed", "3",
            "--out", str(folder / "out"), "--quiet"]
    # Its own session, so that a run past the deadline is stopped with all its ranks.
    proc = subprocess.Popen(args, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{' '.join(args)} did not finish within 240 s")
    return proc.returncode, stderr.decode(errors="replace")


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.slow
def test_two_processes_give_the_one_process_verdict(tmp_path: Path) -> None:
    one_rc, one_err = _scan([sys.executable], tmp_path / "one")
    two_rc, two_err = _scan([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"],
                            tmp_path / "two")
    # The profile's gate fails: exit 1. torchrun exits 1 when any rank fails and names the first failure: rank 0's
    # code, the run's outcome. Rank 1 waited for rank 0 to write, then left with 0; torchrun lists it only if it
    # had to stop it (SIGTERM: -15, or 143 once ecgaudit's handler has unwound) while it was still exiting.
    assert one_rc == 1, one_err
    assert two_rc == 1, two_err
    root = two_err.split("Root Cause", 1)[-1]
    assert re.search(r"rank\s*:\s*0 \(local_rank: 0\)\s*exitcode\s*:\s*1 ", root), two_err
    others = re.findall(r"rank\s*:\s*1 \(local_rank: 1\)\s*exitcode\s*:\s*(-?\d+)", two_err)
    assert set(others) <= {"-15", "143"}, two_err
    one = json.loads((tmp_path / "one" / "out" / "report.json").read_text())
    two = json.loads((tmp_path / "two" / "out" / "report.json").read_text())
    assert two["environment"]["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert one["environment"]["distributed"] == {"world_size": 1, "backend": None}
    # each rank's onnxruntime uses the rank's share of the cores, as torch does (not every core per rank)
    assert two["model"]["runtime"]["intra_op_threads"] == two["environment"]["threads"] >= 1
    assert two["gate"]["verdict"] == one["gate"]["verdict"] == "FAIL"
    assert [a["id"] for a in two["attacks"]] == [a["id"] for a in one["attacks"]]
    ran = 0
    for mine, theirs in zip(one["attacks"], two["attacks"]):
        for tm_one, tm_two in zip(mine["threat_models"], theirs["threat_models"]):
            assert tm_one["status"] == tm_two["status"], (mine["id"], tm_one["threat_model"])
            if tm_one["status"] == "ran":
                ran += 1
                a, b = tm_one["metrics"]["fooling_rate"], tm_two["metrics"]["fooling_rate"]
                assert a["total"] == b["total"]
                assert abs(a["successes"] - b["successes"]) <= 1, (mine["id"], tm_one["threat_model"], a, b)
    assert ran == 4  # white-box and black-box for each attack
    # Rank 0 alone wrote, and wrote the same bundle: no second folder, no partial file, nothing in the working
    # directory (each run's folder holds the same names).
    assert _files(tmp_path / "two") == _files(tmp_path / "one")
    assert any(name.startswith("out/perturbations/") for name in _files(tmp_path / "two"))
