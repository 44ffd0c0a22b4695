"""The amplitude sweep (paper §3.2, Fig. 1): SCAR re-crafted with V2–V6's ε varied, limb leads and V1 fixed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ecgaudit.attacks.harness import NullReporter, Prefixed, Reporter, run_attack
from ecgaudit.attacks.scar import SCAR
from ecgaudit.data.interface import EcgDataset
from ecgaudit.evaluation import CleanEvaluation
from ecgaudit.models.interface import ModelAdapter

DEFAULT_CHEST_MV: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6)


def amplitude_sweep(
    attack: SCAR, model: ModelAdapter, craft: EcgDataset, evaluation: EcgDataset, *, chest_mv: Sequence[float],
    seed: int, reporter: Reporter | None = None, clean_eval: CleanEvaluation | None = None,
) -> list[dict[str, Any]]:
    """Fooling rate and SSIM per V2–V6 amplitude, each point crafted afresh with the same seed."""
    points = []
    for value in chest_mv:
        point_attack = replace(attack, constraint=attack.constraint.with_chest_eps(value, model.card.leads))
        outcome = run_attack(point_attack, model, craft, evaluation, seed=seed, clean_eval=clean_eval,
                             reporter=Prefixed(reporter or NullReporter(), f"sweep V2–V6 {value:g} mV"))
        points.append({
            "chest_eps_mv": float(value),
            "fooling_rate": outcome.metrics["fooling_rate"],
            "ssim": outcome.metrics["ssim"],
            "snr_db": outcome.metrics["snr_db"],
        })
    return points
