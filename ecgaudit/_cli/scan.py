"""`ecgaudit scan MODEL --profile P`: the full battery, the gate, the report and the exit code."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
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
    TimeoutOpt,
    card_overrides,
    open_model,
)
from ecgaudit._cli._progress import RichReporter
from ecgaudit.errors import ExitCode, ReportError
from ecgaudit.export import export_wfdb
from ecgaudit.io import atomic_write_bytes, json_bytes, npy_bytes, npz_bytes, read_json_object
from ecgaudit.models import load_model
from ecgaudit.profiles import load_profile
from ecgaudit.render.junit import render_junit
from ecgaudit.render.markdown import render_markdown
from ecgaudit.report import validate_report
from ecgaudit.scan import ScanConfig, ScanResult, run_scan
from ecgaudit.signing import fingerprint, load_private_key, sign_envelope, signing_key_path, statement

HELP = (
    "Run a profile's whole battery under every threat model and gate on it; write DIR/report.json and "
    "DIR/perturbations/*.npy.\n\n"
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
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("ecgaudit-report"),
    transfer_to: Annotated[list[Path] | None, typer.Option("--transfer-to", help="Measure the profile's universal "
                                                          "perturbations on this model too (repeatable).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Override the profile's seed.")] = None,
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
    model_timeout: TimeoutOpt = None,
    max_model_bytes: MaxBytesOpt = None,
) -> int:
    chosen = load_profile(profile)
    old = read_baseline(baseline) if baseline is not None else None
    if old is not None and old["profile"].get("name") != chosen.name:
        raise ReportError(
            f"the baseline report {baseline} is from profile '{old['profile'].get('name')}', not '{chosen.name}'; "
            "compare reports of the same profile."
        )
    key_path = signing_key_path(key)
    private_key = load_private_key(key_path, allow_insecure=allow_insecure_key) if key_path else None
    adapter = open_model(model, card, card_overrides(fs, n_samples, leads, layout, classes, output),
                         timeout_s=model_timeout, max_bytes=max_model_bytes)
    targets = [load_model(path) for path in transfer_to or []]
    report_path = out / "report.json"
    # An earlier run's report must not survive a run that dies: it would look like this run's result.
    for stale in (report_path, out / "report.pdf", out / "report.dsse.json", junit_xml):
        if stale is not None:
            stale.unlink(missing_ok=True)
    config = ScanConfig(model=adapter, profile=chosen, data=data, seed=seed, transfer_models=targets, baseline=old)
    with RichReporter(enabled=not quiet and not as_json) as reporter:
        result = run_scan(config, reporter)
    write_outputs(result, out, junit_xml, adapter.path, private_key, export_wfdb_samples)
    summary_console = Console(stderr=as_json)
    if private_key is None:
        Console(stderr=True).print(
            "[bold yellow]UNSIGNED:[/] the report carries no signature; pass --key (see `ecgaudit keygen`) "
            "so a reviewer can verify it.", highlight=False)
    if as_json:
        print(json.dumps(summary_document(result, report_path), indent=2, sort_keys=True))
    elif not quiet:
        render_summary(result.report, summary_console)
        summary_console.print(f"wrote {report_path}")
    return {"PASS": ExitCode.OK, "FAIL": ExitCode.GATE_FAILED}.get(result.verdict, ExitCode.INCONCLUSIVE)


def write_outputs(
    result: ScanResult, out: Path, junit_xml: Path | None, model_path: Path,
    private_key: Ed25519PrivateKey | None = None, export_wfdb_samples: bool = False,
) -> None:
    """Write every artefact, then report.json last: it appears only when all it refers to is on disk."""
    report = result.report
    artifacts = []
    for attack_id, v in result.perturbations.items():
        digest = atomic_write_bytes(out / "perturbations" / f"{attack_id}.npy", npy_bytes(v))
        artifacts.append({"path": f"perturbations/{attack_id}.npy", "sha256": digest})
    samples_sha = atomic_write_bytes(out / "samples.npz", npz_bytes(result.samples))
    report["samples"] = {"path": "samples.npz", "sha256": samples_sha,
                         "record_ids": [str(r) for r in result.samples["record_ids"]]}
    artifacts.append({"path": "samples.npz", "sha256": samples_sha})
    if export_wfdb_samples:
        written = export_wfdb(result.samples, out / "wfdb", [a["id"] for a in report["attacks"]])
        artifacts += [{"path": path, "sha256": digest} for path, digest in written]
    report["artifacts"] = artifacts
    fingerprint_hex = fingerprint(private_key.public_key()) if private_key else None
    report["signing"] = {"signed": private_key is not None, "key_fingerprint": fingerprint_hex}
    validate_report(report, what="report this scan produced")
    from ecgaudit.render.pdf import render_pdf  # reportlab is slow to import; only scans that finish need it

    report_bytes = json_bytes(report)
    report_sha = hashlib.sha256(report_bytes).hexdigest()
    pdf_sha = atomic_write_bytes(
        out / "report.pdf", render_pdf(report, out, report_sha256=report_sha, key_fingerprint=fingerprint_hex)
    )
    if junit_xml is not None:
        atomic_write_bytes(junit_xml, render_junit(report))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(render_markdown(report))
    if private_key is not None:
        subjects = {model_path.name: report["model"]["sha256"], "report.json": report_sha, "report.pdf": pdf_sha}
        atomic_write_bytes(out / "report.dsse.json", sign_envelope(statement(subjects, report), private_key))
    else:
        (out / "report.dsse.json").unlink(missing_ok=True)
    atomic_write_bytes(out / "report.json", report_bytes)


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
