"""int8 quantisation operators, as onnxruntime computes them, with BPDA on their rounding.

QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear (what `quantize_static` in QDQ format and
`quantize_dynamic` write), the integer ConvInteger and MatMulInteger, and QLinearConv / QLinearMatMul.
Quantised tensors are carried as floats holding exact integers (`bpda`'s convention): 8-bit values in
float32, integer accumulators in float64 (exact up to 2^53). Division by the scale is float32 as in
onnxruntime's MlasQuantizeLinear; rounding is half to even; saturation clamps to the integer type.
"""

from __future__ import annotations

import onnx
import torch
from onnx2torch.node_converters import registry
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxToTorchModule, OperationConverterResult
from torch import nn

from ecgaudit.models.bpda import BPDA, INTEGER_RANGES, MaskingModule, result
from ecgaudit.models.onnx_conv import conv_nd


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


def _output_range(node: OnnxNode, graph: OnnxGraph, zp_index: int) -> tuple[int, int]:
    """The integer range of a quantised output, from its zero point's type (uint8 when absent)."""
    names = node.input_values
    if len(names) <= zp_index or not names[zp_index]:
        return INTEGER_RANGES[onnx.TensorProto.UINT8]
    zp_name = names[zp_index]
    if zp_name in graph.initializers:
        elem = graph.initializers[zp_name].proto.data_type
    elif zp_name in graph.value_info:
        elem = graph.value_info[zp_name].type.tensor_type.elem_type
    else:
        raise NotImplementedError(f"{node.operation_type} whose zero point type cannot be inferred")
    if elem not in INTEGER_RANGES:
        raise NotImplementedError(f"{node.operation_type} to {onnx.TensorProto.DataType.Name(elem)}")
    return INTEGER_RANGES[elem]


def _convert_quantize(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    if int(node.attributes.get("block_size", 0)):
        raise NotImplementedError("QuantizeLinear with block_size")
    return result(QuantizeLinear(int(node.attributes.get("axis", 1)), _output_range(node, graph, 2)), node)


def _convert_dequantize(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    if int(node.attributes.get("block_size", 0)):
        raise NotImplementedError("DequantizeLinear with block_size")
    return result(DequantizeLinear(int(node.attributes.get("axis", 1))), node)


def _convert_dynamic_quantize(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(DynamicQuantizeLinear(), node)


def _convert_conv_integer(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(ConvInteger(dict(node.attributes)), node)


def _convert_matmul_integer(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(MatMulInteger(), node)


def _convert_qlinear_conv(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(QLinearConv(dict(node.attributes), _output_range(node, graph, 7)), node)


def _convert_qlinear_matmul(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(QLinearMatMul(_output_range(node, graph, 7)), node)


def converters() -> dict[tuple[str, int], registry.TConverter]:
    """(op type, since-version) -> converter; onnx2torch has none of these."""
    table: dict[tuple[str, int], registry.TConverter] = {}
    for version in (10, 13, 19, 21):
        table[("QuantizeLinear", version)] = _convert_quantize
        table[("DequantizeLinear", version)] = _convert_dequantize
    table[("DynamicQuantizeLinear", 11)] = _convert_dynamic_quantize
    table[("ConvInteger", 10)] = _convert_conv_integer
    table[("MatMulInteger", 10)] = _convert_matmul_integer
    table[("QLinearConv", 10)] = _convert_qlinear_conv
    for version in (10, 21):
        table[("QLinearMatMul", version)] = _convert_qlinear_matmul
    return table
