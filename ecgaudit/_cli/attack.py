"""`ecgaudit attack MODEL --attack NAME [--data D] [--out DIR] [--transfer-to M ...] [--seed N]`."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ecgaudit._cli._model_options import (
    CardOpt,
    ClassesOpt,
    DeviceOpt,
    FsOpt,
    LayoutOpt,
    LeadsOpt,
    MaxBytesOpt,
    ModelArg,
    OutputOpt,
    SamplesOpt,
    TaskOpt,
    ThreadsOpt,
    TimeoutOpt,
    card_overrides,
    open_model,
)
from ecgaudit._cli._progress import reporter, wide_console
from ecgaudit.attacks import ATTACKS
from ecgaudit.defaults import DATA_HELP, DEFAULT_DATA
from ecgaudit.distributed import is_writer
from ecgaudit.errors import AttackError
from ecgaudit.evidence import ATTACK_JSON, is_attack_entry, reserve_output, write_folder
from ecgaudit.folders import check_creatable
from ecgaudit.io import json_bytes, npy_bytes
from ecgaudit.render.console import attack_summary

HELP = "Run one attack; write DIR/attack.json (metrics with 95% intervals) and DIR/perturbation.npy."


AttackName = StrEnum("AttackName", {name.replace("-", "_"): name for name in ATTACKS})  # type: ignore[misc]
"""The `--attack` choices: the registry's names."""


def parse_params(items: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values are read as JSON (numbers, lists, true/false), else kept as text."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise AttackError(f"--param '{item}' is not key=value (e.g. --param epochs=5).")
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw
    return params


def attack(
    model: ModelArg,
    name: Annotated[AttackName, typer.Option("--attack", help="Which attack to run.", case_sensitive=False)],
    data: Annotated[str, typer.Option("--data", help=DATA_HELP)] = DEFAULT_DATA,
    out: Annotated[Path, typer.Option("--out", help="Output folder (replaced whole; it may hold only an earlier "
                                      "attack run's files).")] = Path("ecgaudit-attack"),
    transfer_to: Annotated[
        list[Path] | None,
        typer.Option("--transfer-to", help="Also measure the perturbation on this model (repeatable)."),
    ] = None,
    transfer_data: Annotated[
        list[str] | None, typer.Option("--transfer-data", help="Also measure it on this dataset (repeatable).")
    ] = None,
    seed: Annotated[int, typer.Option(
        "--seed", min=0, max=2**32 - 1, help="Seed for splits, random starts and minibatch order.")] = 0,
    n_craft: Annotated[int, typer.Option("--n-craft", min=1, help="Records to craft on.")] = 200,
    n_eval: Annotated[int, typer.Option("--n-eval", min=1, help="Records to evaluate on (disjoint).")] = 200,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param", help="Attack parameter key=value (repeatable), e.g. epochs=5, eps_mv=0.1, cutoff_hz=10."
        ),
    ] = None,
    sweep: Annotated[
        bool, typer.Option("--sweep", help="SCAR only: also sweep the V2–V6 amplitude (0.02–0.60 mV).")
    ] = False,
    threat_model: Annotated[
        list[str] | None,
        typer.Option("--threat-model", help="Run under this threat model (repeatable): white-box, bpda, transfer, "
                     "black-box (default: white-box and, for non-differentiable models, bpda)."),
    ] = None,
    surrogate: Annotated[
        list[str] | None,
        typer.Option("--surrogate", help="Reference model for --threat-model transfer (repeatable; default "
                     "builtin:cnn)."),
    ] = None,
    queries: Annotated[
        int | None,
        typer.Option("--queries", min=3, help="Black-box query budget: in all for universal attacks, per record for "
                     "per-record ones."),
    ] = None,
    export_augmentation: Annotated[
        Path | None,
        typer.Option("--export-augmentation", help="Also write the adversarial version of every record of --data "
                     "to DIR/augmentation.npz (ecgaudit's npz format, with labels) and its provenance to "
                     "DIR/augmentation.json, for adversarial training."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
    card: CardOpt = None,
    fs: FsOpt = None,
    n_samples: SamplesOpt = None,
    leads: LeadsOpt = None,
    layout: LayoutOpt = None,
    classes: ClassesOpt = None,
    output: OutputOpt = None,
    task: TaskOpt = None,
    model_timeout: TimeoutOpt = None,
    max_model_bytes: MaxBytesOpt = None,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = None,
) -> None:
    writer = is_writer()  # under torchrun every rank computes its share of the model work; rank 0 writes
    if export_augmentation is not None:  # a file there, or above it, or a read-only place: exit 2 before any work
        check_creatable(export_augmentation, f"--export-augmentation {export_augmentation}")
    # Before any model work: a bad --out is exit 2 now, and one run at a time per folder.
    with reserve_output(out, is_entry=_entries(out, export_augmentation), kind="attack run") if writer \
            else nullcontext():
        adapter = open_model(model, card, card_overrides(fs, n_samples, leads, layout, classes, output, task),
                             timeout_s=model_timeout, max_bytes=max_model_bytes, device=device, threads=threads,
                             data=[data, *(transfer_data or ())])
        from ecgaudit.models import load_model
        from ecgaudit.plan import plan_attack
        from ecgaudit.scan import attack_document, attack_files, execute
        from ecgaudit.sensitivity import DEFAULT_CHEST_MV

        targets = [load_model(path, device=adapter.device, threads=threads) for path in transfer_to or []]
        plan = plan_attack(
            adapter, name.value, params=parse_params(param or []), data=data, n_craft=n_craft, n_eval=n_eval,
            seed=seed, transfer_models=targets, transfer_data=tuple(transfer_data or ()),
            sweep_chest_mv=DEFAULT_CHEST_MV if sweep else (),
            threat_models=tuple(threat_model or ("white-box", "bpda")), surrogates=tuple(surrogate or ("builtin:cnn",)),
            queries=queries,
        )
        with reporter(enabled=not quiet and writer) as progress:
            result = execute(plan, progress)
        document = attack_document(result)
        if writer:
            # The whole folder at once: no perturbation of an earlier run can outlive it beside this attack.json.
            files = {name: npy_bytes(v) for name, v in attack_files(result).items()}
            write_folder(out, {**files, ATTACK_JSON: json_bytes(document)})
            wide_console().print(attack_summary(document, out), highlight=False)
        if export_augmentation is not None:
            from ecgaudit.augmentation import build_augmentation, write_augmentation
            from ecgaudit.scan import load_for

            planned = plan.attacks[0]
            with reporter(enabled=not quiet and writer) as progress:
                augmentation = build_augmentation(
                    planned.attack, adapter, load_for(adapter, plan.data_spec),
                    perturbation=result.perturbations.get(planned.id), seed=seed, data_spec=plan.data_spec,
                    reporter=progress)
            if not writer:
                return
            npz_path, _ = write_augmentation(augmentation, export_augmentation)
            rate = augmentation.provenance["fooling_rate_on_runtime"]["value"]
            wide_console().print(f"augmentation: {npz_path} ({len(augmentation.arrays['X'])} adversarial records; "
                                 f"{rate:.1%} of them change the model's decision)", highlight=False)


def _entries(out: Path, export_augmentation: Path | None) -> Callable[[str], bool]:
    """An earlier attack run's files, and the --export-augmentation folder when it lies inside --out."""
    inside = None
    if export_augmentation is not None and export_augmentation.resolve().is_relative_to(out.resolve()):
        parts = export_augmentation.resolve().relative_to(out.resolve()).parts
        inside = parts[0] if parts else None
    return lambda name: is_attack_entry(name) or name == inside
