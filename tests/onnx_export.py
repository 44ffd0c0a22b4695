"""Export a torch model to ONNX the way vendors' toolchains do, with either of torch's exporters.

A plain helper module (not a test file) shared by tests that need vendor-like ONNX files.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
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
) -> Path:
    """Write `model` (eval mode) to `path` as ONNX with one input `ecg` shaped `(N, n_leads, n_samples)`.

    `legacy` is the TorchScript-based exporter (`dynamo=False`, opsets 13-17 typical); `dynamo` is the
    torch.export-based one (opsets 18+). A fixed batch bakes `batch` into the graph's input shape.
    `constant_folding` only applies to the legacy exporter (dynamo always folds).
    """
    model = model.eval()
    path = Path(path)
    example = (torch.randn(batch, n_leads, n_samples),)
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
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None,
            )
        elif exporter == "dynamo":
            previous = logging.getLogger("torch.onnx").level
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            try:
                dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
                program = torch.onnx.export(
                    model,
                    example,
                    dynamo=True,
                    opset_version=opset,
                    input_names=[INPUT_NAME],
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

