"""What the primal and dual Newton solvers of ganbench/probe/l2svm.py share: the exact line search on the
piecewise-quadratic objective, the fused pass over X (X~^T u for u computed from X~ V^T chunk by chunk) and the
result record."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ganbench.probe.problem import Problem


def line_search(
    Z: torch.Tensor, Q: torch.Tensor, Y: torch.Tensor, C: float, a1: torch.Tensor, a2: torch.Tensor
) -> torch.Tensor:
    """Exact minimiser t >= 0 of phi(t) = a1 t + a2 t^2 / 2 + C sum max(0, 1 - y (z + t q))^2, per column.

    phi is convex and piecewise quadratic (Keerthi & DeCoste 2005, sec. 3): Newton steps on phi' from t = 1
    land on the minimiser as soon as they stay inside one piece; a bracket keeps them from cycling. Stops when
    phi' is zero up to the rounding of its terms.
    """
    t = torch.ones(Z.shape[1], dtype=torch.float64, device=Z.device)
    lo = torch.zeros_like(t)
    hi = torch.full_like(t, math.inf)
    for _ in range(100):
        Zt = Z + t * Q
        act = (Y * Zt < 1).to(Z.dtype)
        terms = act * (Zt - Y) * Q
        g = a1 + a2 * t + 2 * C * terms.sum(0)
        scale = a1.abs() + a2.abs() * t + 2 * C * terms.abs().sum(0)
        done = (g.abs() <= 1e-11 * scale) | (hi - lo <= 1e-14 * t)
        if bool(done.all()):
            break
        lo = torch.where(g < 0, t, lo)
        hi = torch.where(g > 0, t, hi)
        h = a2 + 2 * C * (act * Q * Q).sum(0)
        step = t - g / h
        inside = (step > lo) & (step < hi)
        bisect = torch.where(torch.isinf(hi), 2 * t, (lo + hi) / 2)
        t = torch.where(done, t, torch.where(inside, step, bisect))
    return t


@dataclass
class Result:
    W: torch.Tensor  # (K, d) float64
    b: torch.Tensor  # (K,) float64
    objective: torch.Tensor  # (K,) float64
    n_iter: int
    converged: bool


def fused_pass(
    prob: Problem, V: torch.Tensor | None, weight: Callable[[int, int, Any], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over X: per chunk z = X~ V^T, u = weight(a, b, z) (c, j), accumulate X~^T u, X~ = [X, 1].

    V is (k, d+1) in the compute dtype (last column: intercept), or None to skip the forward product.
    Returns the (j, d) and (j,) float64 parts of X~^T u.
    """
    rows, d = prob.rows, prob.d
    if V is not None:
        Vw = V[:, :d]
        off = (Vw.double() @ prob.m64 + V[:, d].double()).to(prob.dtype)
        VwT = Vw.T
    acc_w = None
    acc_b = None
    for a, b, chunk in rows.chunks():
        z = torch.addmm(off, chunk, VwT) if V is not None else None
        u = weight(a, b, z)
        if acc_w is None:
            acc_w = u.T @ chunk
            acc_b = u.sum(0, dtype=torch.float64)
        else:
            acc_w.addmm_(u.T, chunk)
            acc_b += u.sum(0, dtype=torch.float64)
    assert acc_w is not None and acc_b is not None
    # X^T u = (X - 1 m^T)^T u + m (1^T u)
    Gw = acc_w.double() + acc_b[:, None] * prob.m64[None, :]
    return Gw, acc_b
