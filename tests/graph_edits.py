"""Edit a bundled ONNX model the way a vendor's pipeline might: steps put in front of its input.

A plain helper module (not a test file) shared by the BPDA and threat-model tests.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

Front = Callable[[str, str], tuple[list[onnx.NodeProto], list[onnx.TensorProto]]]
"""Given the renamed raw input and the model's original input name: nodes from the first to the second, and the
initializers they use."""


def prepend(source: Path, target: Path, front: Front) -> Path:
    """Copy the ONNX model `source` to `target` with `front`'s nodes before its first input; the card is copied
    beside it (`<stem>.card.json`)."""
    model = onnx.load(str(source))
    graph = model.graph
    original = graph.input[0].name
    raw = original + "_raw"
    graph.input[0].name = raw
    nodes, initializers = front(raw, original)
    graph.initializer.extend(initializers)
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    shutil.copy(source.with_name(source.stem + ".card.json"), target.with_name(target.stem + ".card.json"))
    return target


def prepend_rounding(source: Path, target: Path, step_mv: float = 0.001) -> Path:
    """The model with its input rounded to the nearest `step_mv` in front (Mul, Round, Div): the same decisions,
    zero gradients."""
    def front(raw: str, original: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
        scale = numpy_helper.from_array(np.array(1.0 / step_mv, dtype=np.float32), "rounding_scale")
        return [helper.make_node("Mul", [raw, "rounding_scale"], ["rounding_scaled"]),
                helper.make_node("Round", ["rounding_scaled"], ["rounding_rounded"]),
                helper.make_node("Div", ["rounding_rounded", "rounding_scale"], [original])], [scale]

    return prepend(source, target, front)


def prepend_shrink(source: Path, target: Path) -> Path:
    """The model with `Shrink(lambd=0, bias=0)` — the identity, an operator onnx2torch cannot convert — in front:
    the same decisions on the runtime, no differentiable copy."""
    return prepend(source, target, lambda raw, original: (
        [helper.make_node("Shrink", [raw], [original], lambd=0.0, bias=0.0)], []))


def quantize_int8(source: Path, folder: Path) -> dict[str, Path]:
    """The two int8 exports onnxruntime's own tools write from `source`: `quantize_dynamic`, and `quantize_static`
    in QDQ format calibrated on six builtin:synthetic records; each with the card copied beside it."""
    from onnxruntime.quantization import QuantFormat, quantize_dynamic, quantize_static

    from ecgaudit.data import load_dataset
    from ecgaudit.models import load_model

    card = load_model(source).card
    x = load_dataset("builtin:synthetic:n=6,seed=2", fs=card.fs, n_samples=card.n_samples, leads=card.leads).X
    name = onnx.load(str(source)).graph.input[0].name

    class Reader:
        """onnxruntime's CalibrationDataReader protocol over the records."""

        def __init__(self) -> None:
            self._feeds = iter([{name: x[i : i + 1]} for i in range(len(x))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    out = {"dynamic": folder / f"{source.stem}-int8-dynamic.onnx", "qdq": folder / f"{source.stem}-int8-qdq.onnx"}
    quantize_dynamic(str(source), str(out["dynamic"]))
    quantize_static(str(source), str(out["qdq"]), Reader(), quant_format=QuantFormat.QDQ)  # type: ignore[arg-type]
    for path in out.values():
        shutil.copy(source.with_name(source.stem + ".card.json"), path.with_name(path.stem + ".card.json"))
    return out
