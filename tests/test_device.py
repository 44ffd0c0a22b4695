"""`--device` and `--threads`: the report records where each part ran and with how many threads, bad values are
exit 2 with one sentence, and (on a GPU machine) a CUDA scan agrees with the CPU one within the intervals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ecgaudit.errors import DeviceError
from ecgaudit.models import load_model
from ecgaudit.models.device import resolve_device
from ecgaudit.report.schema import validate_report

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "examples" / "models"
TINY = REPO / "tests" / "profiles" / "scan-tiny.toml"
LIGHT = MODELS / "cnn-ml100.onnx"
"""The cheap model (100 Hz, 1000 samples): every CPU test here."""

NO_GPU = "no CUDA GPU on this machine: the GPU run is checked on a GPU machine"
HAS_GPU = "this machine has a CUDA GPU, so the no-GPU refusal cannot be seen here"


@pytest.fixture
def torch_threads() -> Iterator[None]:
    """--threads sets torch's process-wide count; put back the suite's own afterwards."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def scan(run_cli: Any, model: Path, out: Path, *flags: str) -> tuple[int, dict[str, Any], str]:
    code, _, err = run_cli("scan", model, "--profile", TINY, "--out", out, "--quiet", *flags)
    report = json.loads((out / "report.json").read_text()) if code in (0, 1, 4) else {}
    return code, report, err


def test_scan_records_device_and_threads(run_cli: Any, tmp_path: Path, torch_threads: None) -> None:
    code, report, err = scan(run_cli, LIGHT, tmp_path / "out", "--device", "cpu", "--threads", "1")
    assert code == 0, err
    assert torch.get_num_threads() == 1  # the suite runs with 2: --threads changed it
    validate_report(report)
    env = report["environment"]
    assert (env["device"], env["surrogate_device"], env["threads"]) == ("cpu", "cpu", 1)
    assert env["runtime"] == "onnxruntime CPUExecutionProvider"
    runtime = report["model"]["runtime"]
    assert runtime["intra_op_threads"] == 1  # onnxruntime's session, read back (its default reads 0)
    assert runtime["execution_providers"] == ["CPUExecutionProvider"]


def test_attack_records_device_and_threads(run_cli: Any, tmp_path: Path, torch_threads: None) -> None:
    code, _, err = run_cli("attack", LIGHT, "--attack", "pgd", "--n-craft", "4", "--n-eval", "4", "--param",
                           "steps=1", "--out", tmp_path, "--quiet", "--device", "cpu", "--threads", "1")
    assert code == 0, err
    document = json.loads((tmp_path / "attack.json").read_text())
    assert document["environment"]["threads"] == 1
    assert document["environment"]["device"] == "cpu"
    assert document["model"]["runtime"]["intra_op_threads"] == 1


def test_onnx_threads_reach_the_session() -> None:
    adapter = load_model(LIGHT, threads=3)
    assert adapter.session.get_session_options().intra_op_num_threads == 3
    assert load_model(LIGHT).session.get_session_options().intra_op_num_threads == 0  # onnxruntime's default


def test_torchscript_runs_on_the_device_it_names() -> None:
    adapter = load_model(MODELS / "cnn-ml100.pt", device="cpu")
    assert adapter.runtime_info()["device"] == "cpu"
    assert adapter.placement() == {"device": "cpu", "surrogate_device": "cpu", "runtime": "torchscript on cpu"}


@pytest.mark.parametrize(("flags", "needle"), [
    (["--device", "tpu"], "'tpu' is not a device ecgaudit can use; give cpu, cuda or cuda:N"),
    (["--device", "cuda:x"], "give cpu, cuda or cuda:N"),
    (["--threads", "0"], "--threads"),
    # were onnxruntime's 'failed to map segment' and 'Overflow when unpacking long' (exit 3)
    (["--threads", "100000"], "'--threads': Input should be less than or equal to 1024"),
    (["--threads", "99999999999999"], "less than or equal to 1024"),
])
def test_bad_values_are_exit_2(flags: list[str], needle: str, run_cli: Any, tmp_path: Path) -> None:
    code, _, err = run_cli("scan", LIGHT, "--profile", TINY, "--out", tmp_path / "out", *flags)
    assert code == 2
    assert needle in " ".join(err.split())
    assert not (tmp_path / "out" / "report.json").exists()


def test_resolve_device_refuses_what_is_not_a_device() -> None:
    with pytest.raises(DeviceError, match="give cpu, cuda or cuda:N"):
        resolve_device("tpu")
    with pytest.raises(DeviceError, match="give cpu, cuda or cuda:N"):
        resolve_device("mps")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason=HAS_GPU)
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_is_exit_2(device: str, run_cli: Any, tmp_path: Path) -> None:
    code, _, err = run_cli("scan", LIGHT, "--profile", TINY, "--out", tmp_path / "out", "--device", device)
    assert code == 2
    assert (f"--device {device}: no CUDA GPU is visible to torch on this machine; run with --device cpu"
            in " ".join(err.split()))
    assert "Traceback" not in err


def test_onnx_providers_follow_what_onnxruntime_offers(monkeypatch: pytest.MonkeyPatch) -> None:
    from ecgaudit.models import onnx as onnx_models

    gpu = torch.device("cuda", 1)
    monkeypatch.setattr(onnx_models.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert onnx_models.execution_providers(gpu) == ["CPUExecutionProvider"]
    monkeypatch.setattr(onnx_models.ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    cuda, cpu = onnx_models.execution_providers(gpu)
    assert cuda == ("CUDAExecutionProvider", {"device_id": 1, "use_tf32": 0}) and cpu == "CPUExecutionProvider"
    assert onnx_models.execution_providers(torch.device("cpu")) == ["CPUExecutionProvider"]


@pytest.mark.skipif("CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(),
                    reason="this onnxruntime has its CUDA provider, so the fallback's words cannot be seen here")
def test_runtime_placement_says_why_the_runtime_stayed_on_the_cpu() -> None:
    """Asked for a GPU without onnxruntime-gpu, the runtime runs on the CPU provider, and the report says why."""
    adapter = load_model(LIGHT)
    assert adapter.runtime_placement() == "onnxruntime CPUExecutionProvider"
    adapter.device = torch.device("cuda", 0)  # what load_model(device="cuda") gives on a GPU machine
    assert adapter.runtime_placement() == ("onnxruntime CPUExecutionProvider (CUDA provider not installed: "
                                           "pip install onnxruntime-gpu)")


# -- on a GPU --------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)
@pytest.mark.parametrize("model", ["cnn-ml100.onnx", "cnn-ml100.pt"])
def test_gradients_cross_the_device_and_come_back_on_the_cpu(model: str) -> None:
    adapter = load_model(MODELS / model, device="cuda")
    assert next(adapter.module.parameters()).device.type == "cuda"
    signal = np.random.default_rng(0).normal(0.0, 0.2, (2, len(adapter.card.leads), adapter.card.n_samples))
    x = torch.tensor(signal, dtype=torch.float32, requires_grad=True)
    logits = adapter.torch_forward(x)
    assert logits.device.type == "cpu"
    logits.sum().backward()
    assert x.grad is not None and x.grad.device.type == "cpu" and torch.isfinite(x.grad).all()
    assert adapter.check_parity(signal.astype(np.float32)) is not None  # runtime and GPU surrogate agree


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)
@pytest.mark.parametrize("model", ["cnn-ml100.onnx", "cnn-ml100.pt"])
def test_a_cuda_scan_agrees_with_the_cpu_scan_within_the_intervals(model: str, run_cli: Any, tmp_path: Path,
                                                                   torch_threads: None) -> None:
    code_cpu, cpu, err = scan(run_cli, MODELS / model, tmp_path / "cpu", "--device", "cpu")
    assert code_cpu in (0, 1, 4), err
    code_gpu, gpu, err = scan(run_cli, MODELS / model, tmp_path / "gpu", "--device", "cuda")
    assert code_gpu in (0, 1, 4), err
    validate_report(gpu)
    env = gpu["environment"]
    assert env["device"].startswith("cuda:") and env["surrogate_device"] == env["device"], env
    assert "cuda" in env["runtime"].lower() or "CUDA provider" in env["runtime"], env
    pairs = [("clean accuracy", cpu["clean"]["accuracy"], gpu["clean"]["accuracy"])]
    pairs += [(a["id"], a["metrics"]["fooling_rate"], b["metrics"]["fooling_rate"])
              for a, b in zip(cpu["attacks"], gpu["attacks"], strict=True)]
    for what, on_cpu, on_gpu in pairs:
        for value, (low, high) in ((on_cpu["value"], on_gpu["ci95"]), (on_gpu["value"], on_cpu["ci95"])):
            assert low - 1e-9 <= value <= high + 1e-9, (what, on_cpu, on_gpu)


@pytest.mark.parametrize(("flags", "exact"), [
    ("fpu sse2 avx avx2 fma", False),  # AVX2 without VNNI: 16-bit intermediate sums saturate
    ("fpu sse2 avx avx2 avx512f avx512bw avx512_vnni", True),
    ("fpu sse2 avx avx2 avx_vnni", True),
    ("fp asimd", True),  # not x86: no AVX2 path to saturate
])
def test_the_report_says_whether_int8_kernels_are_exact_on_this_cpu(tmp_path, flags: str, exact: bool) -> None:
    from ecgaudit.models.device import cpu_description

    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    described = cpu_description(info)
    assert described["model"] == "Some CPU" and described["int8_exact"] is exact
    assert set(described["int8_instructions"]) <= set(flags.split())
    assert cpu_description(tmp_path / "missing")["int8_exact"] is None
