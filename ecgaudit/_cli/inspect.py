"""`ecgaudit inspect MODEL [--data D] [--json]`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

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
from ecgaudit.defaults import LABEL_MAP_HELP

HELP = "Show a model's contract, runtime and surrogate parity; with --data, its clean accuracy."


def inspect(
    model: ModelArg,
    data: Annotated[
        str | None, typer.Option("--data", help="WFDB record/folder, PTB-XL root, .npz, or builtin:synthetic.")
    ] = None,
    n_records: Annotated[int | None, typer.Option("--n-records", min=1, help="Read at most this many records.")] = None,
    label_map: Annotated[str | None, typer.Option("--label-map", help=LABEL_MAP_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of tables.")] = False,
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
    from ecgaudit.data.labels import label_map_for

    codes_to_classes = label_map_for(label_map)  # a bad map file is exit 2 before the model loads
    adapter = open_model(
        model,
        card,
        card_overrides(fs, n_samples, leads, layout, classes, output, task),
        timeout_s=model_timeout,
        max_bytes=max_model_bytes,
        device=device,
        threads=threads,
        data=[data],
    )
    from ecgaudit.data import load_dataset
    from ecgaudit.inspection import inspect_model

    dataset = None
    if data is not None:
        c = adapter.card
        dataset = load_dataset(data, fs=c.fs, n_samples=c.n_samples, leads=c.leads, n_records=n_records,
                               label_map=codes_to_classes)
    result = inspect_model(adapter, dataset)
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return
    _render(result, Console())


def _render(result: dict[str, Any], console: Console) -> None:
    model, contract = result["model"], result["contract"]
    runtime = model["runtime"]
    ident = Table(title=f"Model {Path(model['path']).name}", show_header=False, title_justify="left")
    ident.add_column(style="bold")
    ident.add_column()
    ident.add_row("format", model["format"])
    ident.add_row("sha256", model["sha256"])
    ident.add_row("runtime", f"{runtime['runtime']} {runtime['version']} (gradients: {runtime['surrogate']})")
    if "opset" in runtime:
        ident.add_row("opset / producer", f"{runtime['opset']} / {runtime.get('producer') or '?'}")
    ident.add_row("parameters", f"{runtime['n_parameters']:,}")
    ident.add_row("batch axis", "dynamic" if model["fixed_batch"] is None else f"fixed at {model['fixed_batch']}")
    parity = result["parity_max_abs_diff"]
    ident.add_row(
        "parity",
        f"max |runtime - surrogate| = {parity:.2e} on {result['parity_records']} records ({result['parity_source']})"
        if parity is not None else f"not measured: {model['surrogate_error']}",
    )
    bpda = f" (straight-through for {', '.join(model['bpda_ops'])})" if model["bpda_ops"] else ""
    why_none = f": {model['surrogate_error']}" if model["surrogate_error"] and parity is not None else ""
    ident.add_row("gradients", (", ".join(model["gradient_modes"]) or "none") + bpda + why_none)
    for finding in model["findings"]:
        ident.add_row("finding", finding)
    console.print(ident)

    card = Table(title="Contract (model card)", show_header=False, title_justify="left")
    card.add_column(style="bold")
    card.add_column()
    card.add_row(
        "input",
        f"{len(contract['leads'])} leads x {contract['n_samples']} samples at {contract['fs']:g} Hz "
        f"({contract['n_samples'] / contract['fs']:g} s), layout {contract['layout']}",
    )
    card.add_row("leads", ", ".join(contract["leads"]))
    card.add_row("scaling", json.dumps(contract["scaling"]))
    steps = contract.get("preprocessing") or []
    card.add_row("preprocessing", "; ".join(json.dumps(s) for s in steps) if steps else "none")
    card.add_row("classes", ", ".join(contract["classes"]))
    for extra in contract.get("inputs", []):
        card.add_row(f"input {extra['name']}", f"{extra['shape']} held at {extra['value']} ({extra['why']})")
    card.add_row(
        "output", f"{contract['task']}, {contract['output']}"
        + (f" (thresholds {contract['thresholds']})" if "thresholds" in contract else ""),
    )
    console.print(card)

    data = result.get("data")
    if data is None:
        return
    clean = data["clean"]
    summary = (
        f"{data['n_records']} records from {data['source']} at {data['fs']:g} Hz; "
        f"manifest {data['manifest_sha256'][:16]}…"
    )
    if "accuracy" in clean:
        acc = clean["accuracy"]
        summary += (
            f"\nclean accuracy {acc['value']:.1%} (95% CI {acc['ci95'][0]:.1%}–{acc['ci95'][1]:.1%}, n={acc['total']})"
        )
    if "macro_auc" in clean:
        summary += f"\nmacro-AUC {clean['macro_auc']:.3f}"
    console.print(summary)
    counts = Table(title="Per-class counts", title_justify="left")
    counts.add_column("class")
    if "true_counts" in clean:
        counts.add_column("true", justify="right")
    counts.add_column("predicted", justify="right")
    for name, n_pred in clean["predicted_counts"].items():
        row = [name] + ([str(clean["true_counts"][name])] if "true_counts" in clean else []) + [str(n_pred)]
        counts.add_row(*row)
    console.print(counts)
    if data["quality_issues"]:
        console.print(
            f"[yellow]{len(data['quality_issues'])} lead quality issue(s):[/] "
            + ", ".join(f"{q['record']}/{q['lead']} {q['kind']}" for q in data["quality_issues"][:10])
        )
