"""Operators whose gradient is zero or undefined, converted so the backward pass can be chosen.

Rounding, sign, casts to integer types and int8 quantisation are piecewise constant: their true
gradient is zero almost everywhere, so a gradient attack through them learns nothing and a robustness
figure measured that way certifies gradient masking, not robustness. BPDA (Athalye, Carlini and
Wagner 2018, "Obfuscated gradients give a false sense of security") keeps the forward pass exact and
replaces the backward of such a step by the identity (straight-through). In a quantiser only the
rounding is straight-through: the division by the scale and the saturation keep their true gradient
(1/scale, and 0 outside the integer range), so BPDA approximates the float model the quantiser came from.

Each module computes onnxruntime's arithmetic exactly (Round is half to even; a Cast to an integer
type truncates and wraps as onnxruntime does; the quantisation operators are in `quantized`). Integer
tensors on the signal's path are carried as float tensors holding exact integer values, so that a
straight-through backward has something to flow through. Only operators on the signal's path count
(`value_path`): a Floor or an integer Cast that computes a size is converted as onnx2torch does.

Which backward runs is read from a `GradientSwitch` at forward time; the adapter owns one switch per
model and hands it to every module after conversion (`ModelAdapter.gradient_mode`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import onnx
import torch
from onnx2torch.node_converters import registry
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxMapping, OnnxToTorchModule, OperationConverterResult, onnx_mapping_from_node
from torch import nn

WHITE_BOX = "white-box"
BPDA = "bpda"
GRADIENT_MODES = (WHITE_BOX, BPDA)

INTEGER_RANGES = {
    onnx.TensorProto.UINT8: (0, 255),
    onnx.TensorProto.INT8: (-128, 127),
    onnx.TensorProto.UINT16: (0, 65535),
    onnx.TensorProto.INT16: (-32768, 32767),
    onnx.TensorProto.UINT32: (0, 2**32 - 1),
    onnx.TensorProto.INT32: (-(2**31), 2**31 - 1),
    onnx.TensorProto.UINT64: (0, 2**64 - 1),
    onnx.TensorProto.INT64: (-(2**63), 2**63 - 1),
}
_FLOAT_TYPES = {
    onnx.TensorProto.FLOAT: torch.float32,
    onnx.TensorProto.DOUBLE: torch.float64,
    onnx.TensorProto.FLOAT16: torch.float16,
    onnx.TensorProto.BFLOAT16: torch.bfloat16,
}
_TORCH_INTEGER = {
    onnx.TensorProto.UINT8: torch.uint8,
    onnx.TensorProto.INT8: torch.int8,
    onnx.TensorProto.INT16: torch.int16,
    onnx.TensorProto.INT32: torch.int32,
    onnx.TensorProto.INT64: torch.int64,
    onnx.TensorProto.BOOL: torch.bool,
}


@dataclass
class GradientSwitch:
    """Which backward the masking operators of one converted model use; read at forward time."""

    mode: str = WHITE_BOX


class _StraightThrough(torch.autograd.Function):
    """`fn(x)` forward, identity backward."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        return fn(x)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


class MaskingModule(nn.Module, OnnxToTorchModule):
    """A piecewise-constant step: exact forward, true (zero) or straight-through backward."""

    def __init__(self, op_type: str) -> None:
        super().__init__()
        self.op_type = op_type
        self.switch = GradientSwitch()

    def step(self, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        if self.switch.mode == BPDA and torch.is_grad_enabled() and x.requires_grad:
            return _StraightThrough.apply(x, fn)
        return fn(x)


class Rounding(MaskingModule):
    """ONNX Round (half to even), Floor, Ceil, Sign."""

    _FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "Round": torch.round, "Floor": torch.floor, "Ceil": torch.ceil, "Sign": torch.sign,
    }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.step(x, self._FUNCTIONS[self.op_type])


class CastToInteger(MaskingModule):
    """ONNX Cast to an integer type on the signal's path, held as floats: truncation toward zero, then
    wrapped into 8- and 16-bit ranges (onnxruntime converts through int32 and keeps the low bits)."""

    def __init__(self, op_type: str, out_range: tuple[int, int]) -> None:
        super().__init__(op_type)
        self.lo, self.hi = out_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x if x.is_floating_point() else x.to(torch.float64)
        span = self.hi - self.lo + 1
        if span > 2**16:
            return self.step(x, torch.trunc)
        return self.step(x, lambda v: torch.remainder(torch.trunc(v) - self.lo, span) + self.lo)


# ---- which tensors carry the signal ---------------------------------------------------------------

_SHAPE_ONLY = {"Shape", "Size"}
_VALUE_PATHS: weakref.WeakKeyDictionary[OnnxGraph, frozenset[str]] = weakref.WeakKeyDictionary()
_PATHS_LOCK = threading.Lock()


def value_path(graph: OnnxGraph) -> frozenset[str]:
    """Names of the tensors whose values depend on the values of a graph input.

    Shape computations (fed by Shape/Size only) are excluded: a Floor or a Cast to int64 there computes
    a size, not the signal, and needs neither a float-held result nor a straight-through backward.
    """
    with _PATHS_LOCK:
        cached = _VALUE_PATHS.get(graph)
        if cached is None:
            cached = _VALUE_PATHS[graph] = _propagate(graph.proto.node, graph.input_values)
        return cached


def _propagate(nodes: Iterable[onnx.NodeProto], inputs: Iterable[str]) -> frozenset[str]:
    live = set(inputs)
    for node in nodes:
        if node.op_type not in _SHAPE_ONLY and any(name in live for name in node.input if name):
            live.update(name for name in node.output if name)
    return frozenset(live)


def on_value_path(node: OnnxNode, graph: OnnxGraph) -> bool:
    return any(name in value_path(graph) for name in node.input_values if name)


# ---- converters ------------------------------------------------------------------------------------

def result(module: nn.Module, node: OnnxNode, mapping: OnnxMapping | None = None) -> OperationConverterResult:
    """What a converter returns: the module, wired to the node's inputs and outputs (or to `mapping`)."""
    return OperationConverterResult(torch_module=module, onnx_mapping=mapping or onnx_mapping_from_node(node))


def _convert_rounding(fallback: registry.TConverter) -> registry.TConverter:
    def convert(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
        if not on_value_path(node, graph):
            return fallback(node, graph)
        return result(Rounding(node.operation_type), node)

    return convert


class _PlainCast(nn.Module, OnnxToTorchModule):
    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.dtype)


def cast_module(to: int, value_path_input: bool, op_type: str = "Cast") -> nn.Module:
    """The module for a Cast (or CastLike) to ONNX type `to`."""
    if to in _FLOAT_TYPES:
        return _PlainCast(_FLOAT_TYPES[to])
    if to in INTEGER_RANGES and value_path_input:
        return CastToInteger(op_type, INTEGER_RANGES[to])
    if to in _TORCH_INTEGER:
        return _PlainCast(_TORCH_INTEGER[to])
    raise NotImplementedError(f"{op_type} to {onnx.TensorProto.DataType.Name(to)}")


def _convert_cast(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    if int(node.attributes.get("saturate", 1)) != 1 and int(node.attributes["to"]) not in INTEGER_RANGES:
        raise NotImplementedError("Cast with saturate=0 to a float8 type")
    return result(cast_module(int(node.attributes["to"]), on_value_path(node, graph)), node)


def converters() -> dict[tuple[str, int], tuple[registry.TConverter, bool]]:
    """(op type, since-version) -> (converter, replaces onnx2torch's own)."""
    original = registry._CONVERTER_REGISTRY
    table: dict[tuple[str, int], tuple[registry.TConverter, bool]] = {}
    for op_type, versions, base in (("Round", (11, 22), 11), ("Floor", (6, 13), 13), ("Ceil", (6, 13), 13),
                                    ("Sign", (9, 13), 13)):
        fallback = original[registry.OperationDescription("", op_type, base)]
        for version in versions:
            table[(op_type, version)] = (_convert_rounding(fallback), version != 22)
    for version in (9, 13):
        table[("Cast", version)] = (_convert_cast, True)
    for version in (19, 21):
        table[("Cast", version)] = (_convert_cast, False)
    return table


def masking_modules(module: nn.Module) -> list[MaskingModule]:
    return [m for m in module.modules() if isinstance(m, MaskingModule)]


