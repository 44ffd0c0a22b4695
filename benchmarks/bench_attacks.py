"""Reference check: ecgaudit's `pgd` and `uap-deepfool` beside the Adversarial Robustness Toolbox and torchattacks.

One run, one model, one budget; PGD on one data split, the universal attacks on one split per seed. Every attack
sees the model through the same differentiable surrogate (`ModelAdapter.torch_forward`), and every fooling rate is
measured the same way: on the vendor runtime (`ModelAdapter.predict` / `decide`), clean vs adversarial eval records,
by `ecgaudit.attacks.harness.measure`.

    python benchmarks/bench_attacks.py [--model examples/models/cnn.onnx] [--n-craft 100] [--n-eval 100]
        [--pgd-eps-mv 0.01 0.05] [--pgd-steps 10] [--uap-eps-mv 0.1] [--uap-passes 5] [--seed 0]
        [--uap-seeds 0 1 2 3 4] [--repeat 3] [--uap-repeat 1] [--json out.json] [--markdown out.md]

Needs the benchmark extras: `pip install '.[bench]'` (adversarial-robustness-toolbox, torchattacks).
See benchmarks/README.md for what is compared and the fairness notes.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import logging
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

EXTRAS = {"art": "adversarial-robustness-toolbox", "torchattacks": "torchattacks"}
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "examples" / "models" / "cnn.onnx"
NOISY_SPREAD = 1.5
"""Timed rounds whose slowest/fastest ratio exceeds this mark a verdict as noisy (a busy machine)."""


def require_extras() -> None:
    """Exit with a clear message (status 2) when the optional peers are not installed."""
    missing = []
    for module, package in EXTRAS.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        sys.stderr.write(
            f"bench_attacks.py: the benchmark extras are missing ({', '.join(missing)} not installed).\n"
            "Install them into this environment with:  pip install '.[bench]'\n"
            "(or: pip install adversarial-robustness-toolbox torchattacks) and run again.\n"
        )
        raise SystemExit(2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model file (default: %(default)s)")
    p.add_argument("--data", default=None,
                   help="data spec for ecgaudit.data.load_dataset (default: builtin:synthetic with n = craft + eval)")
    p.add_argument("--n-craft", type=int, default=100,
                   help="records the universal attacks craft on (ART's UAP runs DeepFool one record at a time: "
                        "lower this if it is too slow; ours and ART's always use the same craft split)")
    p.add_argument("--n-eval", type=int, default=100, help="records every fooling rate is measured on")
    p.add_argument("--pgd-eps-mv", type=float, nargs="+", default=[0.01, 0.05], help="PGD L∞ budgets, mV")
    p.add_argument("--pgd-steps", type=int, default=10)
    p.add_argument("--pgd-batch", type=int, default=64, help="records per PGD pass (all three PGDs)")
    p.add_argument("--repeat", type=int, default=3,
                   help="timed rounds of the PGD runs and the fwd+bwd reference, interleaved; the fastest is kept "
                        "(fooling rates come from round 1; every round is seeded alike)")
    p.add_argument("--uap-eps-mv", type=float, default=0.1,
                   help="uniform L∞ budget for both universal DeepFools, mV (default: the limb/V1 budget)")
    p.add_argument("--uap-passes", type=int, default=5, help="max passes over the craft split")
    p.add_argument("--uap-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                   help="one universal run per seed, each on its own craft/eval split and RNG (ours and ART alike); "
                        "rows pool the seeds (default: %(default)s). A universal DeepFool's result depends on the "
                        "order it visits records, so one seed says little")
    p.add_argument("--uap-repeat", type=int, default=1,
                   help="timed rounds of the three universal runs per seed; the fastest is kept (default 1)")
    p.add_argument("--uap-limb-mv", type=float, default=0.1, help="ecgaudit's per-lead row: limb and V1 budget")
    p.add_argument("--uap-chest-mv", type=float, default=0.2, help="ecgaudit's per-lead row: V2-V6 budget")
    p.add_argument("--ours-uap-batch", type=int, default=None,
                   help="diagnostic: override ecgaudit uap-deepfool's batch_size (default: its own default)")
    p.add_argument("--skip-uap", action="store_true", help="PGD rows only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: %(default)s)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--markdown", type=Path, default=None, help="also write the table as Markdown here")
    args = p.parse_args(argv)
    if min(args.n_craft, args.n_eval, args.pgd_steps, args.uap_passes, args.repeat, args.uap_repeat,
           args.pgd_batch) < 1:
        p.error("sizes, steps, passes and repeats must be at least 1.")
    if any(e <= 0 for e in args.pgd_eps_mv) or args.uap_eps_mv <= 0:
        p.error("budgets must be positive mV values.")
    return args


def log(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_extras()

    import numpy as np
    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    logging.getLogger("art").setLevel(logging.ERROR)

    import art
    import torchattacks
    from art.attacks.evasion import ProjectedGradientDescent, UniversalPerturbation
    from art.estimators.classification import PyTorchClassifier

    import ecgaudit
    from ecgaudit.attacks import build_attack
    from ecgaudit.attacks.harness import attack_targets, run_attack, split_craft_eval
    from ecgaudit.attacks.measure import measure
    from ecgaudit.data import load_dataset
    from ecgaudit.evaluation import evaluate_clean
    from ecgaudit.metrics import wilson
    from ecgaudit.models import load_model

    if not args.model.is_file():
        sys.stderr.write(f"bench_attacks.py: model file {args.model} does not exist (pass --model).\n")
        return 2
    load_at_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    model = load_model(args.model)
    card = model.card
    if card.multilabel:
        sys.stderr.write("bench_attacks.py: the peers' PGD (cross-entropy) and UAP (argmax) are single-label; "
                         f"{args.model.name} is multi-label.\n")
        return 2
    n_leads, n_samples, n_classes = len(card.leads), card.n_samples, card.n_classes
    data_spec = args.data or f"builtin:synthetic:n={args.n_craft + args.n_eval},seed=2026"
    dataset = load_dataset(data_spec, fs=card.fs, n_samples=n_samples, leads=card.leads)
    craft, evaluation = split_craft_eval(dataset, n_craft=args.n_craft, n_eval=args.n_eval, seed=args.seed)
    parity = model.check_parity(evaluation.X[: min(16, evaluation.n_records)])
    clean = evaluate_clean(model, evaluation)
    targets = attack_targets(model, evaluation, clean)  # what ours ascends the loss against; peers get the same
    x_eval = torch.from_numpy(evaluation.X)
    log(f"model {args.model} sha256 {model.sha256[:12]}; data {data_spec}: craft {craft.n_records}, "
        f"eval {evaluation.n_records} records ({n_leads}x{n_samples} at {card.fs:g} Hz); parity {parity:.2g}")

    class Surrogate(nn.Module):
        """`model.torch_forward` as an nn.Module: mV (N, L, T) -> logits. `offset + scale * u` maps a unit box
        onto mV for torchattacks, which clamps every input to [0, 1]."""

        def __init__(self, offset: float = 0.0, scale: float = 1.0) -> None:
            super().__init__()
            self.offset, self.scale = offset, scale
            # torchattacks reads the device off the first parameter; the surrogate's weights are not ours to expose.
            self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.scale != 1.0 or self.offset != 0.0:
                x = self.offset + self.scale * x
            return model.torch_forward(x)

    surrogate = Surrogate().eval()
    classifier = PyTorchClassifier(
        model=surrogate, loss=nn.CrossEntropyLoss(), input_shape=(n_leads, n_samples), nb_classes=n_classes,
        clip_values=None, device_type="cpu",
    )

    def seed_all(seed: int = args.seed) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def measured(delta: np.ndarray, eps_mv: float | None, split: tuple[Any, Any] | None = None) -> dict[str, Any]:
        """The runtime's fooling rate for a perturbation on an eval split (default: the PGD one) with its clean
        evaluation; clipped to ε as the harness clips ours."""
        evaluation_, clean_ = split or (evaluation, clean)
        raw_linf = float(np.abs(delta).max())
        if eps_mv is not None:
            delta = np.clip(delta, -eps_mv, eps_mv)
        metrics = measure(model, evaluation_, clean_, delta.astype(np.float32), cutoff_hz=None)
        metrics["raw_linf_mv"] = raw_linf
        return metrics

    rows: list[dict[str, Any]] = []

    def add_row(name: str, kind: str, eps: str, metrics: dict[str, Any], seconds: float, ref: str | None,
                **extra: Any) -> None:
        fr = metrics["fooling_rate"]
        rows.append({"attack": name, "family": kind, "eps_mv": eps, "fooling_rate": fr["value"],
                     "ci95": fr["ci95"], "fooled": fr["successes"], "n_eval": fr["total"],
                     "linf_mv": metrics["linf_mv"], "raw_linf_mv": metrics.get("raw_linf_mv"),
                     "snr_db": metrics["snr_db"], "seconds": seconds,
                     "reference_row": ref, **extra})
        rounds = extra.get("all_seconds") or [seconds]
        rows[-1]["round_spread"] = max(rounds) / min(rounds)
        work = extra.get("work")
        log(f"  {name:<42} ε {eps:<24} fooling {fr['value']:6.1%}  {seconds:7.2f} s"
            + (f"  surrogate records fwd {work[0]} / bwd {work[1]}" if work else ""))

    def fwd_bwd_cost(steps: int, batch: int) -> float:
        """The model's own cost for `steps` PGD steps: torch_forward + autograd.grad on the eval records."""
        y = targets.long()
        started = time.perf_counter()
        for _ in range(steps):
            for start in range(0, len(x_eval), batch):
                xb = x_eval[start : start + batch].clone().requires_grad_(True)
                loss = nn.functional.cross_entropy(model.torch_forward(xb), y[start : start + batch], reduction="sum")
                torch.autograd.grad(loss, xb)
        return time.perf_counter() - started

    class WorkCounter:
        """Counts the surrogate's work, whoever calls it: records forwarded, and records backpropagated (once per
        gradient that flows back through the logits: K per DeepFool iteration, one per PGD step)."""

        def __init__(self) -> None:
            self.inner = model.torch_forward
            self.forward_records = 0
            self.backward_records = 0
            model.torch_forward = self  # type: ignore[method-assign]  # the instance, for this benchmark only

        def __call__(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            out = self.inner(x, **kwargs)
            n = int(x.shape[0])
            self.forward_records += n
            if out.requires_grad:
                out.register_hook(lambda grad: self._backward(n))
            return out

        def _backward(self, n: int) -> None:
            self.backward_records += n

        def snapshot(self) -> tuple[int, int]:
            return self.forward_records, self.backward_records

        def since(self, before: tuple[int, int]) -> tuple[int, int]:
            return self.forward_records - before[0], self.backward_records - before[1]

    counter = WorkCounter()
    fwd_bwd_cost(1, args.pgd_batch)  # warm-up (first-call allocations), untimed
    reference: dict[str, Any] = {}

    # ---- PGD, per ε: the four timed runs interleaved (order rotated), `--repeat` rounds, fastest kept -----------
    lo = float(min(evaluation.X.min(), 0.0)) - 2 * max(args.pgd_eps_mv) - 1.0
    hi = float(max(evaluation.X.max(), 0.0)) + 2 * max(args.pgd_eps_mv) + 1.0
    span = hi - lo
    unit_box = Surrogate(offset=lo, scale=span).eval()
    u_eval = ((x_eval - lo) / span).float()
    y_onehot = np.eye(n_classes, dtype=np.float32)[targets.numpy()]
    for eps in args.pgd_eps_mv:
        step = 2.5 * eps / args.pgd_steps
        label = f"{eps:g}"
        log(f"PGD ε={eps:g} mV, {args.pgd_steps} steps of {step:.3g} mV, random start, batch {args.pgd_batch}, "
            f"{args.repeat} interleaved round(s)")
        ours = build_attack("pgd", fs=card.fs, leads=card.leads, params={
            "eps_mv": eps, "steps": args.pgd_steps, "step_mv": step, "random_start": True,
            "batch_size": args.pgd_batch})
        art_pgd = ProjectedGradientDescent(
            classifier, norm=np.inf, eps=eps, eps_step=step, max_iter=args.pgd_steps, targeted=False,
            num_random_init=1, batch_size=args.pgd_batch, verbose=False)
        ta_pgd = torchattacks.PGD(unit_box, eps=eps / span, alpha=step / span, steps=args.pgd_steps,
                                  random_start=True)

        def run_ours(attack: Any = ours) -> tuple[Any, float]:
            seed_all()
            outcome = run_attack(attack, model, None, evaluation, seed=args.seed, clean_eval=clean)
            return outcome, outcome.seconds["craft"]

        def run_art(attack: Any = art_pgd) -> tuple[Any, float]:
            seed_all()
            started = time.perf_counter()
            x_adv = attack.generate(evaluation.X, y=y_onehot)
            return x_adv - evaluation.X, time.perf_counter() - started

        def run_torchattacks(attack: Any = ta_pgd) -> tuple[Any, float]:
            seed_all()
            started = time.perf_counter()
            u_adv = torch.cat([attack(u_eval[s : s + args.pgd_batch], targets[s : s + args.pgd_batch].long())
                               for s in range(0, len(u_eval), args.pgd_batch)])
            seconds = time.perf_counter() - started
            return ((u_adv.double() - u_eval.double()) * span).numpy(), seconds

        def run_reference() -> tuple[None, float]:
            return None, fwd_bwd_cost(args.pgd_steps, args.pgd_batch)

        runs = {"fwd+bwd": run_reference, "ours": run_ours, "art": run_art, "torchattacks": run_torchattacks}
        first: dict[str, Any] = {}
        times: dict[str, list[float]] = {name: [] for name in runs}
        work: dict[str, tuple[int, int]] = {}
        names = list(runs)
        for round_ in range(args.repeat):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:  # rotate the order each round
                run = runs[name]
                before = counter.snapshot()
                result, seconds = run()
                times[name].append(seconds)
                if round_ == 0:
                    first[name] = result
                    work[name] = counter.since(before)
        best = {name: min(values) for name, values in times.items()}
        reference[label] = {"fwd_bwd_seconds": best["fwd+bwd"], "steps": args.pgd_steps, "batch": args.pgd_batch,
                            "all_seconds": times["fwd+bwd"], "work": work["fwd+bwd"],
                            "ours_over_fwd_bwd": best["ours"] / best["fwd+bwd"]}
        log(f"  model fwd+bwd x {args.pgd_steps} steps: {best['fwd+bwd']:.2f} s (rounds: "
            f"{', '.join(f'{t:.2f}' for t in times['fwd+bwd'])})")
        ours_name = f"ours-pgd[{label}]"
        add_row("ours pgd", "pgd", label, first["ours"].metrics, best["ours"], None, key=ours_name,
                all_seconds=times["ours"], work=work["ours"])
        add_row("ART ProjectedGradientDescent", "pgd", label, measured(first["art"], eps), best["art"], ours_name,
                all_seconds=times["art"], work=work["art"],
                implementation=type(getattr(art_pgd, "_attack", art_pgd)).__name__)
        add_row("torchattacks PGD", "pgd", label, measured(first["torchattacks"], eps), best["torchattacks"],
                ours_name, all_seconds=times["torchattacks"], work=work["torchattacks"])

    # ---- universal DeepFool, per seed (own craft/eval split and RNG): the three crafting runs in an order rotated
    # from seed to seed, `--uap-repeat` rounds each (fastest kept); rows pool the seeds -------------------------
    if not args.skip_uap:
        eps = args.uap_eps_mv
        label = f"{eps:g} (all leads)"
        per_lead = f"{args.uap_limb_mv:g} limb+V1 / {args.uap_chest_mv:g} V2-V6"
        common = {"max_passes": args.uap_passes, "target_fooling_rate": 0.8, "overshoot": 0.02,
                  "deepfool_max_iter": 10}
        if args.ours_uap_batch is not None:
            common["batch_size"] = args.ours_uap_batch
        log(f"UAP-DeepFool ε={eps:g} mV on every lead (and ours per-lead: {per_lead} mV), ≤{args.uap_passes} passes "
            f"over {args.n_craft} craft records, seeds {' '.join(map(str, args.uap_seeds))}, "
            f"{args.uap_repeat} round(s) each")
        ours_uniform = build_attack("uap-deepfool", fs=card.fs, leads=card.leads,
                                    params={"eps_mv": [eps] * n_leads, **common})
        ours_per_lead = build_attack("uap-deepfool", fs=card.fs, leads=card.leads, params={
            "eps_limb_mv": args.uap_limb_mv, "eps_chest_mv": args.uap_chest_mv, **common})
        art_uap = UniversalPerturbation(
            classifier, attacker="deepfool", attacker_params={"max_iter": 10, "epsilon": 0.02, "nb_grads": n_classes,
                                                              "verbose": False},
            delta=0.2, max_iter=args.uap_passes, eps=eps, norm=np.inf, verbose=False)

        # per run name: one entry per seed
        uap_metrics: dict[str, list[dict[str, Any]]] = {}
        uap_seconds: dict[str, list[float]] = {}
        uap_work: dict[str, list[tuple[int, int]]] = {}
        uap_info: dict[str, list[dict[str, Any]]] = {}
        for i, seed in enumerate(args.uap_seeds):
            craft_s, eval_s = split_craft_eval(dataset, n_craft=args.n_craft, n_eval=args.n_eval, seed=seed)
            clean_s = evaluate_clean(model, eval_s)

            def run_ours_uap(attack: Any, seed: int = seed, craft_s: Any = craft_s, eval_s: Any = eval_s,
                             clean_s: Any = clean_s) -> tuple[Any, float]:
                seed_all(seed)
                outcome = run_attack(attack, model, craft_s, eval_s, seed=seed, clean_eval=clean_s)
                return outcome, outcome.seconds["craft"]

            def run_art_uap(seed: int = seed, craft_s: Any = craft_s) -> tuple[Any, float]:
                seed_all(seed)
                started = time.perf_counter()
                art_uap.generate(craft_s.X)
                seconds = time.perf_counter() - started
                return (np.asarray(art_uap.noise, dtype=np.float32)[0], float(art_uap.fooling_rate),
                        bool(art_uap.converged)), seconds

            uap_runs = {"ours-uniform": lambda f=run_ours_uap: f(ours_uniform), "art": run_art_uap,
                        "ours-per-lead": lambda f=run_ours_uap: f(ours_per_lead)}
            uap_names = list(uap_runs)
            times: dict[str, list[float]] = {name: [] for name in uap_runs}
            for round_ in range(args.uap_repeat):
                turn = (i + round_) % len(uap_names)
                for name in uap_names[turn:] + uap_names[:turn]:  # rotate the order from seed to seed
                    before = counter.snapshot()
                    result, seconds = uap_runs[name]()
                    times[name].append(seconds)
                    if round_ > 0:
                        continue
                    uap_work.setdefault(name, []).append(counter.since(before))
                    if name == "art":
                        noise, art_fooling, converged = result
                        metrics = measured(noise, eps, (eval_s, clean_s))
                        info = {"craft_fooling_rate_surrogate": art_fooling, "converged": converged}
                    else:
                        metrics = result.metrics
                        info = {"passes": result.info.get("passes"),
                                "craft_fooling_rate_surrogate": result.info.get(
                                    "craft_fooling_rate_unfiltered_surrogate"),
                                "unfiltered": result.variants["unfiltered"]}
                    uap_metrics.setdefault(name, []).append(metrics)
                    uap_info.setdefault(name, []).append(info)
            for name, values in times.items():
                uap_seconds.setdefault(name, []).append(min(values))
            log(f"  seed {seed}: " + "; ".join(
                f"{name} {uap_seconds[name][-1]:.2f} s, fooling "
                + (f"{uap_info[name][-1]['unfiltered']['fooling_rate']['value']:.0%} unfiltered / " if name != "art"
                   else "") + f"{uap_metrics[name][-1]['fooling_rate']['value']:.0%}" for name in uap_names))

        def pooled(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
            """Seeds pooled: fooled records summed over the seeds' eval splits (Wilson interval on the pool)."""
            fooled = sum(m["fooling_rate"]["successes"] for m in per_seed)
            total = sum(m["fooling_rate"]["total"] for m in per_seed)
            return {"fooling_rate": wilson(fooled, total).to_dict(),
                    "linf_mv": max(m["linf_mv"] for m in per_seed),
                    "snr_db": float(np.mean([m["snr_db"] for m in per_seed])),
                    "raw_linf_mv": max((m.get("raw_linf_mv") or 0.0) for m in per_seed) or None}

        def uap_row(name: str, row_label: str, eps_label: str, per_seed: list[dict[str, Any]], key: str | None,
                    ref: str | None) -> None:
            seconds = uap_seconds[name]
            work = uap_work[name]
            add_row(row_label, "uap", eps_label, pooled(per_seed), float(np.mean(seconds)), ref,
                    **({"key": key} if key else {}), seeds=list(args.uap_seeds),
                    per_seed_fooling=[m["fooling_rate"]["value"] for m in per_seed], per_seed_seconds=seconds,
                    per_seed_work=work,
                    all_seconds=seconds, work=tuple(round(float(np.mean(column))) for column in zip(*work)),
                    craft_fooling_rate_surrogate=[info["craft_fooling_rate_surrogate"] for info in uap_info[name]])
            # Seeds differ in how much work they need, so the noise measure is the spread of seconds per unit of
            # surrogate work (records forward + 2 x backward) from seed to seed, not of the raw times.
            per_unit = [t / max(1, w[0] + 2 * w[1]) for t, w in zip(seconds, work)]
            rows[-1]["round_spread"] = max(per_unit) / min(per_unit)

        ours_name = "ours-uap[uniform]"
        for key, row_label, eps_label in (("ours-uniform", "ours uap-deepfool", label),
                                          ("ours-per-lead", "ours uap-deepfool per-lead", per_lead)):
            unfiltered = [info["unfiltered"] for info in uap_info[key]]
            uap_row(key, f"{row_label} (unfiltered v)", eps_label, unfiltered,
                    ours_name if key == "ours-uniform" else None, None)
            uap_row(key, f"{row_label} (filtered Φ(v))", eps_label, uap_metrics[key], None, None)
            if key == "ours-uniform":
                uap_row("art", "ART UniversalPerturbation(deepfool)", label, uap_metrics["art"], None, ours_name)

    by_key = {row["key"]: row for row in rows if "key" in row}
    for row in rows:
        ref = by_key.get(row["reference_row"]) if row["reference_row"] else None
        row["time_vs_ours"] = row["seconds"] / ref["seconds"] if ref else None
        row["fooling_minus_ours_pts"] = 100 * (row["fooling_rate"] - ref["fooling_rate"]) if ref else None

    def noisy(*spreads: float) -> bool:
        return max(spreads) > NOISY_SPREAD

    targets = []
    for row in rows:
        ref = by_key.get(row["reference_row"]) if row["reference_row"] else None
        if ref is None:
            continue
        gap = 100 * (ref["fooling_rate"] - row["fooling_rate"]) + 0.0
        measured_gap = f"{gap:+.1f} pts"
        if row.get("per_seed_fooling"):
            gaps = [100 * (a - b) for a, b in zip(ref["per_seed_fooling"], row["per_seed_fooling"])]
            measured_gap += (f" pooled over seeds {', '.join(map(str, row['seeds']))} (per seed "
                             f"{', '.join(f'{g:+.0f}' for g in gaps)})")
        targets.append({"target": f"{ref['attack']} ε {row['eps_mv']}: fooling within 5 pts of {row['attack']} "
                                  "or better", "measured": measured_gap, "met": gap >= -5.0})
        if row["family"] == "uap":
            speedup = row["seconds"] / ref["seconds"]
            work_ratio = (row["work"][0] + 2 * row["work"][1]) / max(1, ref["work"][0] + 2 * ref["work"][1])
            targets.append({"target": f"{ref['attack']}: ≥10x faster than {row['attack']} at ≥ its fooling rate",
                            "measured": f"{speedup:.2f}x faster in wall time ({work_ratio:.2f}x less surrogate work, "
                                        f"fwd + 2·bwd), fooling {gap:+.1f} pts",
                            "met": speedup >= 10.0 and gap >= 0.0,
                            "timing_noisy": noisy(row["round_spread"], ref["round_spread"])})
    for eps, ref in reference.items():
        ratio = ref["ours_over_fwd_bwd"]
        ours_row = by_key[f"ours-pgd[{eps}]"]
        spread = max(ref["all_seconds"]) / min(ref["all_seconds"])
        targets.append({"target": f"ours pgd ε {eps}: time ≤ 1.10x the model's fwd+bwd for {ref['steps']} steps",
                        "measured": f"{ratio:.2f}x", "met": ratio <= 1.10,
                        "timing_noisy": noisy(spread, ours_row["round_spread"])})

    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "loadavg_1_5_15_start": load_at_start,
                    "loadavg_1_5_15_end": os.getloadavg() if hasattr(os, "getloadavg") else None},
        "versions": {"python": platform.python_version(), "ecgaudit": ecgaudit.__version__,
                     "torch": torch.__version__, "adversarial-robustness-toolbox": art.__version__,
                     "torchattacks": torchattacks.__version__, "numpy": np.__version__},
        "model": {"path": str(args.model), "sha256": model.sha256, "classes": list(card.classes),
                  "fs": card.fs, "n_samples": n_samples, "parity_max_abs_diff": parity},
        "data": {"spec": data_spec, "n_craft": craft.n_records, "n_eval": evaluation.n_records, "seed": args.seed,
                 "clean_accuracy": clean.accuracy.to_dict() if clean.accuracy else None},
        "budget": {"pgd_eps_mv": args.pgd_eps_mv, "pgd_steps": args.pgd_steps, "pgd_step": "2.5*eps/steps",
                   "pgd_batch": args.pgd_batch, "uap_eps_mv": args.uap_eps_mv, "uap_passes": args.uap_passes,
                   "uap_per_lead_mv": {"limb_v1": args.uap_limb_mv, "v2_v6": args.uap_chest_mv},
                   "ours_uap_batch": args.ours_uap_batch, "pgd_repeat": args.repeat, "uap_repeat": args.uap_repeat,
                   "uap_seeds": args.uap_seeds,
                   "uap_target_fooling": 0.8, "deepfool_max_iter": 10, "deepfool_overshoot": 0.02},
        "fwd_bwd_reference": reference,
        "targets": targets,
    }
    print_table(rows, meta, reference)
    if args.markdown:
        args.markdown.write_text(markdown_table(rows, meta))
        log(f"wrote {args.markdown}")
    if args.json:
        clean_rows = [{k: v for k, v in row.items() if k != "key"} for row in rows]
        args.json.write_text(json.dumps({"meta": meta, "rows": clean_rows}, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


def print_table(rows: list[dict[str, Any]], meta: dict[str, Any], reference: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    m = meta["model"]
    table = Table(title=f"{Path(m['path']).name} (sha256 {m['sha256'][:12]}), {meta['data']['spec']}: "
                        f"craft {meta['data']['n_craft']}, eval {meta['data']['n_eval']}; fooling on the runtime")
    for name, justify in (("attack", "left"), ("ε mV (L∞)", "left"), ("fooling rate", "right"),
                          ("95% CI", "right"), ("Δ vs ours (pts)", "right"), ("wall s", "right"),
                          ("time ÷ ours", "right"), ("surrogate fwd/bwd records", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    previous = None
    for row in rows:
        group = (row["family"], row["eps_mv"])
        if previous is not None and group != previous:
            table.add_section()
        previous = group
        lo, hi = row["ci95"]
        delta = row["fooling_minus_ours_pts"]
        ratio = row["time_vs_ours"]
        work = row.get("work")
        table.add_row(
            row["attack"], row["eps_mv"], f"{row['fooling_rate']:.1%} ({row['fooled']}/{row['n_eval']})",
            f"{lo:.1%}–{hi:.1%}", "—" if delta is None else f"{delta:+.1f}", f"{row['seconds']:.2f}",
            "1.00 (ref)" if ratio is None else f"{ratio:.2f}", f"{work[0]} / {work[1]}" if work else "—",
        )
    console = Console(width=170)
    console.print(table)
    for eps, ref in reference.items():
        console.print(f"ε={eps} mV: the model's own forward+backward x {ref['steps']} steps (batch {ref['batch']}, "
                      f"{ref['work'][0]} / {ref['work'][1]} records) {ref['fwd_bwd_seconds']:.2f} s; "
                      f"ours pgd / that = {ref['ours_over_fwd_bwd']:.2f}")
    for line in per_seed_lines(rows):
        console.print(line)
    for t in meta["targets"]:
        status = ("met" if t["met"] else "NOT met") + (" (noisy)" if t.get("timing_noisy") else "")
        console.print(f"{status:>16}  {t['target']}: {t['measured']}")
    if any(t.get("timing_noisy") for t in meta["targets"]):
        console.print(f"(noisy): the timed rounds behind this verdict differ by more than {NOISY_SPREAD}x; the "
                      "machine was busy. Rerun on an idle machine before trusting the time ratio.")
    versions = meta["versions"]
    load = meta["machine"]["loadavg_1_5_15_end"]
    console.print(f"date {meta['date']}; {meta['machine']['cpu_count']} CPU cores, torch threads "
                  f"{meta['machine']['torch_threads']}; torch {versions['torch']}, ART "
                  f"{versions['adversarial-robustness-toolbox']}, torchattacks {versions['torchattacks']}"
                  + (f"; load average at end {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}" if load else ""))


def per_seed_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per pooled (universal) row: its fooling rate and wall time seed by seed."""
    return [f"{row['attack']}, per seed {', '.join(map(str, row['seeds']))}: fooling "
            f"{', '.join(f'{f:.0%}' for f in row['per_seed_fooling'])}; wall "
            f"{', '.join(f'{t:.1f}' for t in row['per_seed_seconds'])} s"
            for row in rows if row.get("per_seed_fooling")]


def markdown_table(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = ["| attack | ε mV (L∞) | fooling rate | 95% CI | Δ vs ours (pts) | wall s | time ÷ ours "
             "| surrogate fwd / bwd records |", "|---|---|--:|--:|--:|--:|--:|--:|"]
    for row in rows:
        lo, hi = row["ci95"]
        delta, ratio, work = row["fooling_minus_ours_pts"], row["time_vs_ours"], row.get("work")
        lines.append(
            f"| {row['attack']} | {row['eps_mv']} | {row['fooling_rate']:.1%} ({row['fooled']}/{row['n_eval']}) "
            f"| {lo:.1%}–{hi:.1%} | {'—' if delta is None else f'{delta:+.1f}'} | {row['seconds']:.2f} "
            f"| {'1.00 (ref)' if ratio is None else f'{ratio:.2f}'} | {f'{work[0]} / {work[1]}' if work else '—'} |"
        )
    lines.append("")
    for eps, ref in meta["fwd_bwd_reference"].items():
        lines.append(f"- ε={eps} mV: the model's own forward+backward × {ref['steps']} steps (batch {ref['batch']}): "
                     f"{ref['fwd_bwd_seconds']:.2f} s; ours pgd / that = {ref['ours_over_fwd_bwd']:.2f}")
    lines += [f"- {line}" for line in per_seed_lines(rows)]
    for t in meta["targets"]:
        status = ("met" if t["met"] else "**not met**") + (" (timing noisy)" if t.get("timing_noisy") else "")
        lines.append(f"- {status}: {t['target']} — {t['measured']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
