"""`ecgaudit reader-study make REPORT_DIR --out DIR [--key PEM]` and `ecgaudit reader-study score KEY SHEETS...`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ecgaudit.errors import ExitCode
from ecgaudit.io import atomic_write_bytes, json_bytes

app = typer.Typer(help="Blinded reader studies: can clinicians tell the forged ECGs from the clean ones?",
                  no_args_is_help=True)
console = Console()


@app.command("make")
def make(
    report_dir: Annotated[Path, typer.Argument(help="A scan's output folder (report.json, samples.npz).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for deck/ (to readers) and sealed/ (the key).")],
    key: Annotated[Path | None, typer.Option("--key", help="The scan's Ed25519 private key (PEM): sign the "
                                             "answer key.")] = None,
    attack: Annotated[list[str] | None, typer.Option("--attack", help="Only this attack's forgeries "
                                                     "(repeatable; default: every attack in the scan).")] = None,
    allow_insecure_key: Annotated[bool, typer.Option("--allow-insecure-key", help="Accept a private key file "
                                                     "that group or others can read.")] = False,
) -> None:
    """Write a blinded, shuffled deck (PDF on ECG paper + WFDB), an answer sheet and a sealed answer key."""
    from ecgaudit.clinical.reader_study import make_deck

    result = make_deck(report_dir, out, key_path=key, attacks=attack, allow_insecure_key=allow_insecure_key)
    n_forged = sum(c.forged for c in result.cases)
    console.print(f"wrote {len(result.cases)} cases ({n_forged} forged, {len(result.cases) - n_forged} clean) to "
                  f"{result.deck_dir}: deck.pdf, wfdb/, answer-sheet.csv — give this folder to the readers")
    console.print(f"wrote the answer key {result.key_path} ({'signed' if result.signed else 'NOT signed: pass --key'}"
                  "); keep it from the readers")


def _rate(entry: dict[str, Any]) -> str:
    if entry.get("value") is None or entry["total"] == 0:
        return "—"
    low, high = entry["ci95"]
    return f"{entry['value']:.0%} [{low:.0%}, {high:.0%}] ({entry['successes']}/{entry['total']})"


def _top(counts: dict[str, int], n: int = 3) -> str:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return ", ".join(f"{dx} ×{k}" for dx, k in ranked) or "—"


@app.command("score")
def score_command(
    key: Annotated[Path, typer.Argument(help="sealed/answer-key.dsse.json (or answer-key.json if unsigned).")],
    answers: Annotated[list[Path], typer.Argument(help="Filled answer sheets (CSV), one per reader.")],
    pubkey: Annotated[Path | None, typer.Option("--pubkey", help="The scan's public key (PEM), to verify a "
                                                "signed answer key.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the scores as JSON.")] = None,
) -> int:
    """Sensitivity and specificity of spotting forgeries, per reader and pooled, with 95% Wilson intervals.

    Exit 1 when a signed key does not verify.
    """
    from ecgaudit.clinical.reader_study import score
    from ecgaudit.report.signing import VerificationError

    try:
        result = score(key, answers, public_key_path=pubkey)
    except VerificationError as exc:
        Console(stderr=True).print(f"[bold red]answer key verification failed:[/] {exc}", highlight=False,
                                   soft_wrap=True)
        return ExitCode.GATE_FAILED
    k = result["key"]
    console.print(f"answer key: {k['n_cases']} cases, {k['n_forged']} forged; "
                  + (f"signature verified (key {k['keyid'][:16]}…)" if k["verified"] else
                     "[bold yellow]unsigned: its integrity is not verified[/]"), highlight=False)
    table = Table(title="Spotting forgeries", title_justify="left")
    for column in ("reader", "sensitivity (forged → yes)", "specificity (clean → no)", "unanswered",
                   "diagnoses given to forged records"):
        table.add_column(column)
    rows = [*result["readers"].items(), ("pooled", result["pooled"])]
    for name, r in rows:
        table.add_row(name, _rate(r["sensitivity"]), _rate(r["specificity"]), str(r["unanswered"]),
                      _top(r["diagnoses_on_forged"]))
    console.print(table)
    for attack, a in result["per_attack"].items():
        console.print(f"{attack}: pooled sensitivity {_rate(a['sensitivity'])}", highlight=False)
    if json_out is not None:
        atomic_write_bytes(json_out, json_bytes(result))
        console.print(f"wrote {json_out}")
    return ExitCode.OK
