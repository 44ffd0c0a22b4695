"""The reproducibility appendix of the PDF report: environment, every digest (checked against the files the
caller loaded), seeds, splits, the model card and timings.
"""

from __future__ import annotations

import json
from xml.sax.saxutils import escape

from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph

from ecgaudit.render.pdf.context import Context
from ecgaudit.render.pdf.text import STYLES, fmt, get, kv_table, mono, section, table


def _processes(distributed: object) -> str:
    """`environment.distributed` in words: how many processes shared the model work, over which backend."""
    if not isinstance(distributed, dict):
        return str(distributed)
    size = distributed.get("world_size", 1)
    if size == 1:
        return "1 process"
    return f"{size} processes (torchrun, {distributed.get('backend') or 'no'} backend), model work shared by rows"


def reproducibility_page(ctx: Context) -> list[Flowable]:
    r = ctx.report
    story = section("Appendix A Reproducibility")
    env = r.get("environment") or {}
    story += [Paragraph("Environment and tool", STYLES["h2"]),
              kv_table([(escape(str(k)), escape(str(v))) for k, v in
                        [("tool", f"{get(r, 'tool', 'name', default='ecgaudit')} {ctx.tool_version}"),
                         ("report schema", r.get("schema_version", "—")),
                         *((k, _processes(v) if k == "distributed" else v) for k, v in env.items())]],
                       (45 * mm, 210 * mm),
                       header=("Item", "Value"))]
    model, data = r.get("model") or {}, r.get("data") or {}
    splits = data.get("splits") or {}
    samples_check = ctx.digest_check(get(r, "samples", "path", default="samples.npz"), get(r, "samples", "sha256"))
    digests: list[tuple[str, str, str]] = [
        ("model", str(model.get("path", "—")), model.get("sha256")),
        ("profile", str(get(r, "profile", "source", default="—")), get(r, "profile", "sha256")),
        ("data manifest", str(data.get("source", "—")), data.get("manifest_sha256")),
        ("craft manifest", f"{fmt(splits.get('n_craft'), 'd')} records", splits.get("craft_manifest_sha256")),
        ("evaluation manifest", f"{fmt(splits.get('n_eval'), 'd')} records", splits.get("eval_manifest_sha256")),
    ]
    for attack in r.get("attacks") or []:
        entries = [(str(attack.get("id")), attack.get("perturbation") or {})]
        entries += [(f"{attack.get('id')} ({t.get('threat_model')})", t.get("perturbation") or {})
                    for t in attack.get("threat_models") or [] if isinstance(t, dict)
                    and t.get("perturbation") and get(t, "perturbation", "path") != get(attack, "perturbation", "path")]
        for label, pert in entries:
            if pert:
                check = ctx.digest_check(pert.get("path"), pert.get("sha256"))
                digests.append((f"perturbation {label}", f"{pert.get('path', '—')} {pert.get('shape', '')} "
                                f"{pert.get('unit', '')}; {check}", pert.get("sha256")))
    digests.append(("samples", f"{get(r, 'samples', 'path', default='—')}; {samples_check}",
                    get(r, "samples", "sha256")))
    for t in r.get("transfer") or []:
        digests.append((f"transfer target ({t.get('format', '?')})", str(t.get("model", "—")), t.get("sha256")))
    digests.append(("report.json", "this report", ctx.report_sha256))
    story += [Paragraph("Digests (SHA-256)", STYLES["h2"]),
              table([["Item", "What", "SHA-256"], *[[a, b, mono(c)] for a, b, c in digests]],
                    [40 * mm, 100 * mm, 115 * mm], raw_cols=(2,))]
    runtime = model.get("runtime") or {}
    card = model.get("card") or {}
    seeds = [("scan seed", r.get("seed")), ("split seed", splits.get("seed")), ("craft records", splits.get("n_craft")),
             ("evaluation records", splits.get("n_eval")), ("data records", data.get("n_records")),
             ("data fs (Hz)", data.get("fs")), ("quality issues", len(data.get("quality_issues") or [])),
             ("model card", ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
                                      for k, v in card.items() if k not in ("leads", "classes"))),
             ("leads", ", ".join(map(str, card.get("leads") or []))),
             ("classes", ", ".join(map(str, card.get("classes") or []))),
             ("runtime", ", ".join(f"{k}={v}" for k, v in runtime.items())),
             ("surrogate parity (max |Δp|)", fmt(model.get("parity_max_abs_diff"), ".3g"))]
    story += [Paragraph("Seeds, splits and model", STYLES["h2"]),
              kv_table([(escape(k), escape(str(v if v is not None else "—"))) for k, v in seeds], (45 * mm, 210 * mm),
                       header=("Item", "Value"))]
    timing = [[str(k), fmt(v, ".2f")] for k, v in (r.get("timing_seconds") or {}).items()]
    for attack in r.get("attacks") or []:
        # Per threat model: the worst case itself is assembled from these runs and costs nothing of its own.
        for run in attack.get("threat_models") or []:
            for phase, seconds in (run.get("seconds") or {}).items():
                timing.append([f"{attack.get('id')} · {run.get('threat_model')} · {phase}", fmt(seconds, ".2f")])
    if timing:
        story += [Paragraph("Timings (seconds)", STYLES["h2"]),
                  table([["Step", "Seconds"], *timing], [70 * mm, 30 * mm])]
    return story
