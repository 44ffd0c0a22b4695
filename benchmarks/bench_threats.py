"""What each threat model costs on the bundled CNN: wall time, surrogate or runtime work, and the fooling rate it
buys, for one universal attack (SCAR) and one per-record attack (PGD).

Each attack runs once through the same pipeline `ecgaudit attack` uses (`plan_attack` + `execute`), under
white-box, transfer (from a different bundled model) and black-box, with the profile-sized splits. Every rate is
measured on the model's own runtime; the time is the threat model's own crafting plus evaluation.

    python benchmarks/bench_threats.py [--n 200] [--queries-universal 10000] [--queries-per-record 100]
                                       [--markdown threats.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "examples" / "models" / "cnn.onnx")
    parser.add_argument("--surrogate", default="builtin:resnet", help="reference model for the transfer threat")
    parser.add_argument("--n", type=int, default=200, help="craft and eval records each (samd: 200)")
    parser.add_argument("--queries-universal", type=int, default=10000)
    parser.add_argument("--queries-per-record", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--markdown", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    from ecgaudit.models import load_model
    from ecgaudit.plan import plan_attack
    from ecgaudit.scan import attack_document, execute

    model = load_model(args.model)
    rows = []
    load = os.getloadavg()[0]
    for name, params in (("scar", {"epochs": 10, "lead_space": "8"}), ("pgd", {"eps_mv": 0.01, "steps": 10})):
        started = time.perf_counter()
        plan = plan_attack(model, name, params=params, n_craft=args.n, n_eval=args.n, seed=0,
                           threat_models=("white-box", "transfer", "black-box"), surrogates=(args.surrogate,),
                           queries=args.queries_universal if name == "scar" else args.queries_per_record)
        doc = attack_document(execute(plan))
        total = time.perf_counter() - started
        for run in doc["threat_models"]:
            if run["status"] != "ran":
                rows.append((name, run["threat_model"], run["status"], "", "", ""))
                continue
            seconds = run.get("seconds") or {}
            rate = run["metrics"]["fooling_rate"]
            info = run.get("info") or {}
            work = (f"{run['queries_used']:,} runtime queries ({run.get('query_budget_unit', '')})"
                    if run.get("queries_used") is not None else
                    f"{run['query_budget']} runtime queries {run.get('query_budget_unit', '')}"
                    if "query_budget" in run else
                    f"{info['steps']} gradient steps" if "steps" in info else "surrogate gradients")
            rows.append((name, run["threat_model"], run.get("method", name),
                         f"{seconds.get('craft', 0) + seconds.get('evaluate', 0):.1f}",
                         f"{rate['value']:.1%} [{rate['ci95'][0]:.1%}–{rate['ci95'][1]:.1%}]", work))
        print(f"{name}: {total:.1f} s in all", file=sys.stderr)
    header = ("attack", "threat model", "method", "seconds", "fooling rate [95% CI]", "work")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    lines.append(f"\n{args.n} + {args.n} records, builtin:synthetic, {args.threads} threads, load average at start "
                 f"{load:.1f}; universal black-box budget {args.queries_universal:,} records scored, per-record "
                 f"{args.queries_per_record} queries.")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
