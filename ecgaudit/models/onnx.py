"""ONNX models: onnxruntime judges, an `onnx2torch` conversion supplies gradients."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from google.protobuf.message import DecodeError
from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_model, uses_external_data

from ecgaudit.card import ModelCard
from ecgaudit.errors import CardError, ModelError
from ecgaudit.models.device import CPU
from ecgaudit.models.extra_inputs import check_extra_shape, ecg_input_name
from ecgaudit.models.interface import ModelAdapter

DEFAULT_MAX_BYTES = 512 * 1024 * 1024

# onnx2torch's Slice indexes with a list, which torch deprecates; the result is correct and the notice is noise.
warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing")


def _all_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a graph holds, subgraphs and sparse initializers included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for sub in attr.graphs:
                yield from _all_tensors(sub)


def _check_external_data(model: onnx.ModelProto, path: Path, budget: int) -> bool:
    """Refuse external-data references that leave the model's folder or blow the size budget.

    Returns True when the model has external data (to be loaded from the folder after this check).
    """
    folder = path.parent.resolve()
    total = 0
    found = False
    for tensor in _all_tensors(model.graph):
        if not uses_external_data(tensor):
            continue
        found = True
        location = ExternalDataInfo(tensor).location
        where = Path(location)
        target = (folder / where).resolve()
        if where.is_absolute() or ".." in where.parts or not target.is_relative_to(folder):
            raise ModelError(
                f"{path.name} refers to external data '{location}' outside the model's folder; "
                "ecgaudit reads external weights only from files beside the model."
            )
        if not target.is_file():
            raise ModelError(f"{path.name} refers to external data '{location}', which does not exist.")
        total += target.stat().st_size
        if total > budget:
            raise ModelError(f"{path.name} and its external data exceed the {budget}-byte limit for model files.")
    return found


def read_onnx(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> onnx.ModelProto:
    """Parse and check an ONNX file; any failure is a `ModelError` naming the file."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ModelError(
            f"{path.name} is {size} bytes, over the {max_bytes}-byte limit for model files (see --max-model-bytes)."
        )
    data = path.read_bytes()
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise ModelError(f"{path.name} is not a readable ONNX model (the protobuf does not parse).") from exc
    if not model.graph.node:
        raise ModelError(f"{path.name} is not an ONNX model (it holds no graph).")
    if _check_external_data(model, path, max_bytes - size):
        try:
            load_external_data_for_model(model, str(path.parent.resolve()))
        except Exception as exc:  # onnx raises ValueError/OSError variants for bad references
            raise ModelError(f"{path.name}: its external data cannot be read ({exc}).") from exc
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path.name} fails the ONNX checker: {first}") from exc
    return model


def card_metadata(model: onnx.ModelProto) -> str | None:
    """The card JSON stored in the model's `metadata_props`, if any."""
    from ecgaudit.card import METADATA_KEY

    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return prop.value
    return None


def convert_to_torch(model: onnx.ModelProto, name: str) -> torch.nn.Module:
    """Convert with onnx2torch, using our extra converters; a failure is a `SurrogateUnavailable` whose
    message is one sentence naming the operator (and the model's opset for its domain)."""
    from onnx2torch import convert

    from ecgaudit.models import onnx_converters

    onnx_converters.register()
    consequence = "so gradient attacks (white-box, BPDA) cannot run on it; only gradient-free ones can"
    try:
        module = convert(onnx_converters.rewrite_for_conversion(model))
    except NotImplementedError as exc:
        match = re.search(r"domain='([^']*)', operation_type='([^']+)', version=(\d+)", str(exc))
        if match is None:
            raise SurrogateUnavailable(
                f"{name} uses an ONNX construct that has no differentiable equivalent in ecgaudit "
                f"({str(exc).strip() or type(exc).__name__}), {consequence}."
            ) from exc
        domain, op_type = match.group(1), match.group(2)
        opset = next((o.version for o in model.opset_import if o.domain == domain
                      or (domain == "" and o.domain == "ai.onnx")), int(match.group(3)))
        where = f"{domain}." if domain not in ("", "ai.onnx") else ""
        raise SurrogateUnavailable(
            f"{name} uses the ONNX operator {where}{op_type} (opset {opset}), which has no converter to a "
            f"differentiable form, {consequence}."
        ) from exc
    except Exception as exc:  # onnx2torch raises bare errors for graphs it cannot trace
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SurrogateUnavailable(
            f"{name} could not be converted to a differentiable form ({first}), {consequence}."
        ) from exc
    return module.eval()


class SurrogateUnavailable(Exception):
    """No differentiable copy of a model could be built; the message says why in one sentence."""


_NUMPY_TYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


CUDA_PROVIDER = "CUDAExecutionProvider"


def execution_providers(device: torch.device) -> list[str | tuple[str, dict[str, Any]]]:
    """onnxruntime's providers for `device`: its CUDA provider on that GPU when this onnxruntime has one (the
    onnxruntime-gpu package), the CPU provider otherwise and as the fallback for nodes CUDA lacks."""
    if device.type == "cuda" and CUDA_PROVIDER in ort.get_available_providers():
        # TF32 off, as for the surrogate (ecgaudit.models.device): the runtime computes the vendor's float32.
        return [(CUDA_PROVIDER, {"device_id": device.index or 0, "use_tf32": 0}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxAdapter(ModelAdapter):
    format = "onnx"

    def __init__(self, path: Path, card: ModelCard, model: onnx.ModelProto, *, device: torch.device = CPU,
                 threads: int | None = None) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: onnxruntime's default (one per physical core)
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                model.SerializeToString(), sess_options=options, providers=execution_providers(device)
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelError(f"onnxruntime cannot load {path.name}: {str(exc).splitlines()[0]}") from exc
        inputs = self.session.get_inputs()
        declared = [(i.name, list(i.shape), i.type) for i in inputs]
        self.input_name = ecg_input_name(declared, card, path.name)
        ecg_shape = next(shape for name, shape, _ in declared if name == self.input_name)
        fixed_batch = _check_input_shape(ecg_shape, card, path.name)
        super().__init__(path, card, fixed_batch=fixed_batch, device=device, threads=threads)
        self.input_order = [name for name, _, _ in declared]
        for name, shape, elem in declared:
            if name != self.input_name:
                extra = next(e for e in card.extra_inputs if e.name == name)
                check_extra_shape(extra, shape, path.name)
                if elem not in _NUMPY_TYPES:
                    raise ModelError(f"{path.name}'s input '{name}' has type {elem}, which ecgaudit cannot feed.")
                self.extra_dtypes[name] = np.dtype(_NUMPY_TYPES[elem]).name
        self.opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
        self.producer = f"{model.producer_name} {model.producer_version}".strip()
        self.n_parameters = int(sum(int(np.prod(t.dims)) for t in model.graph.initializer))
        self.module: torch.nn.Module | None = None
        try:
            self.module = convert_to_torch(model, path.name)
        except SurrogateUnavailable as exc:
            self.surrogate_error = str(exc)
        else:
            self.module.to(device)
            for param in self.module.parameters():
                param.requires_grad_(False)
            self.attach_surrogate(self.module)

    def _runtime_forward(self, inputs: np.ndarray) -> np.ndarray:
        feeds = {self.input_name: inputs.astype(np.float32), **self.extra_arrays(len(inputs))}
        try:
            return self.session.run(None, feeds)[0]
        except Exception as exc:  # onnxruntime's own error types
            raise ModelError(f"onnxruntime failed to run {self.path.name}: {str(exc).splitlines()[0]}") from exc

    def _surrogate_forward(self, inputs: torch.Tensor) -> torch.Tensor:
        assert self.module is not None
        extras = {name: torch.from_numpy(array).to(inputs.device)
                  for name, array in self.extra_arrays(len(inputs)).items()}
        out = self.module(*[inputs if name == self.input_name else extras[name] for name in self.input_order])
        return out[0] if isinstance(out, (tuple, list)) else out

    def runtime_info(self) -> dict[str, Any]:
        return {
            "runtime": "onnxruntime",
            "version": ort.__version__,
            "surrogate": "onnx2torch" if self.module is not None else "none",
            "opset": self.opset,
            "producer": self.producer,
            "input_name": self.input_name,
            "n_parameters": self.n_parameters,
            "execution_providers": self.session.get_providers(),
            "intra_op_threads": self.session.get_session_options().intra_op_num_threads,
        }

    def runtime_placement(self) -> str:
        providers = self.session.get_providers()
        if CUDA_PROVIDER in providers:
            index = self.session.get_provider_options()[CUDA_PROVIDER].get("device_id", "0")
            return f"onnxruntime {CUDA_PROVIDER} on cuda:{index} (CPUExecutionProvider for nodes it lacks)"
        if self.device.type != "cuda":
            return "onnxruntime CPUExecutionProvider"
        if CUDA_PROVIDER not in ort.get_available_providers():
            return "onnxruntime CPUExecutionProvider (CUDA provider not installed: pip install onnxruntime-gpu)"
        return "onnxruntime CPUExecutionProvider (the CUDA provider is installed but failed to start on this GPU)"


def _check_input_shape(shape: list[Any], card: ModelCard, name: str) -> int | None:
    """Compare the graph's declared input shape with the card; return the fixed batch size, if any."""
    if len(shape) != 3:
        raise CardError(f"{name} takes a rank-{len(shape)} input but its card describes (N, leads, samples).")
    leads_axis, time_axis = (1, 2) if card.layout == "NCT" else (2, 1)
    for axis, expected, field in ((leads_axis, len(card.leads), "leads"), (time_axis, card.n_samples, "n_samples")):
        dim = shape[axis]
        if isinstance(dim, int) and dim != expected:
            raise CardError(
                f"{name} takes input shaped {tuple(shape)}, which contradicts its card "
                f"(field '{field}' gives {expected}, layout {card.layout})."
            )
    batch = shape[0]
    return batch if isinstance(batch, int) and batch > 0 else None
