"""The paper's Table 1 on the bundled zoo: filtered universal DeepFool (baseline) vs SCAR, crafted on the
CNN and measured on the CNN, the ResNet and the Conv-ViT (and on real Challenge-2021 records), plus PGD.

    python benchmarks/table1.py [--n-craft 200] [--n-eval 200] [--seed 0] [--json out.json]

Every rate is measured on each model's own runtime (onnxruntime), with 95% Wilson intervals.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ecgaudit.models import load_model
from ecgaudit.plan import plan_attack
from ecgaudit.scan import attack_document, execute

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"
REAL = ROOT.parent / "shared" / "data" / "real-ecg" / "physionet-challenge-2021"


def fmt(rate: dict | None) -> str:
    if not rate or rate.get("value") is None:
        return "—"
    return f"{100 * rate['value']:5.1f} [{100 * rate['ci95'][0]:4.1f}, {100 * rate['ci95'][1]:4.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-craft", type=int, default=200)
    parser.add_argument("--n-eval", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    source = load_model(MODELS / "cnn.onnx")
    targets = [load_model(MODELS / f"{name}.onnx") for name in ("resnet", "convvit")]
    extra_data = [str(REAL)] if REAL.is_dir() else []
    results = {}
    for attack in ("uap-deepfool", "scar"):
        started = time.perf_counter()
        plan = plan_attack(source, attack, n_craft=args.n_craft, n_eval=args.n_eval, seed=args.seed,
                           transfer_models=targets, transfer_data=extra_data)
        doc = attack_document(execute(plan))
        doc["wall_s"] = time.perf_counter() - started
        results[attack] = doc
    for name, eps_mv in (("pgd-0.1mV", 0.1), ("pgd-10uV", 0.01)):
        plan = plan_attack(source, "pgd", params={"eps_mv": eps_mv, "steps": 10}, n_craft=1, n_eval=args.n_eval,
                           seed=args.seed)
        results[name] = attack_document(execute(plan))

    base, scar = results["uap-deepfool"], results["scar"]
    print(f"Fooling rate, % [95% CI]; craft {args.n_craft} / eval {args.n_eval} synthetic records, seed {args.seed}")
    print(f"{'target':42s} {'baseline (filtered DeepFool)':>30s} {'baseline unfiltered':>26s} {'SCAR':>26s}")
    print(f"{'synthetic (source) CNN':42s} {fmt(base['metrics']['fooling_rate']):>30s} "
          f"{fmt(base['variants']['unfiltered']['fooling_rate']):>26s} {fmt(scar['metrics']['fooling_rate']):>26s}")
    for b, s in zip(base["transfer"], scar["transfer"]):
        print(f"{'synthetic (transfer) ' + Path(b['model']).stem:42s} {fmt(b['metrics']['fooling_rate']):>30s} "
              f"{'':>26s} {fmt(s['metrics']['fooling_rate']):>26s}")
    for b, s in zip(base["transfer_data"], scar["transfer_data"]):
        print(f"{'Challenge-2021 records (' + str(b['data']['n_records']) + ') CNN':42s} "
              f"{fmt(b['metrics']['fooling_rate']):>30s} {'':>26s} {fmt(s['metrics']['fooling_rate']):>26s}")
    for name in ("uap-deepfool", "scar"):
        m = results[name]["metrics"]["misdiagnosis"]
        print(f"{name}: successful attacks land on {m['top_target']} in {100 * (m['top_target_share'] or 0):.1f}%; "
              f"SNR {results[name]['metrics']['snr_db']:.1f} dB, SSIM {results[name]['metrics']['ssim']:.3f}, "
              f"power < cutoff {results[name]['metrics'].get('power_below_cutoff', float('nan')):.4f}, "
              f"wall {results[name]['wall_s']:.0f} s")
    for name in ("pgd-0.1mV", "pgd-10uV"):
        m = results[name]["metrics"]
        print(f"{name}: robust accuracy {fmt(m.get('robust_accuracy'))}, fooling {fmt(m['fooling_rate'])}")
    if args.json:
        args.json.write_text(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "model"}
                                         for k, v in results.items()}, indent=2, default=str))


if __name__ == "__main__":
    main()
