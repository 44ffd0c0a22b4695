"""The paper's Figure 5 (§5, defence strategies) on the bundled CNN and its three adversarially trained variants.

    python benchmarks/defences.py [--profile samd] [--out DIR] [--models cnn cnn-pgdat cnn-scarat cnn-hybridat]

Each model is scanned under one built-in profile with the library's `run_scan` (the same battery, data, splits and
seeds for every model; every rate measured on onnxruntime, with 95% Wilson intervals). Figure 5's axes are clean
accuracy and robust accuracy under each attack: PGD (the profile's, at 10 µV), the filtered baseline
(uap-deepfool), SCAR and SCAR-stealth. The profile's PGD is far below the budget of the other attacks, so one more
column runs the library's PGD at SCAR's own amplitude box (0.1 mV limb leads and V1, 0.2 mV V2–V6, unfiltered) on
the same eval records: the "noise attack" at which the paper's asymmetry (SCAR-AT does not generalise to noise)
can show.

Writes `DIR/figure5.md` (table, plus each model's gate verdict and rule values), `DIR/figure5.png` (grouped bar
chart; needs matplotlib, which wfdb already brings) and `DIR/figure5.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ecgaudit.constraints import default_eps_mv
from ecgaudit.models import load_model
from ecgaudit.plan import ScanConfig, plan_attack
from ecgaudit.profiles import load_profile
from ecgaudit.scan import attack_document, execute, run_scan

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"
DEFAULT_MODELS = ("cnn", "cnn-pgdat", "cnn-scarat", "cnn-hybridat")
LABELS = {"cnn": "Standard", "cnn-pgdat": "PGD-AT", "cnn-scarat": "SCAR-AT", "cnn-hybridat": "Hybrid-AT"}
COLOURS = {"cnn": "#7f7f7f", "cnn-pgdat": "#1f77b4", "cnn-scarat": "#2ca02c", "cnn-hybridat": "#d62728"}
BOX_PGD = "pgd-box"
"""The extra column's id: PGD at SCAR's amplitude box."""
BOX_PGD_STEPS = 10


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    attack: str | None
    """Attack id in the report (None: clean accuracy)."""


def columns(profile_attacks: list[str]) -> list[Column]:
    """Clean accuracy, then robust accuracy under each of the profile's attacks and the box PGD."""
    titles = {"pgd-10uv": "PGD 10 µV", "uap-deepfool": "filtered baseline (uap-deepfool)", "scar": "SCAR",
              "scar-stealth": "SCAR-stealth", BOX_PGD: "PGD at SCAR's box (0.1/0.2 mV)"}
    out = [Column("clean", "clean accuracy", None)]
    for attack_id in [*profile_attacks, BOX_PGD]:
        out.append(Column(attack_id, titles.get(attack_id, attack_id), attack_id))
    return out


def rate(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """A Wilson rate as reported (`value`, `ci95`, `successes`, `total`), or None."""
    return entry if entry and entry.get("value") is not None else None


def fmt(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "—"
    low, high = entry["ci95"]
    return f"{100 * entry['value']:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def scan_model(name: str, profile_name: str) -> dict[str, Any]:
    """Scan one model under the profile, then the box PGD on the same eval split; the figures and the gate."""
    model = load_model(MODELS / f"{name}.onnx")
    profile = load_profile(profile_name)
    started, cpu_started = time.perf_counter(), time.process_time()
    report = run_scan(ScanConfig(model=model, profile=profile)).report
    scanned = time.perf_counter()
    splits = report["data"]["splits"]
    plan = plan_attack(model, "pgd", n_craft=splits["n_craft"], n_eval=splits["n_eval"], seed=report["seed"],
                       params={"eps_mv": list(default_eps_mv(model.card.leads)), "steps": BOX_PGD_STEPS})
    box = attack_document(execute(plan))
    if box["splits"]["eval_manifest_sha256"] != splits["eval_manifest_sha256"]:
        raise RuntimeError(f"{name}: the box PGD did not run on the scan's eval records.")
    robust = {a["id"]: rate(a["metrics"].get("robust_accuracy")) for a in report["attacks"]}
    robust[BOX_PGD] = rate(box["metrics"].get("robust_accuracy"))
    fooling = {a["id"]: rate(a["metrics"].get("fooling_rate")) for a in report["attacks"]}
    fooling[BOX_PGD] = rate(box["metrics"].get("fooling_rate"))
    return {
        "model": name, "file_sha256": model.sha256, "profile": profile.name, "profile_sha256": profile.sha256,
        "n_eval": splits["n_eval"], "n_craft": splits["n_craft"], "seed": report["seed"],
        "eval_manifest_sha256": splits["eval_manifest_sha256"],
        "clean_accuracy": rate(report["clean"].get("accuracy")), "robust_accuracy": robust, "fooling_rate": fooling,
        "misdiagnosis": {a["id"]: a["metrics"]["misdiagnosis"] for a in report["attacks"]},
        "box_pgd_params": box["params"],
        "verdict": report["gate"]["verdict"],
        "rules": [{k: r[k] for k in ("id", "value", "bound", "ci95", "op", "threshold", "passed")}
                  for r in report["gate"]["rules"]],
        "seconds": {"scan": scanned - started, "box_pgd": time.perf_counter() - scanned,
                    "cpu": time.process_time() - cpu_started, "scan_stages": report["timing_seconds"]},
    }


def markdown(results: list[dict[str, Any]], cols: list[Column]) -> str:
    first = results[0]
    lines = [
        f"Robust accuracy, % [95% Wilson CI], `{first['profile']}` profile: {first['n_craft']} craft / "
        f"{first['n_eval']} eval records of builtin:synthetic (seed {first['seed']}), the same for every model.",
        "",
        "| model | " + " | ".join(c.title for c in cols) + " |",
        "|---|" + "--:|" * len(cols),
    ]
    for r in results:
        cells = [fmt(r["clean_accuracy"] if c.attack is None else r["robust_accuracy"].get(c.key)) for c in cols]
        lines.append(f"| {LABELS.get(r['model'], r['model'])} (`{r['model']}`) | " + " | ".join(cells) + " |")
    lines += ["", "Fooling rate (decision changed), % [95% CI]:", "",
              "| model | " + " | ".join(c.title for c in cols[1:]) + " |", "|---|" + "--:|" * (len(cols) - 1)]
    for r in results:
        cells = [fmt(r["fooling_rate"].get(c.key)) for c in cols[1:]]
        lines.append(f"| {LABELS.get(r['model'], r['model'])} | " + " | ".join(cells) + " |")
    lines += ["", f"Gate (`{first['profile']}`), each rule on the conservative end of its 95% interval:", "",
              "| model | verdict | " + " | ".join(rule["id"] for rule in first["rules"]) + " | CPU s |",
              "|---|---|" + "--:|" * (len(first["rules"]) + 1)]
    for r in results:
        cells = [f"{rule['value']:.3f} ({'≥' if rule['op'] == '>=' else '≤'}{rule['threshold']:g} on "
                 f"{rule['bound']:.3f}: {'pass' if rule['passed'] else 'FAIL'})" for rule in r["rules"]]
        lines.append(f"| {LABELS.get(r['model'], r['model'])} | {r['verdict']} | " + " | ".join(cells)
                     + f" | {r['seconds']['cpu']:.0f} |")
    return "\n".join(lines) + "\n"


def chart(results: list[dict[str, Any]], cols: list[Column], path: Path) -> bool:
    """Figure 5 as grouped bars (one group per metric, one bar per model) with 95% intervals; False without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    width = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(11, 4.8), dpi=120)
    for i, r in enumerate(results):
        values, lows, highs = [], [], []
        for c in cols:
            entry = r["clean_accuracy"] if c.attack is None else r["robust_accuracy"].get(c.key)
            value = 100 * entry["value"] if entry else 0.0
            values.append(value)
            lows.append(value - 100 * entry["ci95"][0] if entry else 0.0)
            highs.append(100 * entry["ci95"][1] - value if entry else 0.0)
        xs = [k + (i - (len(results) - 1) / 2) * width for k in range(len(cols))]
        bars = ax.bar(xs, values, width, yerr=[lows, highs], capsize=2, label=LABELS.get(r["model"], r["model"]),
                      color=COLOURS.get(r["model"]), error_kw={"elinewidth": 0.8})
        ax.bar_label(bars, labels=[f"{v:.0f}" for v in values], fontsize=6, padding=1, label_type="center",
                     color="white")
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([c.title.replace(" (", "\n(") for c in cols], fontsize=8)
    ax.set_ylabel("accuracy, % of eval records")
    ax.set_ylim(0, 118)
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(f"Defence strategies (paper Fig. 5): clean accuracy, then robust accuracy under each attack. "
                 f"Profile {results[0]['profile']}, synthetic data, n = {results[0]['n_eval']}; "
                 "whiskers: 95% Wilson intervals", fontsize=9)
    ax.legend(fontsize=8, loc="upper center", ncols=len(results), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="samd", help="built-in profile name or a TOML path [samd]")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                        help="names under examples/models/ (ONNX files)")
    parser.add_argument("--out", type=Path, default=Path("defences-out"))
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    args.out.mkdir(parents=True, exist_ok=True)
    started, cpu_started = time.perf_counter(), time.process_time()
    results = []
    for name in args.models:
        print(f"scanning {name} under {args.profile}", flush=True)
        results.append(scan_model(name, args.profile))
        seconds = results[-1]["seconds"]
        print(f"  {results[-1]['verdict']} in {seconds['scan'] + seconds['box_pgd']:.0f} s wall, "
              f"{seconds['cpu']:.0f} s CPU", flush=True)
    cols = columns([a["id"] for a in load_profile(args.profile).attacks])
    table = markdown(results, cols)
    (args.out / "figure5.md").write_text(table)
    (args.out / "figure5.json").write_text(json.dumps(
        {"results": results, "total_seconds": time.perf_counter() - started,
         "total_cpu_seconds": time.process_time() - cpu_started, "threads": torch.get_num_threads(),
         "load_average_end": list(os.getloadavg())}, indent=2))
    drawn = chart(results, cols, args.out / "figure5.png")
    print(table)
    # CPU seconds over threads approximate the wall time on an otherwise idle machine with that many cores.
    print(f"total {time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu_started:.0f} s CPU on "
          f"{torch.get_num_threads()} threads; wrote {args.out}/figure5.md, figure5.json"
          + (", figure5.png" if drawn else " (no chart: matplotlib is not installed)"))


if __name__ == "__main__":
    main()
