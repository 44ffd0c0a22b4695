"""Train and export the example model zoo from a seed: `python examples/build_zoo.py [--out DIR]`.

Four models, each exported as ONNX (legacy exporter, opset 17, dynamic batch) and TorchScript,
with a card beside each pair:
- `cnn`       plain 1-D CNN, 500 Hz x 10 s, logits, mV as-is          (the paper's source model)
- `resnet`    1-D ResNet, 500 Hz x 10 s, logits, per-lead standardisation
- `convvit`   Conv-ViT, 500 Hz x 10 s, softmax output, affine scaling
- `cnn-ml100` multi-label CNN, 100 Hz x 10 s, sigmoid output, layout NTC, vendor 0.5-40 Hz band-pass
All are trained on `builtin:synthetic` (training seeds differ from the default evaluation seed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zoo_models  # noqa: E402

from ecgaudit.card import METADATA_KEY, parse_card  # noqa: E402
from ecgaudit.data.interface import SUPERCLASSES  # noqa: E402
from ecgaudit.data.synthetic import generate_synthetic  # noqa: E402
from ecgaudit.leads import STANDARD_LEADS  # noqa: E402
from ecgaudit.models.interface import prepare_input  # noqa: E402

TRAIN_SEED, VAL_SEED = 11, 12
N_TRAIN, N_VAL = 2000, 400


class _TimeMajor(nn.Module):
    """A vendor model that takes (N, T, C): transposes, then runs the wrapped NCT network."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.transpose(1, 2))


class _Softmax(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.inner(x), dim=1)


def base_card(name: str, fs: float, n_samples: int) -> dict:
    return {
        "name": name,
        "fs": fs,
        "n_samples": n_samples,
        "leads": list(STANDARD_LEADS),
        "layout": "NCT",
        "scaling": {"kind": "none"},
        "preprocessing": [],
        "classes": list(SUPERCLASSES),
        "output": "logits",
    }


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, multilabel: bool, epochs: int, seed: int) -> None:
    """Adam on the model-ready inputs; small random time shifts and gains as augmentation."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * ((len(x) + 63) // 64))
    loss_fn = nn.BCEWithLogitsLoss() if multilabel else nn.CrossEntropyLoss()
    time_axis = x.ndim - 1 if x.shape[-1] > x.shape[-2] else 1
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for start in range(0, len(x), 64):
            idx = order[start : start + 64]
            xb = x[idx]
            shift = int(torch.randint(0, xb.shape[time_axis] // 10, (1,), generator=gen))
            xb = torch.roll(xb, shifts=shift, dims=time_axis)
            xb = xb * (0.9 + 0.2 * torch.rand(len(xb), 1, 1, generator=gen))
            opt.zero_grad()
            loss = loss_fn(net(xb), y[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"    epoch {epoch + 1}/{epochs} loss {total / len(x):.4f}", flush=True)
    net.eval()


def export(net: nn.Module, card: dict, out: Path, name: str, example: torch.Tensor) -> None:
    import onnx

    net.eval()
    onnx_path = out / f"{name}.onnx"
    torch.onnx.export(
        net, (example,), str(onnx_path), dynamo=False, opset_version=17, input_names=["ecg"],
        output_names=["scores"], dynamic_axes={"ecg": {0: "batch"}, "scores": {0: "batch"}},
    )
    proto = onnx.load(str(onnx_path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(card, sort_keys=True)
    onnx.save(proto, str(onnx_path))
    with torch.no_grad():
        traced = torch.jit.trace(net, example)
    traced.save(str(out / f"{name}.pt"))
    (out / f"{name}.card.json").write_text(json.dumps(card, indent=2) + "\n")


def build(name: str, out: Path, epochs: int) -> None:
    torch.manual_seed(0)
    multilabel = name == "cnn-ml100"
    fs, n_samples = (100.0, 1000) if multilabel else (500.0, 5000)
    card = base_card(name, fs, n_samples)
    x_mv, y_idx = generate_synthetic(N_TRAIN, fs, n_samples, TRAIN_SEED)
    if name == "cnn":
        net: nn.Module = zoo_models.PlainCNN()
    elif name == "resnet":
        card["scaling"] = {
            "kind": "standardize",
            "mean": [round(float(v), 5) for v in x_mv.mean(axis=(0, 2))],
            "std": [round(float(v), 5) for v in x_mv.std(axis=(0, 2))],
        }
        net = zoo_models.ResNet1d()
    elif name == "convvit":
        card["scaling"] = {"kind": "affine", "scale": 2.0, "offset": 0.0}
        net = zoo_models.ConvViT()
    else:
        card.update(layout="NTC", output="sigmoid", thresholds=0.5,
                    preprocessing=[{"kind": "bandpass", "low_hz": 0.5, "high_hz": 40.0, "order": 2}])
        net = _TimeMajor(zoo_models.PlainCNN())
    parsed = parse_card(card, source=name)
    with torch.no_grad():
        x = prepare_input(parsed, torch.from_numpy(x_mv))
    y = torch.nn.functional.one_hot(torch.from_numpy(y_idx), 5).float() if multilabel else torch.from_numpy(y_idx)
    started = time.perf_counter()
    train(net, x, y, multilabel=multilabel, epochs=epochs, seed=1)
    print(f"  trained {name} in {time.perf_counter() - started:.0f} s", flush=True)
    if name == "convvit":
        card["output"] = "softmax"
        net = _Softmax(net)
    if multilabel:
        net = _WithSigmoid(net)
    export(net, card, out, name, x[:2])


class _WithSigmoid(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.inner(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "models")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--only", nargs="*", default=["cnn", "resnet", "convvit", "cnn-ml100"])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_flush_denormal(True)
    np.random.seed(0)
    for name in args.only:
        print(f"building {name}", flush=True)
        build(name, args.out, args.epochs)


if __name__ == "__main__":
    main()
