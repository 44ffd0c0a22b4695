"""`ecgaudit scan MODEL --profile P`: the full battery, the gate, the report and the exit code."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ecgaudit._cli._model_options import (
    CardOpt,
    ClassesOpt,
    FsOpt,
    LayoutOpt,
    LeadsOpt,
    MaxBytesOpt,
    ModelArg,
    OutputOpt,
    SamplesOpt,
    TaskOpt,
    TimeoutOpt,
    card_overrides,
    open_model,
)
from ecgaudit._cli._progress import RichReporter
from ecgaudit.errors import ExitCode, ReportError
from ecgaudit.evidence import Bundle, reserve_output, write_bundle
from ecgaudit.io import read_json_object
from ecgaudit.models import load_model
from ecgaudit.profiles import load_profile
from ecgaudit.render.markdown import render_markdown
from ecgaudit.report.signing import load_private_key, signing_key_path
from ecgaudit.scan import ScanConfig, ScanResult, run_scan

HELP = (
    "Run a profile's whole battery under every threat model and gate on it; write the report folder DIR: "
    "report.json, report.pdf, samples.npz, perturbations/*.npy and, with --key, the signed report.dsse.json. The "
    "folder is built beside DIR and swapped in whole when complete, so an earlier report stays intact until then; "
    "a second scan on the same DIR is refused while one runs.\n\n"
    "Exit codes: 0 every gate rule passed; 1 a gate rule failed; 2 bad usage or input; 3 internal failure; "
    "4 inconclusive (an attack-failure indicator fired; never a pass)."
)


def read_baseline(path: Path) -> dict[str, Any]:
    data = read_json_object(path, "baseline report", ReportError)
    if "gate" not in data or "profile" not in data:
        raise ReportError(f"baseline report {path} is not an ecgaudit scan report.")
    return data


def scan(
    model: ModelArg,
    profile: Annotated[str, typer.Option("--profile", help="Built-in profile name (samd, ci, paper) or a .toml path.")
                       ] = "samd",
    data: Annotated[str, typer.Option("--data", help="WFDB record/folder, PTB-XL root, .npz or builtin:synthetic "
                                      "(at the model's fs).")] = "builtin:synthetic",
    out: Annotated[Path, typer.Option("--out", help="Report folder (replaced whole; it may hold only an earlier "
                                      "report).")] = Path("ecgaudit-report"),
    transfer_to: Annotated[list[Path] | None, typer.Option("--transfer-to", help="Measure the profile's universal "
                                                          "perturbations on this model too (repeatable).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Override the profile's seed.")] = None,
    surrogate: Annotated[list[str] | None, typer.Option("--surrogate", help="A reference model for the transfer "
                                                        "threat model (repeatable), beside the profile's "
                                                        "(builtin:cnn by default): e.g. your own float model.")
                         ] = None,
    junit_xml: Annotated[Path | None, typer.Option("--junit-xml", help="Write JUnit XML, one case per rule.")] = None,
    baseline: Annotated[Path | None, typer.Option("--baseline", help="An earlier report of the same profile; a "
                                                  "metric worse by more than the tolerance fails.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout (nothing else).")
                       ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars and no summary table.")] = False,
    key: Annotated[Path | None, typer.Option("--key", help="Ed25519 private key (PEM) to sign the report with "
                                             "(default: $ECGAUDIT_SIGNING_KEY).")] = None,
    allow_insecure_key: Annotated[bool, typer.Option("--allow-insecure-key", help="Accept a private key file that "
                                                     "group or others can read.")] = False,
    export_wfdb_samples: Annotated[bool, typer.Option("--export-wfdb", help="Also write the kept eval records, "
                                                      "attacked, as WFDB records under DIR/wfdb/.")] = False,
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
) -> int:
    # Before anything expensive: a bad --out or --junit-xml is exit 2 now, and one scan at a time per folder.
    with reserve_output(out, junit_xml):
        chosen = load_profile(profile)
        old = read_baseline(baseline) if baseline is not None else None
        if old is not None and old["profile"].get("name") != chosen.name:
            raise ReportError(
                f"the baseline report {baseline} is from profile '{old['profile'].get('name')}', not "
                f"'{chosen.name}'; compare reports of the same profile."
            )
        key_path = signing_key_path(key)
        private_key = load_private_key(key_path, allow_insecure=allow_insecure_key) if key_path else None
        adapter = open_model(model, card, card_overrides(fs, n_samples, leads, layout, classes, output, task),
                             timeout_s=model_timeout, max_bytes=max_model_bytes)
        targets = [load_model(path) for path in transfer_to or []]
        config = ScanConfig(model=adapter, profile=chosen, data=data, seed=seed, transfer_models=targets,
                            baseline=old, surrogates=tuple(surrogate or ()))
        with RichReporter(enabled=not quiet and not as_json) as reporter:
            result = run_scan(config, reporter)
        bundle = write_bundle(result, out, key=private_key, junit=junit_xml or False,
                              export_wfdb=export_wfdb_samples)
    print_outcome(bundle, result, as_json=as_json, quiet=quiet)
    return {"PASS": ExitCode.OK, "FAIL": ExitCode.GATE_FAILED}.get(result.verdict, ExitCode.INCONCLUSIVE)


def print_outcome(bundle: Bundle, result: ScanResult, *, as_json: bool, quiet: bool) -> None:
    """The step summary, the UNSIGNED notice, then the summary: JSON, a table, or (with --quiet) one line."""
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(render_markdown(bundle.report))
    if bundle.key_fingerprint is None:
        Console(stderr=True).print(
            "[bold yellow]UNSIGNED:[/] the report carries no signature; pass --key (see `ecgaudit keygen`) "
            "so a reviewer can verify it.", highlight=False, soft_wrap=True)
    if as_json:
        print(json.dumps(summary_document(result, bundle.report_path), indent=2, sort_keys=True))
    elif quiet:
        print(verdict_line(bundle.report, bundle.report_path))
    else:
        summary_console = Console()
        render_summary(bundle.report, summary_console)
        summary_console.print(f"wrote {bundle.report_path}", highlight=False, soft_wrap=True)


def verdict_line(report: dict[str, Any], report_path: Path) -> str:
    """One line for logs: the verdict, the failing rules by id, and where the report is."""
    rules = report["gate"]["rules"]
    failed = [r["id"] for r in rules if not r["passed"]]
    fired = [i["id"] + (f" ({i['attack']})" if i.get("attack") else "") for i in report.get("indicators", [])
             if i["status"] == "fired"]
    detail = (f"{len(failed)} of {len(rules)} gate rules failed ({', '.join(failed)})" if failed
              else f"all {len(rules)} gate rules passed")
    if fired:
        detail += f"; attack-failure indicator(s) fired: {', '.join(fired)}"
    return f"verdict: {report['gate']['verdict']}: {detail}; report {report_path}"


def summary_document(result: ScanResult, report_path: Path) -> dict[str, Any]:
    report = result.report
    return {
        "verdict": report["gate"]["verdict"],
        "report": str(report_path),
        "model_sha256": report["model"]["sha256"],
        "profile": {"name": report["profile"]["name"], "sha256": report["profile"]["sha256"]},
        "clean_accuracy": report["clean"].get("accuracy"),
        "attacks": [{"id": a["id"], "fooling_rate": a["metrics"]["fooling_rate"],
                     "robust_accuracy": a["metrics"].get("robust_accuracy"), "snr_db": a["metrics"]["snr_db"],
                     "ssim": a["metrics"]["ssim"]} for a in report["attacks"]],
        "rules": [{k: r[k] for k in ("id", "kind", "passed", "value", "bound", "op", "threshold", "message")}
                  for r in report["gate"]["rules"]],
        "inconclusive": report["gate"].get("inconclusive", []),
    }


def _rate(entry: Any) -> str:
    if not isinstance(entry, dict) or entry.get("value") is None:
        return "—"
    return f"{entry['value']:.1%} [{entry['ci95'][0]:.1%}–{entry['ci95'][1]:.1%}]"


def render_summary(report: dict[str, Any], console: Console) -> None:
    clean = report["clean"].get("accuracy")
    console.print(f"[bold]{Path(report['model']['path']).name}[/] under profile [bold]{report['profile']['name']}"
                  f"[/] {report['profile']['version']}: clean accuracy {_rate(clean)} on "
                  f"{report['data']['splits']['n_eval']} eval records")
    attacks = Table(title="Attacks (measured on the model's own runtime)", title_justify="left")
    for column in ("attack [threat model]", "fooling rate [95% CI]", "robust accuracy", "noise floor", "SNR dB",
                   "SSIM", "top target"):
        attacks.add_column(column)
    for a in report["attacks"]:
        m = a["metrics"]
        mis = m["misdiagnosis"]
        top = f"{mis['top_target']} {mis['top_target_share']:.0%}" if mis["n_changed"] else "—"
        floor = a.get("noise_floor")
        floor_text = f"{floor['mean']:.1%} (max {floor['max']['value']:.1%})" if floor else "—"
        attacks.add_row(f"[bold]{a['id']}[/] worst case: {a.get('worst_case', {}).get('threat_model', '')}",
                        _rate(m["fooling_rate"]), _rate(m.get("robust_accuracy")), floor_text, f"{m['snr_db']:.1f}",
                        f"{m['ssim']:.3f}", top)
        for tm in a.get("threat_models", []):
            if "metrics" in tm:
                tmm = tm["metrics"]
                attacks.add_row(f"  {tm['threat_model']}", _rate(tmm["fooling_rate"]),
                                _rate(tmm.get("robust_accuracy")), "", f"{tmm['snr_db']:.1f}", f"{tmm['ssim']:.3f}", "")
            else:
                attacks.add_row(f"  {tm['threat_model']}", f"not run: {tm['status']}", "", "", "", "", "")
        for variant, vm in a.get("variants", {}).items():
            attacks.add_row(f"  {variant}", _rate(vm["fooling_rate"]), _rate(vm.get("robust_accuracy")), "",
                            f"{vm['snr_db']:.1f}", f"{vm['ssim']:.3f}", "")
    for t in report["transfer"]:
        m = t["metrics"]
        attacks.add_row(f"{t['attack']} → {Path(t['model']).name}", _rate(m["fooling_rate"]),
                        _rate(m.get("robust_accuracy")), "", f"{m['snr_db']:.1f}", f"{m['ssim']:.3f}", "")
    console.print(attacks)
    if report.get("sweep"):
        sweep = Table(title=f"Amplitude sweep ({report['sweep']['attack']}, V2–V6)", title_justify="left")
        for column in ("ε V2–V6 mV", "fooling rate", "SSIM"):
            sweep.add_column(column)
        for p in report["sweep"]["points"]:
            sweep.add_row(f"{p['chest_eps_mv']:.2f}", _rate(p["fooling_rate"]), f"{p['ssim']:.3f}")
        console.print(sweep)
    gate = Table(title="Gate", title_justify="left")
    for column in ("rule", "verdict", "detail"):
        gate.add_column(column)
    for r in report["gate"]["rules"]:
        gate.add_row(r["id"], "[green]pass[/]" if r["passed"] else "[bold red]FAIL[/]", r["message"])
    console.print(gate)
    indicators = report.get("indicators") or []
    if indicators:
        table = Table(title="Attack-failure indicators", title_justify="left")
        for column in ("indicator", "status", "finding"):
            table.add_column(column)
        style = {"fired": "[bold red]FIRED[/]", "passed": "[green]ok[/]", "not-applicable": "n/a"}
        for i in indicators:
            if i["status"] != "not-applicable":
                table.add_row(i["id"] + (f" ({i['attack']})" if i.get("attack") else ""), style[i["status"]],
                              i["summary"])
        console.print(table)
    verdict = report["gate"]["verdict"]
    colour = {"PASS": "bold green", "FAIL": "bold red"}.get(verdict, "bold yellow")
    console.print(f"verdict: [{colour}]{verdict}[/]")
    for sentence in report["gate"].get("inconclusive", []):
        console.print(f"  inconclusive: {sentence}", highlight=False)
