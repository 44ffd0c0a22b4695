"""Model adapters: `load_model(path)` returns a `ModelAdapter` for ONNX or TorchScript files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ecgaudit.card import METADATA_KEY, ModelCard, card_file, parse_card, read_card_file, sidecar_paths
from ecgaudit.errors import CardError, ModelError
from ecgaudit.io import loads_json
from ecgaudit.models.budget import relative_budget
from ecgaudit.models.device import resolve_device
from ecgaudit.models.interface import ModelAdapter
from ecgaudit.models.probe import probe

ONNX_SUFFIXES = (".onnx",)
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")

__all__ = ["ModelAdapter", "load_model", "relative_budget", "resolve_card"]


CARD_FLAGS = "--fs, --n-samples, --leads, --layout, --classes, --task and --output-kind"


def resolve_card(
    model_path: Path,
    *,
    embedded_json: str | None = None,
    card_path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ModelCard:
    """Merge card sources, later winning field by field: ONNX metadata, the card file (`card_path`, else
    `<stem>.card.json` or `<file name>.card.json` beside the model), CLI flags."""
    merged: dict[str, Any] = {}
    sources: list[str] = []
    if embedded_json is not None:
        try:
            embedded = loads_json(embedded_json.encode(), f"the card in {model_path.name}'s metadata_props", CardError)
        except json.JSONDecodeError as exc:
            raise CardError(f"the card in {model_path.name}'s metadata_props is not valid JSON ({exc}).") from exc
        if not isinstance(embedded, dict):
            raise CardError(f"the card in {model_path.name}'s metadata_props must be a JSON object.")
        merged.update(embedded)
        sources.append("ONNX metadata_props")
    tried = sidecar_paths(model_path)
    file_path = card_file(model_path, card_path)
    if file_path is not None:
        merged.update(read_card_file(file_path))
        sources.append(str(file_path))
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    if flags:
        merged.update(flags)
        sources.append("command-line flags")
    looked = " and ".join(str(path) for path in tried)
    if not sources:
        raise CardError(
            f"no model card for {model_path.name}: looked for {looked} and the ONNX metadata key "
            f"'{METADATA_KEY}'; write one of those files, pass --card FILE, or give {CARD_FLAGS} on the "
            "command line."
        )
    source = " + ".join(sources)
    if file_path is not None:
        return parse_card(merged, source=source)
    try:
        return parse_card(merged, source=f"{source}; no card file at {looked}")
    except CardError as exc:
        raise CardError(
            f"{str(exc).rstrip('.')}; write one of those card files, pass --card FILE, or give the missing "
            "field on the command line."
        ) from exc


def load_model(
    path: Path | str,
    *,
    card_path: Path | None = None,
    card_overrides: Mapping[str, Any] | None = None,
    max_bytes: int | None = None,
    timeout_s: float | None = None,
    device: str | torch.device = "cpu",
    threads: int | None = None,
) -> ModelAdapter:
    """Open a vendor model, resolve its card, and probe it on realistic ECGs so a broken contract fails here.

    An ONNX graph that cannot be converted to torch still loads, runtime-only: `surrogate_error` says why
    and `gradient_modes` is empty. `device` (`cpu`, `cuda`, `cuda:N`) holds the surrogate, a TorchScript
    runtime and, when this onnxruntime has its CUDA provider, the ONNX runtime; `threads` caps onnxruntime's
    intra-op threads (torch's are process-wide: `torch.set_num_threads`).
    """
    path = Path(path)
    where = resolve_device(device)
    if path.is_dir():
        raise ModelError(f"model {path} is a folder; give the model file itself (ONNX or TorchScript).")
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist.")
    suffix = path.suffix.lower()
    adapter: ModelAdapter
    if suffix in ONNX_SUFFIXES:
        from ecgaudit.models.onnx import DEFAULT_MAX_BYTES, OnnxAdapter, card_metadata, read_onnx

        proto = read_onnx(path, max_bytes=max_bytes or DEFAULT_MAX_BYTES)
        card = resolve_card(path, embedded_json=card_metadata(proto), card_path=card_path, overrides=card_overrides)
        adapter = OnnxAdapter(path, card, proto, device=where, threads=threads)
    elif suffix in TORCHSCRIPT_SUFFIXES:
        from ecgaudit.models.torchscript import TorchScriptAdapter

        card = resolve_card(path, card_path=card_path, overrides=card_overrides)
        adapter = TorchScriptAdapter(path, card, device=where)
    else:
        raise ModelError(
            f"{path.name}: unknown model format '{suffix}'; give an ONNX (.onnx) or TorchScript (.pt) file."
        )
    adapter.timeout_s = timeout_s
    probe(adapter)
    from ecgaudit.distributed import shard_model

    return shard_model(adapter)  # under torchrun: the model's work shared out over the ranks
