"""`ecgaudit scan MODEL --profile P`: the full battery, the gate, the report and the exit code."""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
from ecgaudit.defaults import DATA_HELP, DEFAULT_DATA, LABEL_MAP_HELP
from ecgaudit.distributed import agree_on_exit_code, is_writer
from ecgaudit.errors import ExitCode, ReportError
from ecgaudit.evidence import Bundle, reserve_output, write_bundle
from ecgaudit.io import read_json_object
from ecgaudit.profiles import Profile, load_profile
from ecgaudit.render.console import summary, verdict_line
from ecgaudit.render.markdown import render_markdown
from ecgaudit.report.signing import load_private_key, signing_key_path

if TYPE_CHECKING:
    from ecgaudit.scan import ScanResult

HELP = (
    "Run a profile's whole battery under every threat model and gate on it; write the report folder DIR: "
    "report.json, report.pdf, samples.npz, perturbations/*.npy and, with --key, the signed report.dsse.json. The "
    "folder is built beside DIR and swapped in whole when complete, so an earlier report stays intact until then; "
    "a second scan on the same DIR is refused while one runs.\n\n"
    "Exit codes: 0 every gate rule passed; 1 a gate rule failed; 2 bad usage or input; 3 internal failure; "
    "4 inconclusive (an attack-failure indicator fired; never a pass)."
)


def _one_line(value: str | None) -> str | None:
    """A document field: one line of printable text (it is printed in the PDF's page header)."""
    if value is not None and (not value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value)
                              or len(value) > 500):
        raise typer.BadParameter("must be one line of printable text (at most 500 characters).")
    return value


def document_fields(profile: Profile, **flags: str | None) -> dict[str, str]:
    """The report's `document`: the profile's `[document]` table with the scan's flags over it (set fields only)."""
    fields = {str(k): str(v) for k, v in (profile.data.get("document") or {}).items()}
    fields.update({k: v for k, v in flags.items() if v})
    return fields


def read_baseline(path: Path) -> dict[str, Any]:
    data = read_json_object(path, "baseline report", ReportError)
    if "gate" not in data or "profile" not in data:
        raise ReportError(f"baseline report {path} is not an ecgaudit scan report.")
    return data


def scan(
    model: ModelArg,
    profile: Annotated[str, typer.Option("--profile", help="Built-in profile name (samd, ci, paper) or a .toml path.")
                       ] = "samd",
    data: Annotated[str, typer.Option("--data", help=DATA_HELP)] = DEFAULT_DATA,
    label_map: Annotated[str | None, typer.Option("--label-map", help=LABEL_MAP_HELP)] = None,
    out: Annotated[Path, typer.Option("--out", help="Report folder (replaced whole; it may hold only an earlier "
                                      "report).")] = Path("ecgaudit-report"),
    transfer_to: Annotated[list[Path] | None, typer.Option("--transfer-to", help="Measure the profile's universal "
                                                          "perturbations on this model too (repeatable).")] = None,
    seed: Annotated[int | None, typer.Option(
        "--seed", min=0, max=2**32 - 1, help="Override the profile's seed.")] = None,
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
    document_id: Annotated[str | None, typer.Option("--document-id", callback=_one_line, help="Document id on the "
                                                    "PDF and in the report (overrides the profile's [document]).")
                           ] = None,
    revision: Annotated[str | None, typer.Option("--revision", callback=_one_line, help="Document revision.")] = None,
    prepared_by: Annotated[str | None, typer.Option("--prepared-by", callback=_one_line, help="Who prepared the "
                                                    "report (name, role), for the PDF's sign-off.")] = None,
    reviewed_by: Annotated[str | None, typer.Option("--reviewed-by", callback=_one_line, help="Who reviews it, for "
                                                    "the PDF's sign-off.")] = None,
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
) -> int:
    # Before anything expensive: a bad --out or --junit-xml is exit 2 now, and one scan at a time per folder.
    # Under torchrun only rank 0 touches the folder; the other ranks compute their share and write nothing.
    writer = is_writer()
    with reserve_output(out, junit_xml) if writer else nullcontext():
        chosen = load_profile(profile)
        old = read_baseline(baseline) if baseline is not None else None
        if old is not None and old["profile"].get("name") != chosen.name:
            raise ReportError(
                f"the baseline report {baseline} is from profile '{old['profile'].get('name')}', not "
                f"'{chosen.name}'; compare reports of the same profile."
            )
        from ecgaudit.data.labels import label_map_for

        codes_to_classes = label_map_for(label_map)  # a bad map file is exit 2 before the model loads
        key_path = signing_key_path(key)
        private_key = load_private_key(key_path, allow_insecure=allow_insecure_key) if key_path and writer else None
        adapter = open_model(model, card, card_overrides(fs, n_samples, leads, layout, classes, output, task),
                             timeout_s=model_timeout, max_bytes=max_model_bytes, device=device, threads=threads,
                             data=[data])
        from ecgaudit.models import load_model
        from ecgaudit.plan import ScanConfig
        from ecgaudit.scan import run_scan

        targets = [load_model(path, device=adapter.device, threads=threads) for path in transfer_to or []]
        config = ScanConfig(model=adapter, profile=chosen, data=data, seed=seed, transfer_models=targets,
                            baseline=old, surrogates=tuple(surrogate or ()), label_map=codes_to_classes)
        with reporter(enabled=not quiet and writer) as progress:
            result = run_scan(config, progress)
        document = document_fields(chosen, id=document_id, revision=revision, prepared_by=prepared_by,
                                   reviewed_by=reviewed_by)
        if document:
            result.report["document"] = document

        def write() -> int:
            with reporter(enabled=not quiet) as progress:  # the PDF and the checks take seconds: say what runs
                done = progress.task("writing the report, its PDF and the signed bundle", 1)
                bundle = write_bundle(result, out, key=private_key, junit=junit_xml or False,
                                      export_wfdb=export_wfdb_samples)
                done(1, 1)
            code = {"PASS": ExitCode.OK, "FAIL": ExitCode.GATE_FAILED}.get(result.verdict, ExitCode.INCONCLUSIVE)
            print_outcome(bundle, result, as_json=as_json, quiet=quiet, code=code)
            return code

        return agree_on_exit_code(write)


EXIT_MEANINGS = {
    ExitCode.OK: "every gate rule passed",
    ExitCode.GATE_FAILED: "a gate rule failed (the table above and the report say which); CI should fail the job",
    ExitCode.INCONCLUSIVE: "INCONCLUSIVE: every rule passed, but an attack-failure indicator fired, so robustness "
                           "could not be measured reliably; never a pass, CI should fail the job",
}


def written_paths(bundle: Bundle) -> list[Path]:
    """Every file the scan wrote: the signed subjects but the model (which it only read), the envelope, and a JUnit
    file outside the folder."""
    files = [bundle.out_dir / name for name in list(bundle.subjects)[1:]]
    return files + [path for path in (bundle.envelope_path, bundle.junit_path)
                    if path is not None and path.resolve() not in {f.resolve() for f in files}]


def written_summary(bundle: Bundle) -> str:
    """`written_paths` for the console: the folder's top-level files, each subfolder with its file count, and
    what lies outside the folder."""
    out = bundle.out_dir.resolve()
    inside: dict[str, int] = {}
    outside = []
    for path in written_paths(bundle):
        if not path.resolve().is_relative_to(out):
            outside.append(str(path))
            continue
        top, sep, _ = path.resolve().relative_to(out).as_posix().partition("/")
        inside[top + sep] = inside.get(top + sep, 0) + 1
    names = [f"{name} ({n} files)" if name.endswith("/") else name for name, n in inside.items()]
    return f"in {bundle.out_dir}/: {', '.join(names)}" + "".join(f"; and {path}" for path in outside)


def print_outcome(bundle: Bundle, result: ScanResult, *, as_json: bool, quiet: bool, code: int) -> None:
    """The step summary, the UNSIGNED notice, then the summary: JSON, a table, or (with --quiet) one line; after
    the table, every file written and what the exit code means."""
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        try:
            with open(step_summary, "ab") as handle:
                handle.write(render_markdown(bundle.report))
        except OSError as exc:  # the report is written and the verdict stands: CI must still get both
            wide_console(stderr=True).print(
                f"[bold yellow]warning:[/] the markdown summary could not be appended to GITHUB_STEP_SUMMARY "
                f"({step_summary}: {exc.strerror}); the report itself was written.", highlight=False, soft_wrap=True)
    if bundle.key_fingerprint is None:
        wide_console(stderr=True).print(
            "[bold yellow]UNSIGNED:[/] the report carries no signature; pass --key (see `ecgaudit keygen`) "
            "so a reviewer can verify it.", highlight=False, soft_wrap=True)
    if as_json:
        document = summary_document(result, bundle.report_path)
        document["files"] = [str(path) for path in written_paths(bundle)]
        document["exit_code"] = int(code)
        print(json.dumps(document, indent=2, sort_keys=True))
    elif quiet:
        print(verdict_line(bundle.report, bundle.report_path))
    else:
        console = wide_console()
        console.print(summary(bundle.report), highlight=False)
        console.print(f"wrote {bundle.report_path}; {written_summary(bundle)}", highlight=False, soft_wrap=True)
        console.print(f"exit code {int(code)}: {EXIT_MEANINGS[code]}.", highlight=False, soft_wrap=True)


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
                     "ssim": a["metrics"]["ssim"], "worst_case": (a.get("worst_case") or {}).get("threat_model"),
                     "noise_floor": a.get("noise_floor")} for a in report["attacks"]],
        "rules": [{k: r[k] for k in ("id", "kind", "passed", "value", "bound", "op", "threshold", "message")}
                  for r in report["gate"]["rules"]],
        "inconclusive": report["gate"].get("inconclusive", []),
        "data_shortfall": ((report["data"].get("hygiene") or {}).get("shortfall") or {}).get("short", False),
    }
