"""Train and export the example model zoo from a seed: `python examples/build_zoo.py [--out DIR]`.

Four models, each exported as ONNX (legacy exporter, opset 17, dynamic batch) and TorchScript,
with a card beside each pair:
- `cnn`       plain 1-D CNN, 500 Hz x 10 s, logits, mV as-is          (the paper's source model)
- `resnet`    1-D ResNet, 500 Hz x 10 s, logits, per-lead standardisation
- `convvit`   Conv-ViT, 500 Hz x 10 s, softmax output, affine scaling
- `cnn-ml100` multi-label CNN, 100 Hz x 10 s, sigmoid output, layout NTC, vendor 0.5-40 Hz band-pass
All are trained on `builtin:synthetic` (training seeds differ from the default evaluation seed).

Three more, built only when named with `--only`: the `cnn` architecture adversarially trained with the library's
own attacks (the SCAR paper's §5), `cnn-pgdat` (PGD-AT), `cnn-scarat` (SCAR-AT) and `cnn-hybridat` (Hybrid-AT);
see `RECIPES` and examples/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zoo_models  # noqa: E402

from ecgaudit.attacks import PGD, SCAR, build_attack  # noqa: E402
from ecgaudit.card import METADATA_KEY, ModelCard, parse_card  # noqa: E402
from ecgaudit.constraints import default_eps_mv  # noqa: E402
from ecgaudit.data.interface import SUPERCLASSES  # noqa: E402
from ecgaudit.data.synthetic import generate_synthetic  # noqa: E402
from ecgaudit.leads import STANDARD_LEADS  # noqa: E402
from ecgaudit.models.interface import ModelAdapter, prepare_input  # noqa: E402

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


class _TrainingAdapter(ModelAdapter):
    """The network being trained, behind ecgaudit's adapter interface, so the library's own attacks run on it.

    There is no file yet to hash or a vendor runtime to compare with: both paths are the network itself.
    """

    format = "training"

    def __init__(self, net: nn.Module, card: ModelCard) -> None:
        # No file to hash yet: the digest is left empty.
        super().__init__(Path("<in training>"), card, sha256="")
        self.net = net

    def _runtime_forward(self, inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net(torch.from_numpy(inputs)).numpy()

    def _surrogate_forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs)

    def runtime_info(self) -> dict:
        return {"runtime": "torch (in training)"}


Adversary = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""Given an augmented batch (mV) and its labels, the perturbed batch to train on instead."""


@dataclass
class AttackTraining:
    """Adversarial inputs per batch from the library's attacks, crafted with the network in eval mode.

    `pgd` alone (PGD-AT): every record of the batch gets its own PGD perturbation (Madry). `scar`: the second half
    of each batch gets the current universal SCAR perturbation, crafted afresh every `refresh_batches` batches on
    `n_craft` training records drawn at random (Shafahi et al.'s universal adversarial training, with the
    library's SCAR as the inner attack); the first half stays clean (SCAR-AT) or gets PGD (Hybrid-AT).

    Why never v on the whole batch: one v added to every record is a constant that train-mode batch norm partly
    subtracts and writes into its running statistics, which then misread clean records (a trial on x + v only
    reached 89% held-out clean accuracy, 100% once the statistics were re-estimated on clean records).
    """

    adapter: _TrainingAdapter
    pgd: PGD | None
    scar: SCAR | None
    x_pool: torch.Tensor
    y_pool: torch.Tensor
    generator: torch.Generator
    refresh_batches: int = 8
    n_craft: int = 256
    v: torch.Tensor | None = None
    batches: int = 0

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        net = self.adapter.net
        net.eval()  # the attacks see the network as it would be deployed (running batch-norm statistics)
        split = len(xb) // 2 if self.scar is not None else len(xb)
        out = xb.clone()
        if self.pgd is not None:
            out[:split] += self.pgd.perturb(self.adapter, xb[:split], yb[:split], generator=self.generator)
        if self.scar is not None:
            if self.v is None or self.batches % self.refresh_batches == 0:
                pick = torch.randperm(len(self.x_pool), generator=self.generator)[: self.n_craft]
                crafted = self.scar.craft(self.adapter, self.x_pool[pick], self.y_pool[pick], generator=self.generator)
                self.v = self.scar.constraint.project(crafted.perturbation.detach())
            out[split:] += self.v
        self.batches += 1
        net.train()
        return out.detach()


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, multilabel: bool, epochs: int, seed: int,
          adversary: Adversary | None = None) -> None:
    """Adam on the model-ready inputs; small random time shifts and gains as augmentation.

    With an `adversary`, each augmented batch is replaced by the inputs it returns (adversarial training).
    """
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
            yb = y[idx]
            if adversary is not None:
                xb = adversary(xb, yb)
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
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


@dataclass(frozen=True)
class Recipe:
    """One adversarially trained variant of the bundled CNN. Attack parameters go to `build_attack`."""

    pgd: dict | None
    scar: dict | None
    epochs: int
    refresh_batches: int = 8
    n_craft: int = 256


SCAR_BOX_MV = list(default_eps_mv(STANDARD_LEADS))
"""The samd profile's SCAR / uap-deepfool amplitude box: 0.1 mV limb leads and V1, 0.2 mV V2–V6."""

_PGD = {"eps_mv": SCAR_BOX_MV, "steps": 3}
_SCAR = {"epochs": 2, "batch_size": 32}
RECIPES = {
    "cnn-pgdat": Recipe(pgd=_PGD, scar=None, epochs=10),
    "cnn-scarat": Recipe(pgd=None, scar=_SCAR, epochs=10),
    "cnn-hybridat": Recipe(pgd=_PGD, scar=_SCAR, epochs=10),
}


def build(name: str, out: Path, epochs: int) -> None:
    """Train `name` (a zoo model, or one of `RECIPES` for `epochs` if given) and export it into `out`."""
    recipe = RECIPES.get(name)
    torch.manual_seed(0)
    multilabel = name == "cnn-ml100"
    fs, n_samples = (100.0, 1000) if multilabel else (500.0, 5000)
    card = base_card(name, fs, n_samples)
    x_mv, y_idx = generate_synthetic(N_TRAIN, fs, n_samples, TRAIN_SEED)
    if name == "cnn" or recipe is not None:
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
    adversary = None
    if recipe is not None:
        epochs = epochs or recipe.epochs
        adversary = _adversary(recipe, net, parsed, x, y)
    started, cpu_started = time.perf_counter(), time.process_time()
    train(net, x, y, multilabel=multilabel, epochs=epochs, seed=1, adversary=adversary)
    # CPU seconds over threads approximate the wall time on an otherwise idle machine with that many cores.
    print(f"  trained {name} in {time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu_started:.0f} s "
          f"CPU on {torch.get_num_threads()} threads", flush=True)
    if name == "convvit":
        card["output"] = "softmax"
        net = _Softmax(net)
    if multilabel:
        net = _WithSigmoid(net)
    export(net, card, out, name, x[:2])


def _adversary(recipe: Recipe, net: nn.Module, card: ModelCard, x: torch.Tensor, y: torch.Tensor) -> AttackTraining:
    # The attacks take mV; these recipes train the mV-as-is CNN, whose model-ready input is mV.
    assert card.scaling["kind"] == "none" and not card.preprocessing and card.layout == "NCT"
    attacks = {
        kind: build_attack(kind, fs=card.fs, leads=card.leads, params=params)
        for kind, params in (("pgd", recipe.pgd), ("scar", recipe.scar)) if params is not None
    }
    return AttackTraining(
        _TrainingAdapter(net, card), attacks.get("pgd"), attacks.get("scar"),  # type: ignore[arg-type]
        x_pool=x, y_pool=y, generator=torch.Generator().manual_seed(2),
        refresh_batches=recipe.refresh_batches, n_craft=recipe.n_craft,
    )


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
    parser.add_argument("--at-epochs", type=int, default=None,
                        help="override the adversarial recipes' own epoch counts (for quick trials)")
    parser.add_argument("--only", nargs="*", default=["cnn", "resnet", "convvit", "cnn-ml100"],
                        help=f"models to build; the adversarially trained ones are {', '.join(RECIPES)}")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_flush_denormal(True)
    np.random.seed(0)
    for name in args.only:
        print(f"building {name}", flush=True)
        build(name, args.out, args.at_epochs if name in RECIPES else args.epochs)


if __name__ == "__main__":
    main()
