"""Evidence commands: `keygen`, `verify`, `render`, `schema report`."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ecgaudit.errors import ExitCode, ReportError
from ecgaudit.io import atomic_write_bytes, file_sha256, read_json_object
from ecgaudit.report import report_schema, validate_report
from ecgaudit.reproduce import reproduce as reproduce_report
from ecgaudit.signing import VerificationError, keygen
from ecgaudit.verification import verify_files

console = Console()


def keygen_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for the key pair.")] = Path("."),
) -> None:
    """Write an Ed25519 key pair (PEM): ecgaudit-signing.pem (mode 0600) and ecgaudit-signing.pub.pem."""
    private, public = keygen(out)
    console.print(f"wrote private key {private} (mode 600; keep it secret) and public key {public}")


def verify_command(
    envelope: Annotated[Path, typer.Argument(help="The report.dsse.json envelope (or, with --reproduce and no "
                                             "--key, a report.json).")],
    key: Annotated[Path | None, typer.Option("--key", help="The signer's public key (PEM).")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="The model file the report claims to audit.")] = None,
    report_dir: Annotated[Path | None, typer.Option("--report-dir", help="Folder holding report.json and "
                                                    "report.pdf (default: the envelope's folder).")] = None,
    reproduce: Annotated[bool, typer.Option("--reproduce", help="Rerun the scan the report describes on --model "
                                            "(and --data) and report every metric that drifted.")] = False,
    data: Annotated[str | None, typer.Option("--data", help="With --reproduce: the data the scan used "
                                             "(default: the report's source, e.g. builtin:synthetic).")] = None,
    transfer_to: Annotated[list[Path] | None, typer.Option("--transfer-to", help="With --reproduce: the transfer "
                                                          "models, to compare their rates too.")] = None,
) -> int:
    """Check the signature, the report schema and every subject file present; exit 0 if all hold, else 1.

    With --reproduce, also rerun the scan and exit 1 if any metric drifted.
    """
    err = Console(stderr=True)
    report: dict | None = None
    if key is not None:
        try:
            lines = verify_files(envelope, key, model=model, report_dir=report_dir)
        except VerificationError as exc:
            err.print(f"[bold red]verification failed:[/] {exc}", highlight=False, soft_wrap=True)
            return ExitCode.GATE_FAILED
        for line in lines:
            console.print(f"[green]✓[/] {line}", highlight=False)
        report = json.loads(base64.b64decode(json.loads(envelope.read_bytes())["payload"]))["predicate"]
    elif not reproduce:
        raise typer.BadParameter("--key is required (the signer's public key), unless --reproduce checks an "
                                 "unsigned report.json.", param_hint="--key")
    if reproduce:
        if model is None:
            raise typer.BadParameter("--reproduce needs --model, the file that was audited.", param_hint="--model")
        if report is None:
            report = _read_report(envelope)
        drift = reproduce_report(report, model=model, data=data, transfer_models=list(transfer_to or []))
        if drift:
            err.print(f"[bold red]drift:[/] {len(drift)} quantity(ies) differ on rerun:", highlight=False)
            for line in drift[:50]:
                err.print(f"  {line}", highlight=False, soft_wrap=True)
            return ExitCode.GATE_FAILED
        console.print("[green]✓[/] reproduce: the rerun matches every metric and perturbation digest (zero drift)")
    console.print("[bold green]verified[/]")
    return ExitCode.OK


def _read_report(path: Path) -> dict:
    data = read_json_object(path, "report", ReportError)
    validate_report(data, what=f"report {path}")
    return data


def render_command(
    report: Annotated[Path, typer.Argument(help="A saved report.json (its folder holds samples and perturbations).")],
    out: Annotated[Path, typer.Option("--out", help="The PDF to write.")] = Path("report.pdf"),
) -> None:
    """Rebuild the PDF from a saved report."""
    from ecgaudit.render.pdf import render_pdf

    data = _read_report(report)
    signing = data.get("signing") or {}
    pdf = render_pdf(
        data, report.parent, report_sha256=file_sha256(report), key_fingerprint=signing.get("key_fingerprint")
    )
    atomic_write_bytes(out, pdf)
    console.print(f"wrote {out}")


schema_app = typer.Typer(help="Print the JSON Schemas ecgaudit publishes.", no_args_is_help=True)


@schema_app.command("report")
def schema_report() -> None:
    """Print the report's JSON Schema (Draft 2020-12)."""
    print(json.dumps(report_schema(), indent=2))
