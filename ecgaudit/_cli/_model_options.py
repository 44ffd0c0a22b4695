"""Model options shared by every command that opens a model: card file, card-field flags, device and threads."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ecgaudit.models import ModelAdapter

ModelArg = Annotated[Path, typer.Argument(
    help="The vendor's model: an ONNX (.onnx) or TorchScript (.pt) file, or builtin:cnn (the bundled example CNN, "
    "shipped in the package).")]
CardOpt = Annotated[Path | None, typer.Option(
    "--card", help="Model card JSON (default: <stem>.card.json or <file name>.card.json beside the model).")]
FsOpt = Annotated[float | None, typer.Option("--fs", help="Card override: sampling rate in Hz.")]
SamplesOpt = Annotated[int | None, typer.Option("--n-samples", help="Card override: samples per record.")]
LeadsOpt = Annotated[str | None, typer.Option("--leads", help="Card override: comma-separated lead names.")]
LayoutOpt = Annotated[str | None, typer.Option("--layout", help="Card override: NCT or NTC.")]
ClassesOpt = Annotated[str | None, typer.Option("--classes", help="Card override: comma-separated class names.")]
OutputOpt = Annotated[str | None, typer.Option(
    "--output-kind", help="Card override: what the model returns, logits or probabilities.")]
TaskOpt = Annotated[str | None, typer.Option(
    "--task", help="Card override: multiclass (one class per record) or multilabel (needs thresholds).")]


def card_overrides(
    fs: float | None, n_samples: int | None, leads: str | None, layout: str | None,
    classes: str | None, output: str | None, task: str | None = None,
) -> dict[str, Any]:
    def split(text: str | None) -> list[str] | None:
        return None if text is None else [part.strip() for part in text.split(",") if part.strip()]

    return {
        "fs": fs, "n_samples": n_samples, "leads": split(leads), "layout": layout,
        "classes": split(classes), "output": output, "task": task,
    }


TimeoutOpt = Annotated[float | None, typer.Option("--model-timeout", min=0.001, help="Stop (exit 2) if the model "
                                                  "takes longer than this many seconds on one batch.")]
MaxBytesOpt = Annotated[int | None, typer.Option("--max-model-bytes", min=1, help="Refuse model files (with "
                                                 "external data) larger than this (default 512 MiB).")]


def _device(value: str) -> str:
    """`cpu`, `cuda` or `cuda:N`, checked as text: a typo costs no torch import (whether the GPU exists is
    checked when the model loads)."""
    name = value.strip().lower()
    if not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise typer.BadParameter(f"'{value}' is not a device ecgaudit can use; give cpu, cuda or cuda:N.")
    return name


DeviceOpt = Annotated[str, typer.Option(
    "--device", callback=_device, help="Where the surrogate's gradients and the model run: cpu, cuda or cuda:N. On "
    "a GPU, ONNX models run on onnxruntime's CUDA provider when it is installed (onnxruntime-gpu), else on the "
    "CPU; the report's environment says which.")]
MAX_THREADS = 1024
"""Most `--threads`: above any one machine's hardware threads today (two 192-core EPYC sockets have 768), far
below where onnxruntime fails to map its thread stacks (100,000) or the count overflows a C long. A fixed bound,
not a multiple of this machine's cores, so a command line that runs on a CI runner also runs on a laptop."""
ThreadsOpt = Annotated[int | None, typer.Option(
    "--threads", min=1, max=MAX_THREADS,
    help=f"CPU threads for torch and onnxruntime, 1 to {MAX_THREADS} (default: their own, one per core).")]


def preflight_card(model: Path, card: Path | None) -> None:
    """Read the card file the model will be opened with (bounded in size and nesting), without torch."""
    from ecgaudit.card import card_file, read_card_file

    path = card_file(model, card)
    if path is not None:
        read_card_file(path)


def open_model(model: Path, card: Path | None, overrides: dict[str, Any], *, timeout_s: float | None = None,
               max_bytes: int | None = None, device: str = "cpu", threads: int | None = None,
               data: Sequence[str | None] = ()) -> ModelAdapter:
    """Load the model. This is the first step that needs torch and the model stack, so they are imported here:
    `--help`, argument, profile and path errors never pay for them (seconds and hundreds of MB). Before that, the
    checks that need no model: the card file (size, nesting, JSON) and each data source in `data` (its kind, WFDB
    headers, symlinks), so a bad file is refused in well under a second, not after the model has loaded."""
    from ecgaudit.data.preflight import preflight_data
    from ecgaudit.defaults import builtin_model_path

    model = builtin_model_path(str(model))
    preflight_card(model, card)
    for spec in data:
        if spec is not None:
            preflight_data(spec)
    import torch

    from ecgaudit.distributed import active, start
    from ecgaudit.models import load_model

    start(device)  # under torchrun: join the other ranks, so the models loaded from here on share out their work
    torch.set_flush_denormal(True)  # denormal floats in conv layers cost 10-100x on x86; flush them once per run
    if threads is not None:
        torch.set_num_threads(threads)
    elif active():  # each rank's onnxruntime gets the rank's share of the cores, as torch did, not all of them
        threads = torch.get_num_threads()
    return load_model(model, card_path=card, card_overrides=overrides, timeout_s=timeout_s, max_bytes=max_bytes,
                      device=device, threads=threads)
