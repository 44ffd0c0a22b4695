"""Model adapters: `load_model(path)` returns a `ModelAdapter` for ONNX or TorchScript files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ecgaudit.card import ModelCard, parse_card, read_card_file, sidecar_path
from ecgaudit.errors import CardError, ModelError
from ecgaudit.io import loads_json
from ecgaudit.models.interface import ModelAdapter

ONNX_SUFFIXES = (".onnx",)
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")

__all__ = ["ModelAdapter", "load_model", "resolve_card"]


def resolve_card(
    model_path: Path,
    *,
    embedded_json: str | None = None,
    card_path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ModelCard:
    """Merge card sources, later winning field by field: ONNX metadata, sidecar (or `card_path`), CLI flags."""
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
    file_path = card_path or sidecar_path(model_path)
    if card_path is not None or file_path.exists():
        merged.update(read_card_file(file_path))
        sources.append(str(file_path))
    if overrides:
        merged.update({k: v for k, v in overrides.items() if v is not None})
        sources.append("command-line flags")
    if not sources:
        raise CardError(
            f"no model card for {model_path.name}: write {sidecar_path(model_path).name} beside it, pass --card, "
            "or give --fs/--n-samples/--leads/--layout/--classes/--output on the command line."
        )
    return parse_card(merged, source=" + ".join(sources))


def load_model(
    path: Path | str,
    *,
    card_path: Path | None = None,
    card_overrides: Mapping[str, Any] | None = None,
    max_bytes: int | None = None,
    timeout_s: float | None = None,
) -> ModelAdapter:
    """Open a vendor model, resolve its card, and probe it once so a broken contract fails here."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist.")
    suffix = path.suffix.lower()
    adapter: ModelAdapter
    if suffix in ONNX_SUFFIXES:
        from ecgaudit.models.onnx import DEFAULT_MAX_BYTES, OnnxAdapter, card_metadata, read_onnx

        proto = read_onnx(path, max_bytes=max_bytes or DEFAULT_MAX_BYTES)
        card = resolve_card(path, embedded_json=card_metadata(proto), card_path=card_path, overrides=card_overrides)
        adapter = OnnxAdapter(path, card, proto)
    elif suffix in TORCHSCRIPT_SUFFIXES:
        from ecgaudit.models.torchscript import TorchScriptAdapter

        card = resolve_card(path, card_path=card_path, overrides=card_overrides)
        adapter = TorchScriptAdapter(path, card)
    else:
        raise ModelError(
            f"{path.name}: unknown model format '{suffix}'; give an ONNX (.onnx) or TorchScript (.pt) file."
        )
    adapter.timeout_s = timeout_s
    probe = np.zeros((adapter.fixed_batch or 2, len(card.leads), card.n_samples), dtype=np.float32)
    adapter.raw_predict(probe)
    return adapter
