"""The console summary of a scan (and of a one-attack run): rich tables a CI log and a terminal both read.

`summary(report)` gives the renderables; the CLI prints them to its console (colour on a terminal), and
`render_console(report, artifacts)` renders them as plain text bytes for the renderer interface. Every column
folds instead of cutting, so ids and digests survive a narrow or piped console whole.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from ecgaudit.render import facts
from ecgaudit.render.interface import Artifacts

PLAIN_WIDTH = 160
"""Width of the plain-text rendering (and of the CLI's console when output is not a terminal)."""
VERDICT_STYLE = {"PASS": "bold green", "FAIL": "bold red"}  # anything else (INCONCLUSIVE) is bold yellow


def rate(entry: Any) -> str:
    """'23.4% [14.7–35.1%]', or an em dash."""
    if not isinstance(entry, Mapping) or entry.get("value") is None:
        return "—"
    ci = entry.get("ci95")
    if isinstance(ci, list | tuple) and len(ci) == 2 and None not in ci:
        return f"{entry['value']:.1%} [{ci[0]:.1%}–{ci[1]:.1%}]"
    return f"{entry['value']:.1%}"


def _num(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) and not isinstance(value, bool) else "—"


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[RenderableType, ...]], *,
           wrap: tuple[int, ...] = (-1,)) -> Table:
    """A table whose figure columns are as wide as their widest cell, and whose `wrap` columns (default: the last,
    free text) wrap in the rest; text too long for any column folds onto the next line, it is never cut."""
    table = Table(title=title, title_justify="left")
    wrapping = {w % len(columns) for w in wrap}
    for k, column in enumerate(columns):
        widest = max([len(str(row[k])) for row in rows] + [len(column) if k not in wrapping else 8])
        table.add_column(column, overflow="fold", min_width=None if k in wrapping else widest,
                         ratio=1 if k in wrapping else None)
    for row in rows:
        table.add_row(*row)
    return table


def verdict_line(report: Mapping[str, Any], report_path: Path | str) -> str:
    """One line for logs: the verdict, the failing rules by id, fired indicators, and where the report is."""
    rules = facts.get(report, "gate", "rules", default=[]) or []
    failed = [str(r.get("id")) for r in facts.failing_rules(report)]
    fired = [str(i.get("id")) + (f" ({i['attack']})" if i.get("attack") else "")
             for i in facts.fired_indicators(report)]
    detail = (f"{len(failed)} of {len(rules)} gate rules failed ({', '.join(failed)})" if failed
              else f"all {len(rules)} gate rules passed")
    if fired:
        detail += f"; attack-failure indicator(s) fired: {', '.join(fired)}"
    if facts.shortfall(report):
        detail += "; RECORD SHORTFALL"
    return f"verdict: {facts.get(report, 'gate', 'verdict', default='?')}: {detail}; report {report_path}"


def _warnings(report: Mapping[str, Any]) -> list[RenderableType]:
    out: list[RenderableType] = []
    if (text := facts.synthetic_warning(report)) is not None:
        out.append(Text(f"WARNING: {text}", style="bold yellow"))
    if (text := facts.shortfall(report)) is not None:
        out.append(Text(f"WARNING: RECORD SHORTFALL. {text}", style="bold red"))
    if (text := facts.white_box_not_possible(report)) is not None:
        out.append(Text(f"NOTE: {text}", style="bold yellow"))
    return out


def _attacks(report: Mapping[str, Any]) -> Table:
    rows: list[tuple[RenderableType, ...]] = []
    for a in report.get("attacks") or []:
        m = a.get("metrics") or {}
        floor = a.get("noise_floor") or {}
        floor_text = (f"max {rate(floor.get('max'))} (mean {floor['mean']:.1%})"
                      if isinstance(floor.get("mean"), int | float) else "—")
        mis = m.get("misdiagnosis") or {}
        targets = mis.get("top_targets") or ([mis["top_target"]] if mis.get("top_target") else [])
        notes = f"worst case: {facts.get(a, 'worst_case', 'threat_model', default='—')}"
        if (harm := facts.harm_text(m)) is not None:
            notes += f"; {harm}"
        if mis.get("n_changed") and targets:
            notes += f"; top target {', '.join(map(str, targets))} {mis.get('top_target_share', 0):.0%}"
        rows.append((Text(str(a.get("id", "?")), style="bold"), rate(m.get("fooling_rate")), floor_text,
                     rate(m.get("robust_accuracy")), _num(m.get("snr_db"), ".1f"), _num(m.get("ssim"), ".3f"), notes))
        for run in facts.threat_runs(a):
            name = f"  {run.get('threat_model', '?')}"
            if run.get("status") == "ran":
                tm = run.get("metrics") or {}
                rows.append((name, rate(tm.get("fooling_rate")), "", rate(tm.get("robust_accuracy")),
                             _num(tm.get("snr_db"), ".1f"), _num(tm.get("ssim"), ".3f"),
                             "; ".join(["ran", *_run_notes(run)])))
            else:
                # Not applicable is the normal case (e.g. BPDA for a model without non-differentiable steps).
                why = "" if run.get("status") == "not-applicable" else f": {run.get('reason') or ''}"
                rows.append((Text(name, style="dim"), "", "", "", "", "",
                             Text(f"{run.get('status', '?')}{why}", style="dim")))
        for variant, vm in (a.get("variants") or {}).items():
            if isinstance(vm, Mapping):
                rows.append((f"  {variant} variant", rate(vm.get("fooling_rate")), "", rate(vm.get("robust_accuracy")),
                             _num(vm.get("snr_db"), ".1f"), _num(vm.get("ssim"), ".3f"), "not gated"))
    for t in report.get("transfer") or []:
        tm = t.get("metrics") or {}
        rows.append((f"{t.get('attack')} → {Path(str(t.get('model'))).name}", rate(tm.get("fooling_rate")), "",
                     rate(tm.get("robust_accuracy")), _num(tm.get("snr_db"), ".1f"), _num(tm.get("ssim"), ".3f"),
                     f"--transfer-to, sha256 {t.get('sha256', '')}"))
    return _table("Attacks, measured on the model's own runtime: each attack's worst case, then every threat model",
                  ("attack / threat model", "fooling rate [95% CI]", "noise floor", "robust accuracy", "SNR dB", "SSIM",
                   "notes"), rows)


def _run_notes(run: Mapping[str, Any]) -> list[str]:
    parts = []
    if run.get("query_budget") is not None:
        used = run.get("queries_used")
        parts.append(f"queries {used:,} of {run['query_budget']:,} {run.get('query_budget_unit', '')}".strip()
                     if isinstance(used, int) else f"query budget {run['query_budget']:,} "
                                                    f"{run.get('query_budget_unit', '')}".strip())
    for s in run.get("surrogates") or []:
        if isinstance(s, Mapping):
            parts.append(f"surrogate {s.get('surrogate')}: fooled {rate(s.get('fooling_rate_on_surrogate'))} "
                         "of its own records")
    start = facts.start_text(run)
    if start:
        parts.append(start)
    return parts


def _sweep(report: Mapping[str, Any]) -> Table | None:
    sweep = report.get("sweep")
    if not isinstance(sweep, Mapping):
        return None
    if sweep.get("skipped"):
        return _table("Amplitude sweep", ("skipped",), [(str(sweep["skipped"]),)])
    rows: list[tuple[RenderableType, ...]] = [
        (_num(p.get("chest_eps_mv"), ".2f"), rate(p.get("fooling_rate")), _num(p.get("ssim"), ".3f"))
        for p in sweep.get("points") or []]
    return _table(f"Amplitude sweep ({sweep.get('attack', '?')}, V2–V6, {sweep.get('threat_model') or 'white-box'})",
                  ("ε V2–V6 mV", "fooling rate", "SSIM"), rows, wrap=())


def _gate(report: Mapping[str, Any]) -> Table:
    rows: list[tuple[RenderableType, ...]] = [
        (str(r.get("id", "?")), Text("pass", style="green") if r.get("passed") else Text("FAIL", style="bold red"),
         str(r.get("message", ""))) for r in facts.get(report, "gate", "rules", default=[]) or []]
    return _table("Gate", ("rule", "verdict", "detail"), rows)


def _indicators(report: Mapping[str, Any]) -> Table | None:
    shown = [i for i in report.get("indicators") or [] if isinstance(i, Mapping)
             and i.get("status") != "not-applicable"]
    if not shown:
        return None
    shown.sort(key=lambda i: i.get("status") != "fired")
    rows: list[tuple[RenderableType, ...]] = [
        (str(i.get("id", "?")) + (f" ({i['attack']})" if i.get("attack") else ""),
         Text("FIRED", style="bold yellow") if i.get("status") == "fired" else Text("ok", style="green"),
         str(i.get("summary", ""))) for i in shown]
    return _table("Attack-failure indicators", ("indicator", "status", "finding"), rows)


def summary(report: Mapping[str, Any]) -> Group:
    """The scan's summary: header, data warnings, attacks, sweep, gate, indicators, deviations, verdict."""
    clean = facts.get(report, "clean", "accuracy")
    splits = facts.get(report, "data", "splits", default={}) or {}
    parts: list[RenderableType] = [
        Text.from_markup(f"[bold]{Path(str(facts.get(report, 'model', 'path', default='?'))).name}[/] under profile "
                         f"[bold]{facts.get(report, 'profile', 'name', default='?')}[/] "
                         f"{facts.get(report, 'profile', 'version', default='')}: clean accuracy {rate(clean)} on "
                         f"{splits.get('n_eval', '?')} eval records", emoji=False),
        Text(f"data: {facts.get(report, 'data', 'source', default='?')} ({splits.get('n_craft', '?')} craft + "
             f"{splits.get('n_eval', '?')} eval records)"),
        *([Text(f"labels: {line}")] if (line := facts.labels_line(report)) else []),
        *_warnings(report), _attacks(report),
    ]
    parts += [Text(f"relative budget, {line}") for line in facts.relative_budgets(report)]
    parts += [t for t in (_sweep(report), _gate(report), _indicators(report)) if t is not None]
    deviations = facts.deviations(report)
    if deviations:
        parts.append(Text("Deviations from the profile:", style="bold yellow"))
        parts += [Text(f"  - {d}", style="yellow") for d in deviations]
    verdict = str(facts.get(report, "gate", "verdict", default="?"))
    parts.append(Text.assemble("verdict: ", (verdict, VERDICT_STYLE.get(verdict, "bold yellow"))))
    for sentence in facts.get(report, "gate", "inconclusive", default=[]) or []:
        parts.append(Text(f"  inconclusive: {sentence}", style="yellow"))
    return Group(*parts)


def attack_summary(doc: Mapping[str, Any], out: Path) -> Group:
    """The summary of `ecgaudit attack` (its `attack.json` document)."""
    title = f"{doc.get('attack')} on {Path(str(facts.get(doc, 'model', 'path', default='?'))).name} " \
            f"({doc.get('n_eval')} eval records)"
    floor = doc.get("noise_floor") or {}
    rows: list[tuple[str, Mapping[str, Any], str]] = [
        (Path(str(facts.get(doc, "model", "path", default="?"))).name, doc.get("metrics") or {},
         f"mean {floor['mean']:.1%}, max {rate(floor.get('max'))}" if isinstance(floor.get("mean"), float) else "—")]
    rows += [(f"  {t.get('threat_model')}", t.get("metrics") or {}, "") for t in facts.threat_runs(doc)
             if t.get("status") == "ran"]
    rows += [(f"{v} (unfiltered)", m, "") for v, m in (doc.get("variants") or {}).items()]
    rows += [(f"→ {Path(str(t.get('model'))).name}", t.get("metrics") or {}, "") for t in doc.get("transfer") or []]
    rows += [(f"→ {facts.get(t, 'data', 'source', default='?')}", t.get("metrics") or {}, "")
             for t in doc.get("transfer_data") or []]
    cells: list[tuple[RenderableType, ...]] = [
        (label, rate(m.get("fooling_rate")), rate(m.get("attack_success_rate")), rate(m.get("robust_accuracy")),
         floor_text, _num(m.get("snr_db"), ".1f"), _num(m.get("ssim"), ".3f")) for label, m, floor_text in rows]
    columns = ("model / threat model", "fooling rate", "attack success", "robust accuracy", "noise floor", "SNR dB",
               "SSIM")
    parts: list[RenderableType] = [_table(title, columns, cells, wrap=(0,))]
    if doc.get("sweep"):
        points: list[tuple[RenderableType, ...]] = [
            (_num(p.get("chest_eps_mv"), ".2f"), rate(p.get("fooling_rate")), _num(p.get("ssim"), ".3f"))
            for p in doc["sweep"]]
        parts.append(_table("Amplitude sweep (V2–V6)", ("ε V2–V6 (mV)", "fooling rate", "SSIM"), points, wrap=()))
    mis = facts.get(doc, "metrics", "misdiagnosis", default={}) or {}
    targets = mis.get("top_targets") or ([mis["top_target"]] if mis.get("top_target") else [])
    if mis.get("n_changed") and targets:
        parts.append(Text(f"successful attacks land on {', '.join(map(str, targets))} in "
                          f"{mis.get('top_target_share', 0):.1%} of cases"))
    parts.append(Text(f"wrote {out / 'attack.json'}" + (f" and {out / 'perturbation.npy'}"
                                                         if "perturbation" in doc else "")))
    return Group(*parts)


def render_console(report: Mapping[str, Any], artifacts: Artifacts | None = None) -> bytes:
    """The summary as plain UTF-8 text, `PLAIN_WIDTH` columns wide (no colour codes)."""
    buffer = io.StringIO()
    Console(file=buffer, width=PLAIN_WIDTH, color_system=None, force_terminal=False, emoji=False,
            highlight=False).print(summary(report))
    return buffer.getvalue().encode("utf-8")
