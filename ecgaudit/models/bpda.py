"""Operators whose gradient is zero or undefined, converted so the backward pass can be chosen.

Rounding, sign, casts to integer types and int8 quantisation are piecewise constant: their true
gradient is zero almost everywhere, so a gradient attack through them learns nothing and a robustness
figure measured that way certifies gradient masking, not robustness. BPDA (Athalye, Carlini and
Wagner 2018, "Obfuscated gradients give a false sense of security") keeps the forward pass exact and
replaces the backward of such a step by the identity (straight-through). In a quantiser only the
rounding is straight-through: the division by the scale and the saturation keep their true gradient
(1/scale, and 0 outside the integer range), so BPDA approximates the float model the quantiser came from.

Each module here computes onnxruntime's arithmetic exactly (round half to even, saturation, float32
division by the scale, DynamicQuantizeLinear's scale and zero point as onnxruntime's
`GetQuantizationParameter` computes them). Integer tensors on the signal's path are carried as float
tensors holding exact integer values, so that a straight-through backward has something to flow
through; integer accumulators (ConvInteger, MatMulInteger) are float64, exact up to 2^53.

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
from onnx2torch.utils.common import OnnxToTorchModule, OperationConverterResult, onnx_mapping_from_node
from torch import nn

from ecgaudit.models.onnx_conv import conv_nd

WHITE_BOX = "white-box"
BPDA = "bpda"
GRADIENT_MODES = (WHITE_BOX, BPDA)

_INTEGER_RANGES = {
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


class QuantizeLinear(MaskingModule):
    """y = saturate(round(x / scale) + zero_point), per tensor or per `axis`."""

    def __init__(self, axis: int, out_range: tuple[int, int]) -> None:
        super().__init__("QuantizeLinear")
        self.axis = axis
        self.lo, self.hi = out_range

    def forward(self, x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | None = None
                ) -> torch.Tensor:
        # x / scale in the input's precision, as onnxruntime divides (MlasQuantizeLinear).
        v = x / _along(scale.to(x.dtype), self.axis, x.dim())
        zp = 0.0 if zero_point is None else _along(zero_point.to(x.dtype), self.axis, x.dim())
        return torch.clamp(self.step(v, torch.round) + zp, self.lo, self.hi)


class DynamicQuantizeLinear(MaskingModule):
    """uint8 quantisation with scale and zero point from the whole tensor's range (onnxruntime's
    `GetQuantizationParameter`): min/max widened to include 0, scale = (max - min) / 255 (1 when
    max == min), zero point = round(clamp(-min / scale, 0, 255)). With BPDA the scale and zero point
    are held constant in the backward, so quantise then dequantise is the identity there (inside the
    range, which the tensor's own min and max always are)."""

    def __init__(self) -> None:
        super().__init__("DynamicQuantizeLinear")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lo = torch.clamp(x.min(), max=0.0)
        hi = torch.clamp(x.max(), min=0.0)
        scale = torch.where(hi == lo, torch.ones_like(hi), (hi - lo) / 255.0)
        zero_point = torch.round(torch.clamp(0.0 - lo / scale, 0.0, 255.0)).detach()
        if self.switch.mode == BPDA:
            scale = scale.detach()
        y = torch.clamp(self.step(x / scale, torch.round) + zero_point, 0.0, 255.0)
        return y, scale, zero_point


class DequantizeLinear(nn.Module, OnnxToTorchModule):
    """y = (x - zero_point) * scale: the integer difference exactly (float64), then float32 times scale."""

    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | None = None
                ) -> torch.Tensor:
        diff = x.to(torch.float64)
        if zero_point is not None:
            diff = diff - _along(zero_point.to(torch.float64), self.axis, x.dim())
        return diff.to(scale.dtype) * _along(scale, self.axis, x.dim())


class ConvInteger(nn.Module, OnnxToTorchModule):
    """ONNX ConvInteger: conv(x - x_zp, w - w_zp), int32 accumulator held exactly in float64."""

    def __init__(self, attributes: dict) -> None:
        super().__init__()
        self.attributes = attributes

    def forward(self, x: torch.Tensor, w: torch.Tensor, x_zp: torch.Tensor | None = None,
                w_zp: torch.Tensor | None = None) -> torch.Tensor:
        return conv_nd(_centred(x, x_zp, 1), _centred(w, w_zp, 0), None, self.attributes)


class MatMulInteger(nn.Module, OnnxToTorchModule):
    """ONNX MatMulInteger: (a - a_zp) @ (b - b_zp), exact in float64 (a_zp per row, b_zp per column)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor, a_zp: torch.Tensor | None = None,
                b_zp: torch.Tensor | None = None) -> torch.Tensor:
        a64 = a.to(torch.float64)
        if a_zp is not None:
            zp = a_zp.to(torch.float64)
            a64 = a64 - (zp.view(-1, 1) if zp.numel() > 1 else zp.reshape(()))
        b64 = b.to(torch.float64)
        if b_zp is not None:
            b64 = b64 - b_zp.to(torch.float64).reshape(-1 if b_zp.numel() > 1 else ())
        return a64 @ b64


class QLinearConv(MaskingModule):
    """ONNX QLinearConv: integer conv plus bias, requantised by x_scale * w_scale / y_scale."""

    def __init__(self, attributes: dict, out_range: tuple[int, int]) -> None:
        super().__init__("QLinearConv")
        self.attributes = attributes
        self.lo, self.hi = out_range

    def forward(self, x: torch.Tensor, x_scale: torch.Tensor, x_zp: torch.Tensor, w: torch.Tensor,
                w_scale: torch.Tensor, w_zp: torch.Tensor, y_scale: torch.Tensor, y_zp: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        acc = conv_nd(_centred(x, x_zp, 1), _centred(w, w_zp, 0), None, self.attributes)
        if bias is not None:
            acc = acc + bias.to(torch.float64).view(1, -1, *([1] * (acc.dim() - 2)))
        multiplier = (x_scale * w_scale / y_scale).to(torch.float32).view(1, -1, *([1] * (acc.dim() - 2)))
        zp = y_zp.to(torch.float32)
        return torch.clamp(self.step(acc.to(torch.float32) * multiplier, torch.round) + zp, self.lo, self.hi)


class QLinearMatMul(MaskingModule):
    """ONNX QLinearMatMul: integer matmul requantised by a_scale * b_scale / y_scale."""

    def __init__(self, out_range: tuple[int, int]) -> None:
        super().__init__("QLinearMatMul")
        self.lo, self.hi = out_range

    def forward(self, a: torch.Tensor, a_scale: torch.Tensor, a_zp: torch.Tensor, b: torch.Tensor,
                b_scale: torch.Tensor, b_zp: torch.Tensor, y_scale: torch.Tensor, y_zp: torch.Tensor
                ) -> torch.Tensor:
        acc = (a.to(torch.float64) - a_zp.to(torch.float64)) @ (b.to(torch.float64) - b_zp.to(torch.float64))
        zp = y_zp.to(torch.float32)
        multiplier = (a_scale * b_scale / y_scale).to(torch.float32)
        return torch.clamp(self.step(acc.to(torch.float32) * multiplier, torch.round) + zp, self.lo, self.hi)


def _along(t: torch.Tensor, axis: int, rank: int) -> torch.Tensor:
    """A per-axis (1-D) quantisation parameter shaped to broadcast along `axis`; scalars unchanged."""
    if t.dim() == 0 or t.numel() == 1:
        return t.reshape(())
    shape = [1] * rank
    shape[axis % rank] = -1
    return t.reshape(shape)


def _centred(x: torch.Tensor, zp: torch.Tensor | None, axis: int) -> torch.Tensor:
    out = x.to(torch.float64)
    return out if zp is None else out - _along(zp.to(torch.float64), axis, x.dim())


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

def _result(module: nn.Module, node: OnnxNode) -> OperationConverterResult:
    return OperationConverterResult(torch_module=module, onnx_mapping=onnx_mapping_from_node(node))


def _output_range(node: OnnxNode, graph: OnnxGraph, zp_index: int) -> tuple[int, int]:
    """The integer range of a quantised output, from its zero point's type (uint8 when absent)."""
    names = node.input_values
    if len(names) <= zp_index or not names[zp_index]:
        return _INTEGER_RANGES[onnx.TensorProto.UINT8]
    zp_name = names[zp_index]
    if zp_name in graph.initializers:
        elem = graph.initializers[zp_name].proto.data_type
    elif zp_name in graph.value_info:
        elem = graph.value_info[zp_name].type.tensor_type.elem_type
    else:
        raise NotImplementedError(f"{node.operation_type} whose zero point type cannot be inferred")
    if elem not in _INTEGER_RANGES:
        raise NotImplementedError(f"{node.operation_type} to {onnx.TensorProto.DataType.Name(elem)}")
    return _INTEGER_RANGES[elem]


def _convert_rounding(fallback: registry.TConverter) -> registry.TConverter:
    def convert(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
        if not on_value_path(node, graph):
            return fallback(node, graph)
        return _result(Rounding(node.operation_type), node)

    return convert


def _convert_sign(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return _result(Rounding("Sign"), node)


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
    if to in _INTEGER_RANGES and value_path_input:
        return CastToInteger(op_type, _INTEGER_RANGES[to])
    if to in _TORCH_INTEGER:
        return _PlainCast(_TORCH_INTEGER[to])
    raise NotImplementedError(f"{op_type} to {onnx.TensorProto.DataType.Name(to)}")


def _convert_cast(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    if int(node.attributes.get("saturate", 1)) != 1 and int(node.attributes["to"]) not in _INTEGER_RANGES:
        raise NotImplementedError("Cast with saturate=0 to a float8 type")
    return _result(cast_module(int(node.attributes["to"]), on_value_path(node, graph)), node)


def _convert_quantize(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    if int(node.attributes.get("block_size", 0)):
        raise NotImplementedError("QuantizeLinear with block_size")
    return _result(QuantizeLinear(int(node.attributes.get("axis", 1)), _output_range(node, graph, 2)), node)


def _convert_dequantize(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    if int(node.attributes.get("block_size", 0)):
        raise NotImplementedError("DequantizeLinear with block_size")
    return _result(DequantizeLinear(int(node.attributes.get("axis", 1))), node)


def _convert_dynamic_quantize(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return _result(DynamicQuantizeLinear(), node)


def _convert_conv_integer(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return _result(ConvInteger(dict(node.attributes)), node)


def _convert_matmul_integer(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return _result(MatMulInteger(), node)


def _convert_qlinear_conv(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return _result(QLinearConv(dict(node.attributes), _output_range(node, graph, 7)), node)


def _convert_qlinear_matmul(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return _result(QLinearMatMul(_output_range(node, graph, 7)), node)


def converters() -> dict[tuple[str, int], tuple[registry.TConverter, bool]]:
    """(op type, since-version) -> (converter, replaces onnx2torch's own)."""
    original = registry._CONVERTER_REGISTRY
    table: dict[tuple[str, int], tuple[registry.TConverter, bool]] = {}
    for op_type, versions in (("Round", (11, 22)), ("Floor", (6, 13)), ("Ceil", (6, 13))):
        fallback = original[registry.OperationDescription("", op_type, 13 if op_type != "Round" else 11)]
        for version in versions:
            table[(op_type, version)] = (_convert_rounding(fallback), version != 22)
    for version in (9, 13):
        table[("Sign", version)] = (_convert_sign, True)
    for version in (9, 13):
        table[("Cast", version)] = (_convert_cast, True)
    for version in (19, 21):
        table[("Cast", version)] = (_convert_cast, False)
    for version in (10, 13, 19, 21):
        table[("QuantizeLinear", version)] = (_convert_quantize, False)
        table[("DequantizeLinear", version)] = (_convert_dequantize, False)
    table[("DynamicQuantizeLinear", 11)] = (_convert_dynamic_quantize, False)
    table[("ConvInteger", 10)] = (_convert_conv_integer, False)
    table[("MatMulInteger", 10)] = (_convert_matmul_integer, False)
    table[("QLinearConv", 10)] = (_convert_qlinear_conv, False)
    table[("QLinearMatMul", 10)] = (_convert_qlinear_matmul, False)
    table[("QLinearMatMul", 21)] = (_convert_qlinear_matmul, False)
    return table


def masking_modules(module: nn.Module) -> list[MaskingModule]:
    return [m for m in module.modules() if isinstance(m, MaskingModule)]


