"""The closing pages of the PDF report: methods (attacks, where each number is measured, statistics) and the
reproducibility appendix (environment, digests, seeds, timings).
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph

from ecgaudit.render.pdf.attacks import eps_text
from ecgaudit.render.pdf.context import Context, digest_check
from ecgaudit.render.pdf.text import STYLES, fmt, get, kv_table, mono, section, table

_ATTACK_METHODS = {
    "pgd": (
        "<b>pgd: per-sample L∞ projected gradient descent</b> (Madry et al., ICLR 2018). For each record separately, "
        "from a uniformly random start inside the ε box (<i>random_start</i>), it takes <i>steps</i> signed-gradient "
        "ascent steps of size <i>step_mv</i> on the classifier's loss and projects back onto |δ(t)| ≤ ε of each lead "
        "after every step. A worst-case reference: the perturbation is tailored to each record and not "
        "physiologically constrained; at ε = 10 µV it is the SCAR paper's “invisible noise” reference."),
    "uap-deepfool": (
        "<b>uap-deepfool: universal perturbation with post-hoc filtering</b> (Moosavi-Dezfooli et al., CVPR 2017, "
        "Alg. 1). One perturbation v for all records: passing over the craft set, for each record v does not yet "
        "fool it adds the minimal DeepFool step (Moosavi-Dezfooli et al., CVPR 2016; up to <i>deepfool_max_iter</i> "
        "iterations with <i>overshoot</i>) if that step changes the record's decision, and projects onto the ε box, "
        "until the craft fooling rate reaches <i>target_fooling_rate</i> or after <i>max_passes</i>. After "
        "crafting, the physiological filter "
        "Φ(v) = clip<sub>ε</sub>(low-pass(smooth(v))) of the SCAR paper (eq. 2) is applied: a zero-phase Butterworth "
        "low-pass at <i>cutoff_hz</i>, Gaussian smoothing over <i>window_ms</i>, then clipping to the ε box. The "
        "reported metrics are those of the filtered v; the unfiltered v is reported as a variant."),
    "scar": (
        "<b>scar: SCAR</b> (Jia and Liao; eq. 3–5). One universal v crafted by normalised SGD with the smoothing "
        "inside the loop: per minibatch of craft records, g = ∇<sub>v</sub> L(f(x + v), y), the smoothed gradient "
        "g' = K<sub>temp</sub> * F<sub>low</sub>(g) (zero-phase low-pass at <i>cutoff_hz</i>, then Gaussian smoothing "
        "over <i>window_ms</i>), and v ← Π<sub>ε</sub>(v + α g' / ||g'||<sub>2</sub>), with α a fraction of the ε "
        "box's L2 radius, for <i>epochs</i> over the craft set. The perturbation is smooth and low-frequency by "
        "construction, i.e. it looks like physiology (baseline and ST–T changes), not noise."),
    "scar-stealth": (
        "<b>scar-stealth</b>: SCAR with a 5 Hz cutoff (paper §4.3), so that the perturbation is meant to be "
        "invisible to a human reader of the tracing."),
}


def methods_page(ctx: Context) -> list[Flowable]:
    r = ctx.report
    story = section("Methods")
    story.append(Paragraph("Attacks", STYLES["h2"]))
    seen: list[str] = []
    for attack in r.get("attacks") or []:
        name = str(attack.get("attack", "?"))
        if name not in seen:
            seen.append(name)
            story.append(Paragraph(_ATTACK_METHODS.get(name, f"<b>{escape(name)}</b>: no description on file."),
                                   STYLES["body"]))
    rows: list[list[Any]] = [["Attack id", "Attack", "Budget", "Parameters", "Craft / eval records"]]
    for attack in r.get("attacks") or []:
        params = {k: v for k, v in (attack.get("params") or {}).items() if k != "eps_mv"}
        rows.append([attack.get("id", "?"), attack.get("attack", "?"), eps_text(attack, ctx),
                     ", ".join(f"{k} = {v}" for k, v in params.items()) or "—",
                     f"{fmt(attack.get('n_craft'), 'd')} / {fmt(attack.get('n_eval'), 'd')}"])
    story.append(table(rows, [w * mm for w in (30, 25, 70, 100, 30)]))
    model = r.get("model") or {}
    runtime = model.get("runtime") or {}
    splits = get(r, "data", "splits", default={}) or {}
    parity = model.get("parity_max_abs_diff")
    story += [
        Paragraph("Where each number is measured", STYLES["h2"]),
        Paragraph(
            "Every rate is measured on the vendor's own runtime (onnxruntime for ONNX files, TorchScript for "
            f"TorchScript files; here {escape(str(runtime.get('runtime', '—')))} "
            f"{escape(str(runtime.get('version', '')))}) running the "
            "submitted model file, whose SHA-256 is on the cover. Gradients come from a differentiable surrogate of "
            f"the same model ({escape(str(runtime.get('surrogate', 'surrogate')))}), accepted only after a parity "
            f"check on real inputs: the largest difference between runtime and surrogate output probabilities was "
            f"{fmt(parity, '.3g')}. The perturbations are crafted on the craft split "
            f"({fmt(splits.get('n_craft'), 'd')} records) and evaluated on the disjoint evaluation split "
            f"({fmt(splits.get('n_eval'), 'd')} records; split seed {fmt(splits.get('seed'), 'd')}), both fixed by "
            "the manifests in the appendix.", STYLES["body"]),
        Paragraph("Statistics", STYLES["h2"]),
        Paragraph(
            "<b>Fooling rate</b>: the share of evaluation records whose decision on the runtime changed under attack "
            "(labels not needed). <b>Attack success rate</b>: the share of correctly classified records that the "
            "attack made wrong. <b>Robust accuracy</b>: accuracy under attack. Every rate carries a 95 % Wilson score "
            "interval, which stays valid at 0 %, 100 % and small n. <b>Gate rules judge the conservative bound</b>: "
            "a ceiling (≤) is compared with the upper 95 % bound and a floor (≥) with the lower one, so a rule "
            "passes only when the data support it. <b>SNR</b> is 10·log<sub>10</sub> of clean over perturbation "
            "power, averaged over records; <b>SSIM</b> is the structural similarity of clean and adversarial "
            "tracings (Wang et al. 2004, per lead, averaged); <b>power ≤ cutoff</b> is the share of the "
            "perturbation's Welch power at or below the attack's low-pass cutoff; the <b>top target</b> is the "
            "diagnosis most changed decisions moved to.", STYLES["body"]),
    ]
    return story


# --- reproducibility ----------------------------------------------------------------------------------------------

def reproducibility_page(ctx: Context) -> list[Flowable]:
    r = ctx.report
    story = section("Reproducibility appendix")
    env = r.get("environment") or {}
    story += [Paragraph("Environment and tool", STYLES["h2"]),
              kv_table([(escape(str(k)), escape(str(v))) for k, v in
                        [("tool", f"{get(r, 'tool', 'name', default='ecgaudit')} {ctx.tool_version}"),
                         ("report schema", r.get("schema_version", "—")), *env.items()]], (45 * mm, 210 * mm))]
    model, data = r.get("model") or {}, r.get("data") or {}
    splits = data.get("splits") or {}
    samples_path = ctx.file(get(r, "samples", "path"))
    samples_check = (digest_check(samples_path, get(r, "samples", "sha256")) if samples_path
                     else ctx.samples_problem or "file missing")
    digests: list[tuple[str, str, str]] = [
        ("model", str(model.get("path", "—")), model.get("sha256")),
        ("profile", str(get(r, "profile", "source", default="—")), get(r, "profile", "sha256")),
        ("data manifest", str(data.get("source", "—")), data.get("manifest_sha256")),
        ("craft manifest", f"{fmt(splits.get('n_craft'), 'd')} records", splits.get("craft_manifest_sha256")),
        ("evaluation manifest", f"{fmt(splits.get('n_eval'), 'd')} records", splits.get("eval_manifest_sha256")),
    ]
    for attack in r.get("attacks") or []:
        pert = attack.get("perturbation") or {}
        if pert:
            path = ctx.file(pert.get("path"))
            check = digest_check(path, pert.get("sha256")) if path else "file missing"
            digests.append((f"perturbation {attack.get('id')}", f"{pert.get('path', '—')} {pert.get('shape', '')} "
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
             ("model card", ", ".join(f"{k}={v}" for k, v in card.items() if k not in ("leads", "classes"))),
             ("leads", ", ".join(map(str, card.get("leads") or []))),
             ("classes", ", ".join(map(str, card.get("classes") or []))),
             ("runtime", ", ".join(f"{k}={v}" for k, v in runtime.items())),
             ("surrogate parity (max |Δp|)", fmt(model.get("parity_max_abs_diff"), ".3g"))]
    story += [Paragraph("Seeds, splits and model", STYLES["h2"]),
              kv_table([(escape(k), escape(str(v if v is not None else "—"))) for k, v in seeds], (45 * mm, 210 * mm))]
    timing = [[str(k), fmt(v, ".2f")] for k, v in (r.get("timing_seconds") or {}).items()]
    for attack in r.get("attacks") or []:
        for phase, seconds in (attack.get("seconds") or {}).items():
            timing.append([f"{attack.get('id')} · {phase}", fmt(seconds, ".2f")])
    if timing:
        story += [Paragraph("Timings (seconds)", STYLES["h2"]),
                  table([["Step", "Seconds"], *timing], [70 * mm, 30 * mm])]
    return story
