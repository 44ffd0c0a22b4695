"""Evidence commands: `keygen`, `verify`, `render`, `schema report`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ecgaudit.errors import ExitCode, OutputError, ReportError, VerificationError
from ecgaudit.evidence import render_report_pdf
from ecgaudit.folders import check_creatable
from ecgaudit.io import MAX_REPORT_BYTES, atomic_write_bytes, read_bounded, read_json_object
from ecgaudit.report.schema import report_schema, validate_report
from ecgaudit.report.signing import keygen
from ecgaudit.report.verification import verify_bundle

console = Console()


def keygen_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for the key pair.")] = Path("."),
) -> None:
    """Write an Ed25519 key pair (PEM): ecgaudit-signing.pem (mode 0600) and ecgaudit-signing.pub.pem."""
    check_creatable(out, f"--out {out}")  # a file there or above it, or a read-only place: exit 2
    private, public = keygen(out)
    console.print(f"wrote private key {private} (mode 600; keep it secret) and public key {public}")


def verify_command(
    envelope: Annotated[Path, typer.Argument(help="The report.dsse.json envelope (or, with --reproduce and no "
                                             "--key, a report.json).")],
    key: Annotated[Path | None, typer.Option("--key", help="The signer's public key (PEM).")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="The model file the report claims to audit.")] = None,
    report_dir: Annotated[Path | None, typer.Option("--report-dir", help="Folder holding the report's files "
                                                    "(default: the envelope's folder).")] = None,
    skip: Annotated[list[str] | None, typer.Option("--skip", help="A subject not to check (repeatable), e.g. "
                                                   "wfdb/x.dat; the output says loudly that it was not checked.")
                    ] = None,
    reproduce: Annotated[bool, typer.Option("--reproduce", help="Rerun the scan the report describes on --model "
                                            "(and --data) and report every metric that drifted.")] = False,
    data: Annotated[str | None, typer.Option("--data", help="With --reproduce: the data the scan used "
                                             "(default: the report's source, e.g. builtin:synthetic).")] = None,
    transfer_to: Annotated[list[Path] | None, typer.Option("--transfer-to", help="With --reproduce: the transfer "
                                                          "models, to compare their rates too.")] = None,
) -> int:
    """Check the signature, the statement and every file it signs (the model too); exit 0 if all hold, else 1.

    Every subject must be present and match its signed digest; a missing one fails unless named in --skip.
    With --reproduce, also rerun the scan and exit 1 if any metric drifted. Bad usage or unreadable input: exit 2.
    """
    if report_dir is not None and not report_dir.is_dir():
        raise typer.BadParameter(f"{report_dir} is not a folder; give the folder that holds the report's files.",
                                 param_hint="--report-dir")
    err = Console(stderr=True)
    report: dict | None = None
    skipped: list[str] = []
    if key is not None:
        try:
            verification = verify_bundle(envelope, key, model=model, report_dir=report_dir, skip=skip or [])
        except VerificationError as exc:
            err.print(f"[bold red]verification failed:[/] {exc}", highlight=False, soft_wrap=True)
            return exc.exit_code
        for line in verification.held:
            console.print(f"[green]✓[/] {line}", highlight=False, soft_wrap=True)
        for name in verification.skipped:
            err.print(f"[bold yellow]NOT CHECKED (--skip):[/] {name}: the evidence is incomplete without it",
                      highlight=False, soft_wrap=True)
        for name in verification.unsigned_files[:20]:
            err.print(f"[yellow]note:[/] {name} is in the folder but not signed: it is not part of the evidence",
                      highlight=False, soft_wrap=True)
        if verification.failures:
            for line in verification.failures:
                err.print(f"[bold red]✗[/] {line}", highlight=False, soft_wrap=True)
            err.print(f"[bold red]verification failed:[/] {len(verification.failures)} check(s) did not hold.",
                      highlight=False)
            return VerificationError.exit_code
        report, skipped = verification.report, verification.skipped
    elif skip:
        raise typer.BadParameter("--skip needs --key: it names subjects of a signed statement.", param_hint="--skip")
    elif not reproduce:
        raise typer.BadParameter("--key is required (the signer's public key), unless --reproduce checks an "
                                 "unsigned report.json.", param_hint="--key")
    if reproduce:
        if model is None:
            raise typer.BadParameter("--reproduce needs --model, the file that was audited.", param_hint="--model")
        if report is None:
            report = _read_report(envelope)
        from ecgaudit._cli._progress import reporter
        from ecgaudit.report.reproduce import reproduce as reproduce_report  # loads the model stack

        with reporter() as progress:  # the whole scan again: minutes under samd
            drift = reproduce_report(report, model=model, data=data, transfer_models=list(transfer_to or []),
                                     reporter=progress)
        if drift:
            err.print(f"[bold red]drift:[/] {len(drift)} quantity(ies) differ on rerun:", highlight=False)
            for line in drift[:50]:
                err.print(f"  {line}", highlight=False, soft_wrap=True)
            return ExitCode.EVIDENCE_DOES_NOT_HOLD
        console.print("[green]✓[/] reproduce: the rerun matches every metric and perturbation digest (zero drift)")
    if skipped:
        console.print(f"[bold green]verified[/], [bold yellow]EXCEPT {len(skipped)} skipped subject(s) NOT "
                      f"CHECKED: {', '.join(skipped)}[/]", highlight=False, soft_wrap=True)
    else:
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
    """Rebuild the PDF from a saved report: byte for byte the scan's own report.pdf, given the same folder."""
    if out.is_dir():
        raise OutputError(f"--out {out} is a folder; give the PDF's file path, such as {out / 'report.pdf'}.")
    check_creatable(out.parent, f"--out {out}")
    data = read_bounded(report, "report", ReportError, max_bytes=MAX_REPORT_BYTES)
    pdf = render_report_pdf(data, report.parent, what=f"report {report}")
    try:
        atomic_write_bytes(out, pdf)
    except OSError as exc:
        raise OutputError(f"--out {out} cannot be written ({exc.strerror}).") from exc
    console.print(f"wrote {out}", highlight=False, soft_wrap=True)


schema_app = typer.Typer(help="Print the JSON Schemas ecgaudit publishes.", no_args_is_help=True)


@schema_app.command("report")
def schema_report() -> None:
    """Print the report's JSON Schema (Draft 2020-12)."""
    print(json.dumps(report_schema(), indent=2))
