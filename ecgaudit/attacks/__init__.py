"""Attacks, one per file, and the one registry (`ATTACKS`) the CLI, the profiles and the report name them by.

Importing this package loads only the registry; the attack classes (and torch) load when first used.
"""

from __future__ import annotations

from typing import Any

from ecgaudit.attacks.registry import ATTACKS, AttackSpec, build_attack

ATTACK_NAMES: tuple[str, ...] = tuple(ATTACKS)

_CLASSES = {"PGD": "pgd", "SCAR": "scar", "UniversalDeepFool": "uap_deepfool"}

__all__ = ["ATTACKS", "ATTACK_NAMES", "PGD", "SCAR", "AttackSpec", "UniversalDeepFool", "build_attack"]


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        from importlib import import_module

        return getattr(import_module(f"ecgaudit.attacks.{_CLASSES[name]}"), name)
    raise AttributeError(f"module 'ecgaudit.attacks' has no attribute {name!r}")
