"""Export a torch model to ONNX the way vendors' toolchains do, with either of torch's exporters.

A plain helper module (not a test file) shared by tests that need vendor-like ONNX files.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch

INPUT_NAME = "ecg"
OUTPUT_NAME = "logits"


def export_onnx(
    model: torch.nn.Module,
    path: Path,
    *,
    exporter: Literal["legacy", "dynamo"],
    opset: int,
    n_leads: int = 12,
    n_samples: int,
    dynamic_batch: bool,
    constant_folding: bool = True,
    batch: int = 2,
    optimize: bool = True,
    extra_inputs: Sequence[tuple[str, tuple[int, ...]]] = (),
) -> Path:
    """Write `model` (eval mode) to `path` as ONNX with an input `ecg` shaped `(N, n_leads, n_samples)`,
    then one input per `extra_inputs` entry (name, per-record shape).

    `legacy` is the TorchScript-based exporter (`dynamo=False`, opsets 13-17 typical); `dynamo` is the
    torch.export-based one (opsets 18+), with its graph optimiser on (`optimize=True`, the default) or off.
    A fixed batch bakes `batch` into the graph's input shapes. `constant_folding` only applies to the
    legacy exporter (dynamo always folds).
    """
    model = model.eval()
    path = Path(path)
    torch.manual_seed(1234)
    example = (torch.randn(batch, n_leads, n_samples), *(torch.randn(batch, *shape) for _, shape in extra_inputs))
    names = [INPUT_NAME, *(name for name, _ in extra_inputs)]
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        if exporter == "legacy":
            torch.onnx.export(
                model,
                example,
                str(path),
                dynamo=False,
                opset_version=opset,
                do_constant_folding=constant_folding,
                input_names=names,
                output_names=[OUTPUT_NAME],
                dynamic_axes={name: {0: "batch"} for name in [*names, OUTPUT_NAME]} if dynamic_batch else None,
            )
        elif exporter == "dynamo":
            previous = logging.getLogger("torch.onnx").level
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            try:
                batch_dim = torch.export.Dim("batch", min=1, max=4096)
                dynamic_shapes = tuple({0: batch_dim} for _ in names) if dynamic_batch else None
                program = torch.onnx.export(
                    model,
                    example,
                    dynamo=True,
                    optimize=optimize,
                    opset_version=opset,
                    input_names=names,
                    output_names=[OUTPUT_NAME],
                    dynamic_shapes=dynamic_shapes,
                    external_data=False,
                    verbose=False,
                    report=False,
                )
                assert program is not None
                program.save(str(path), external_data=False)
            finally:
                logging.getLogger("torch.onnx").setLevel(previous)
        else:
            raise ValueError(f"unknown exporter {exporter!r}")
    return path

