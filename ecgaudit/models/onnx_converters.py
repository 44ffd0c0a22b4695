"""What onnx2torch 1.5.15 lacks for graphs torch's two ONNX exporters write, added two ways.

* Converters, registered through onnx2torch's own registry (`add_converter`): `Gelu` (opset 20), the
  opset-18 `Reduce*` family (axes as an input), `Reshape` with `allowzero=1` (opsets 14, 19, 21), `Conv`
  with `SAME_*` padding at any stride or with computed weights; the opset 18-21 operators and recurrent
  layers of `onnx_recent`; the masking operators of `bpda` (Round, casts, quantisation ...).
* Graph rewrites (`rewrite_for_conversion`), each provably equivalent under the ONNX spec: initializer
  copies for `Constant` nodes and for `Identity` nodes over initializers, and explicit pads for `SAME_*`
  convolutions at stride 1.

An op that still has no converter makes onnx2torch raise NotImplementedError naming it, which
`convert_to_torch` turns into a runtime-only model (`surrogate_error` names the op).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import onnx
import torch
from onnx2torch.node_converters import registry
from onnx2torch.node_converters.registry import add_converter
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxToTorchModule, OperationConverterResult
from torch import nn

from ecgaudit.models import bpda, onnx_recent, quantized
from ecgaudit.models.bpda import result
from ecgaudit.models.onnx_conv import conv_nd

Converter = Callable[[OnnxNode, OnnxGraph], OperationConverterResult]

_LOCK = threading.Lock()
_REGISTERED = False


class OnnxGelu(nn.Module, OnnxToTorchModule):
    """ONNX `Gelu` (opset 20): `approximate` 'none' is x*Phi(x), 'tanh' the tanh formula; torch's match."""

    def __init__(self, approximate: str) -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise NotImplementedError(f"Gelu with approximate={approximate!r} is not implemented")
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(x, approximate=self.approximate)


class OnnxReshapeAllowZero(nn.Module, OnnxToTorchModule):
    """ONNX `Reshape` with `allowzero=1`: a 0 in `shape` is a literal zero-sized dim (never "copy the
    input's dim"), a -1 is inferred from the remaining size; `torch.reshape` has exactly these semantics."""

    def forward(self, x: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        return torch.reshape(x, [int(d) for d in shape.tolist()])


def _prod(x: torch.Tensor, dims: list[int], keepdim: bool) -> torch.Tensor:
    for dim in sorted(dims, reverse=True):
        x = torch.prod(x, dim=dim, keepdim=keepdim)
    return x


_REDUCTIONS: dict[str, Callable[[torch.Tensor, list[int], bool], torch.Tensor]] = {
    "ReduceMean": lambda x, d, k: torch.mean(x, dim=d, keepdim=k),
    "ReduceMax": lambda x, d, k: torch.amax(x, dim=d, keepdim=k),
    "ReduceMin": lambda x, d, k: torch.amin(x, dim=d, keepdim=k),
    "ReduceProd": _prod,
    "ReduceL1": lambda x, d, k: torch.sum(x.abs(), dim=d, keepdim=k),
    "ReduceL2": lambda x, d, k: torch.sqrt(torch.sum(x * x, dim=d, keepdim=k)),
    "ReduceLogSum": lambda x, d, k: torch.log(torch.sum(x, dim=d, keepdim=k)),
    "ReduceLogSumExp": lambda x, d, k: torch.logsumexp(x, dim=d, keepdim=k),
    "ReduceSumSquare": lambda x, d, k: torch.sum(x * x, dim=d, keepdim=k),
}


class OnnxReduceAxesInput(nn.Module, OnnxToTorchModule):
    """The opset-18 `Reduce*` ops: `axes` is an optional input; empty/absent axes reduce all dims unless
    `noop_with_empty_axes=1`, which returns the input unchanged."""

    def __init__(self, op_type: str, keepdims: int, noop_with_empty_axes: int) -> None:
        super().__init__()
        self.op_type = op_type
        self.keepdims = bool(keepdims)
        self.noop = bool(noop_with_empty_axes)

    def forward(self, x: torch.Tensor, axes: torch.Tensor | None = None) -> torch.Tensor:
        if axes is None or axes.numel() == 0:
            if self.noop:
                return x
            dims = list(range(x.dim()))
        else:
            dims = sorted({int(a) % x.dim() for a in axes.tolist()})
        return _REDUCTIONS[self.op_type](x, dims, self.keepdims)


def _convert_gelu(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(OnnxGelu(str(node.attributes.get("approximate", "none"))), node)


def _convert_reduce(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    keepdims, noop = node.attributes.get("keepdims", 1), node.attributes.get("noop_with_empty_axes", 0)
    return result(OnnxReduceAxesInput(node.operation_type, keepdims, noop), node)


def _reshape_converter(allowzero_0: Converter) -> Converter:
    """`allowzero=1` gets `OnnxReshapeAllowZero`; `allowzero=0` keeps onnx2torch's own converter (the
    Reshape versions 14, 19 and 21 differ only in the tensor types they accept)."""

    def convert(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
        if node.attributes.get("allowzero", 0) == 1:
            return result(OnnxReshapeAllowZero(), node)
        return allowzero_0(node, graph)

    return convert


class OnnxConvGeneral(nn.Module, OnnxToTorchModule):
    """ONNX `Conv` where onnx2torch's converter does not apply: `SAME_*` padding at any stride (pads are
    computed from each call's input length, as the spec defines them), or weights computed in the graph
    (a `DequantizeLinear` of int8 weights in QDQ exports) rather than stored as an initializer."""

    def __init__(self, attributes: dict) -> None:
        super().__init__()
        self.attributes = attributes

    def forward(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        return conv_nd(x, w, b, self.attributes)


def _conv_converter(original: Converter) -> Converter:
    def convert(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
        mode = str(node.attributes.get("auto_pad", "NOTSET"))
        computed = any(name and name not in graph.initializers for name in node.input_values[1:])
        if mode.startswith("SAME") or computed:
            return result(OnnxConvGeneral(dict(node.attributes)), node)
        return original(node, graph)

    return convert


def _override(op_type: str, version: int, converter: Converter) -> None:
    """Replace onnx2torch's own converter (its registry has no public override)."""
    registry._CONVERTER_REGISTRY[registry.OperationDescription("", op_type, version)] = converter


def register() -> None:
    """Register the extra converters once (idempotent, thread-safe)."""
    global _REGISTERED
    with _LOCK:
        if _REGISTERED:
            return
        table: dict[tuple[str, int], Converter] = {("Gelu", 20): _convert_gelu}
        for op_type in _REDUCTIONS:
            table[(op_type, 18)] = _convert_reduce
        table[("ReduceMax", 20)] = table[("ReduceMin", 20)] = _convert_reduce
        # onnx2torch's Reshape-14 converter raises NotImplementedError for allowzero=1; wrap it in place
        # and add versions 19 and 21 through add_converter.
        original = registry._CONVERTER_REGISTRY[registry.OperationDescription("", "Reshape", 14)]
        _override("Reshape", 14, _reshape_converter(original))
        table[("Reshape", 19)] = table[("Reshape", 21)] = _reshape_converter(original)
        for version in (1, 11):
            _override("Conv", version, _conv_converter(
                registry._CONVERTER_REGISTRY[registry.OperationDescription("", "Conv", version)]))
        table.update(onnx_recent.converters())
        table.update(quantized.converters())
        for (op_type, version), (converter, replaces) in bpda.converters().items():
            if replaces:
                _override(op_type, version, converter)
            else:
                table[(op_type, version)] = converter
        for (op_type, version), converter in table.items():
            try:
                add_converter(operation_type=op_type, version=version)(converter)
            except ValueError:  # a later onnx2torch ships its own: keep that one
                pass
        _REGISTERED = True


# ---- graph rewrites ------------------------------------------------------------------------------

def rewrite_for_conversion(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return the graph onnx2torch should convert (provably equivalent rewrites only; input untouched)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    if out.ir_version >= 4:  # from IR 4 an initializer need not also be a graph input
        _constants_to_initializers(graph)
        _fold_identity_of_initializers(graph)
    _explicit_same_pads(graph)
    return out


def _constants_to_initializers(graph: onnx.GraphProto) -> None:
    """`y = Constant(value=T)` -> initializer `y` holding T.

    Equivalence: a Constant node's output is, by the spec, the tensor T on every run, independent of
    any input; an initializer named `y` (not a graph input, IR >= 4) is that same tensor under the same
    name, so every consumer reads identical data. Graph outputs are left alone (onnx2torch needs them
    produced by a node). Weight slots (Conv, Gemm, norms) then see an initializer, as onnx2torch needs.
    """
    outputs = {o.name for o in graph.output}
    keep: list[onnx.NodeProto] = []
    for node in graph.node:
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and set(attrs) == {"value"} \
                and node.output[0] not in outputs:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(attrs["value"].t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            keep.append(node)
    _replace_nodes(graph, keep)


def _fold_identity_of_initializers(graph: onnx.GraphProto) -> None:
    """`y = Identity(w)`, `w` an initializer -> initializer `y`, a copy of `w` (node removed).

    Equivalence: Identity returns its input unchanged, and `w` is a constant, so `y` equals `w` on every
    run; an initializer `y` holding a copy of `w` is that same tensor. This undoes the legacy exporter's
    de-duplication of equal initializers, after which onnx2torch's Conv/Gemm/norm converters (which read
    weights from initializers) would fail. Chains fold because nodes are visited in topological order.
    """
    outputs = {o.name for o in graph.output}
    overridable = {i.name for i in graph.input}  # an initializer that is also an input is only a default
    inits = {t.name: t for t in graph.initializer if t.name not in overridable}
    keep: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type == "Identity" and node.domain in ("", "ai.onnx") and node.input[0] in inits \
                and node.output[0] not in outputs and node.output[0] not in inits:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(inits[node.input[0]])
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
            inits[tensor.name] = tensor
        else:
            keep.append(node)
    _replace_nodes(graph, keep)


def _explicit_same_pads(graph: onnx.GraphProto) -> None:
    """`Conv(auto_pad=SAME_UPPER|SAME_LOWER)` at stride 1 -> `Conv(pads=...)` with the same pads.

    Equivalence: the spec pads each spatial axis by total = (out - 1) * stride + (k - 1) * dilation + 1
    - in, with out = ceil(in / stride); at stride 1 that is (k - 1) * dilation whatever the input length.
    SAME_UPPER puts total // 2 at the start and the rest at the end, SAME_LOWER the reverse. Explicit
    pads with those values compute the same convolution. Strided SAME convs (pads depend on the input
    length) are left as they are, and fail conversion by name.
    """
    inits = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type != "Conv" or node.domain not in ("", "ai.onnx"):
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        mode = attrs.get("auto_pad", b"NOTSET")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        if mode not in ("SAME_UPPER", "SAME_LOWER"):
            continue
        kernel: list[int] | None = attrs.get("kernel_shape")
        if kernel is None and node.input[1] in inits:
            kernel = list(inits[node.input[1]].dims[2:])
        if not kernel:
            continue
        rank = len(kernel)
        strides = attrs.get("strides", [1] * rank)
        dilations = attrs.get("dilations", [1] * rank)
        if any(s != 1 for s in strides):
            continue
        totals = [(k - 1) * d for k, d in zip(kernel, dilations, strict=True)]
        small = [t // 2 for t in totals]
        large = [t - t // 2 for t in totals]
        pads = small + large if mode == "SAME_UPPER" else large + small
        kept = [a for a in node.attribute if a.name not in ("auto_pad", "pads")]
        del node.attribute[:]
        node.attribute.extend(kept + [onnx.helper.make_attribute("pads", pads)])


def _replace_nodes(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> None:
    if len(nodes) != len(graph.node):
        kept = [onnx.NodeProto.FromString(n.SerializeToString()) for n in nodes]
        del graph.node[:]
        graph.node.extend(kept)

