"""The load probe: run a freshly opened model once, so a broken contract fails at load time.

The model must give finite outputs on realistic ECGs (synthetic records at the card's rate and length);
a model that fails there cannot be audited. Edge inputs a deployed device can meet (a flat-line record,
a record with one flat lead) are tried too: a NaN there is a finding for the report, not a refusal.
"""

from __future__ import annotations

import numpy as np
import torch

from ecgaudit.errors import EcgauditError
from ecgaudit.leads import STANDARD_LEADS
from ecgaudit.models.interface import ModelAdapter

PROBE_RECORDS = 2
PROBE_SEED = 11


def realistic_signals(adapter: ModelAdapter, n_records: int = PROBE_RECORDS, *, seed: int = PROBE_SEED
                      ) -> np.ndarray:
    """Synthetic 12-lead ECGs in mV at the card's fs, length and leads, `(n_records, L, T)`."""
    from ecgaudit.data.synthetic import generate_synthetic

    card = adapter.card
    # The generator wants at least 2 s; shorter model inputs get the first n_samples of a 2 s record.
    length = max(card.n_samples, int(np.ceil(2.0 * card.fs)) + 1)
    x, _ = generate_synthetic(n_records, card.fs, length, seed)
    rows = [STANDARD_LEADS.index(lead) for lead in card.leads]
    return np.ascontiguousarray(x[:, rows, : card.n_samples])


def _edge_inputs(realistic: np.ndarray) -> list[tuple[str, np.ndarray]]:
    flat_lead = np.repeat(realistic[:1], realistic.shape[1], axis=0)
    for lead in range(realistic.shape[1]):
        flat_lead[lead, lead] = 0.0
    return [("an all-zero (flat-line) record", np.zeros_like(realistic[:1])),
            ("a realistic record with one lead flat at 0 mV", flat_lead)]


def _edge_finding(adapter: ModelAdapter, what: str, x: np.ndarray) -> str | None:
    name = adapter.path.name
    try:
        with np.errstate(all="ignore"):
            adapter.raw_predict(x)
    except EcgauditError as exc:
        if "NaN or infinite" not in str(exc):
            return f"{name} fails on {what}: {exc}"
    else:
        return None
    if x.shape[0] == 1:
        return f"{name} returns NaN or infinite outputs on {what}, though it is finite on realistic ECGs."
    leads = adapter.card.leads
    bad = []
    for lead in range(x.shape[0]):
        try:
            adapter.raw_predict(x[lead : lead + 1])
        except EcgauditError:
            bad.append(leads[lead])
    return (f"{name} returns NaN or infinite outputs on {what} (when the flat lead is "
            f"{', '.join(bad) or 'any of them'}), though it is finite on realistic ECGs.")


def probe(adapter: ModelAdapter) -> None:
    """Refuse a model that is not finite on realistic ECGs; record edge-input failures as findings; turn
    a surrogate that cannot run into a runtime-only model (with `surrogate_error`)."""
    realistic = realistic_signals(adapter, adapter.fixed_batch or PROBE_RECORDS)
    adapter.raw_predict(realistic)
    for what, x in _edge_inputs(realistic):
        finding = _edge_finding(adapter, what, x)
        if finding is not None:
            adapter.findings.append(finding)
    if adapter.surrogate_error is None:
        try:
            with torch.no_grad():
                adapter.torch_forward(torch.from_numpy(realistic))
        except EcgauditError:
            raise
        except Exception as exc:  # a converted graph can fail in any torch op
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            adapter.bpda_ops = ()
            adapter.surrogate_error = (
                f"the differentiable copy of {adapter.path.name} fails on a realistic ECG ({first}), so gradient "
                "attacks (white-box, BPDA) cannot run on it; only gradient-free ones can."
            )
