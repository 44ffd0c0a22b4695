"""Einthoven's and Goldberger's laws: the 8 independent leads of a 12-lead ECG and the 4 derived from I and II.

III = II − I, aVR = −(I + II)/2, aVL = I − II/2, aVF = II − I/2. An electrocardiograph records I, II and V1–V6
and computes the rest, so a perturbation that no electrode signal could produce breaks these equations.

`project_physical` is the Euclidean projection (in the 12-lead space) onto the set of perturbations that
obey them and stay within ε on all 12 leads. Why it is exact: with D the 12×8 map from (I, II, V1–V6) to the
12 leads, ‖v − D·u‖² = ‖v − P·v‖² + ‖D·(u₀ − u)‖², with P the orthogonal projection onto range(D) and
u₀ = D⁺·v. The chest leads are rows of the identity, so they separate and are clipped; the limb part is the
nearest point, in the metric M = D_limbᵀ·D_limb, of the convex polygon in the (I, II) plane cut out by the six
limb leads' ±ε (12 half-planes). After a Cholesky change of variables (q = Lᵀ·p, M = L·Lᵀ) that is a plain
Euclidean projection onto a convex polygon: the point itself if inside, else the nearest point on its edges.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from ecgaudit.errors import EcgauditError
from ecgaudit.metrics import record_chunks

LIMB_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF")
INDEPENDENT_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
DERIVED_LEADS: tuple[str, ...] = ("III", "aVR", "aVL", "aVF")

LIMB_FROM_I_II = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0], [-0.5, -0.5], [1.0, -0.5], [-0.5, 1.0]])
"""(6, 2): each limb lead (rows, in `LIMB_LEADS` order) as a combination of I and II."""


class LeadSpaceError(EcgauditError):
    """The leads given cannot be checked or projected in the physical lead space."""


def limb_index(leads: Sequence[str]) -> list[int]:
    """Positions of I, II, III, aVR, aVL, aVF in `leads`; a clear error when one is missing."""
    missing = [lead for lead in LIMB_LEADS if lead not in leads]
    if missing:
        raise LeadSpaceError(f"the physical lead space needs the six limb leads; {', '.join(missing)} missing from "
                             f"{', '.join(leads)}: use a model with the 12 standard leads or lead_space '12'.")
    return [list(leads).index(lead) for lead in LIMB_LEADS]


def einthoven_residuals(delta: np.ndarray, leads: Sequence[str]) -> np.ndarray:
    """How far III, aVR, aVL, aVF miss their values derived from I and II: `(..., 4, T)` mV."""
    idx = limb_index(leads)
    limb = np.asarray(delta, dtype=np.float64)[..., idx, :]
    derived = np.einsum("kj,...jt->...kt", LIMB_FROM_I_II[2:], limb[..., :2, :])
    return limb[..., 2:, :] - derived


def einthoven_residual_mv(delta: np.ndarray, leads: Sequence[str]) -> float:
    """RMS (mV) over records, the 4 derived leads and time of the Einthoven/Goldberger residual of `delta`.

    0 for any signal an electrocardiograph could record. Shapes: `(L, T)` or `(N, L, T)` mV.
    """
    # a chunk of records at a time, so the float64 residuals never exist for a whole per-record eval split
    parts = [delta] if np.ndim(delta) < 3 else [delta[rows] for rows in record_chunks(len(delta))]
    squares, count = 0.0, 0
    for part in parts:
        residuals = einthoven_residuals(part, leads)
        squares, count = squares + float(np.sum(residuals**2)), count + residuals.size
    return float(np.sqrt(squares / count)) if count else float("nan")


def _metric_factor() -> np.ndarray:
    """L (2×2, lower) with L·Lᵀ = M = D_limbᵀ·D_limb, the 12-lead metric on the (I, II) plane."""
    return np.linalg.cholesky(LIMB_FROM_I_II.T @ LIMB_FROM_I_II)


def limb_polygon(eps_limb_mv: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The feasible (I, II) polygon in whitened coordinates q = Lᵀ·p.

    `eps_limb_mv` are the six limb leads' ε in `LIMB_LEADS` order. Returns (vertices `(m, 2)` counter-clockwise,
    half-plane normals `(12, 2)`, bounds `(12,)`): the polygon is {q : normals·q ≤ bounds}.
    """
    return _limb_polygon(tuple(float(e) for e in eps_limb_mv))


@functools.lru_cache(maxsize=64)
def _limb_polygon(eps_limb_mv: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Cached: attacks project every step with the same budget, and the vertex search solves 66 small systems.
    eps = np.asarray(eps_limb_mv, dtype=np.float64)
    rows = LIMB_FROM_I_II @ np.linalg.inv(_metric_factor().T)  # lead = row·p = (row·L⁻ᵀ)·q
    normals = np.concatenate([rows, -rows])
    bounds = np.concatenate([eps, eps])
    vertices = []
    for i in range(len(normals)):
        for j in range(i + 1, len(normals)):
            a = normals[[i, j]]
            if abs(np.linalg.det(a)) < 1e-12:
                continue
            q = np.linalg.solve(a, bounds[[i, j]])
            if np.all(normals @ q <= bounds + 1e-12):
                vertices.append(q)
    points = np.unique(np.round(np.array(vertices), 12), axis=0)
    angle = np.arctan2(points[:, 1], points[:, 0])  # the origin is inside: every ε is positive
    return points[np.argsort(angle)], normals, bounds


def _project_polygon(q: torch.Tensor, vertices: torch.Tensor, normals: torch.Tensor, bounds: torch.Tensor
                     ) -> torch.Tensor:
    """Euclidean projection of points `(P, 2)` onto the convex polygon; points inside are returned as they are."""
    inside = (q @ normals.T <= bounds).all(dim=1)
    start = vertices
    edge = torch.roll(vertices, -1, dims=0) - vertices  # (m, 2)
    rel = q[:, None, :] - start[None]  # (P, m, 2)
    t = ((rel * edge).sum(-1) / (edge * edge).sum(-1)).clamp(0.0, 1.0)
    nearest = start[None] + t[..., None] * edge[None]
    best = ((q[:, None, :] - nearest) ** 2).sum(-1).argmin(dim=1)
    on_edge = nearest[torch.arange(len(q)), best]
    return torch.where(inside[:, None], q, on_edge)


def physical_subspace(g: torch.Tensor, leads: Sequence[str]) -> torch.Tensor:
    """Orthogonal projection of `(..., L, T)` onto signals that obey Einthoven's and Goldberger's laws.

    The chest leads are untouched; the six limb leads are replaced by the least-squares fit D_limb·p.
    """
    idx = limb_index(leads)
    d = torch.as_tensor(LIMB_FROM_I_II, dtype=torch.float64)
    hat = d @ torch.linalg.solve(d.T @ d, d.T)  # (6, 6)
    out = g.clone()
    out[..., idx, :] = torch.einsum("kj,...jt->...kt", hat, g[..., idx, :].double()).to(g.dtype)
    return out


def project_physical(v: torch.Tensor, eps_mv: Sequence[float], leads: Sequence[str]) -> torch.Tensor:
    """The nearest `(..., L, T)` perturbation (12-lead Euclidean) that obeys Einthoven's and Goldberger's laws
    and lies within ±ε on every lead. `eps_mv` is in the order of `leads`; leads other than the six limb leads
    are clipped to their ε.
    """
    idx = limb_index(leads)
    eps = torch.as_tensor(list(eps_mv), dtype=v.dtype, device=v.device).view(-1, 1)
    out = torch.maximum(torch.minimum(v, eps), -eps)
    vertices, normals, bounds = (torch.as_tensor(a) for a in limb_polygon([float(eps_mv[i]) for i in idx]))
    d = torch.as_tensor(LIMB_FROM_I_II, dtype=torch.float64)
    factor_t = torch.as_tensor(_metric_factor().T)
    limb = v[..., idx, :].double()  # (..., 6, T)
    p0 = torch.einsum("jk,...kt->...jt", torch.linalg.solve(d.T @ d, d.T), limb)  # (..., 2, T): D⁺·v
    q = torch.einsum("ij,...jt->...ti", factor_t, p0)  # (..., T, 2)
    flat = q.reshape(-1, 2)
    q_proj = _project_polygon(flat, vertices, normals, bounds).reshape(q.shape)
    p = torch.linalg.solve(factor_t, q_proj.reshape(-1, 2).T).T.reshape(q.shape)  # (..., T, 2)
    out[..., idx, :] = torch.einsum("kj,...tj->...kt", d, p).to(v.dtype)
    return out
