"""The dual solver of the torch L2-SVM (ganbench/probe/l2svm.py; the method is in its module docstring): Newton's
method in the span of the data (Chapelle 2007) on the float64 Gram matrix, which is built here from centred row
chunks."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from ganbench.probe.newton import Result, fused_pass, line_search
from ganbench.probe.problem import Problem
from ganbench.probe.rows import FeatureRows

log = logging.getLogger(__name__)


_PCG_SHARE = 0.3  # classes whose support set holds at least this share of the points may be solved by PCG
_PCG_MIN_ITER = 15  # unless the factorisations would cost less than this many PCG iterations
_PCG_MAX_ITER = 300
_PCG_RTOL = 1e-11  # relative residual of a PCG solve (a direct Cholesky solve reaches about 1e-13 here)


@dataclass
class _Gram:
    """K~ = X X^T + 1 (float64): the centred products (X - 1m^T)(X - 1m^T)^T, taken in the compute dtype, plus
    the rank-one terms v 1^T + 1 v^T + (m.m + 1) with v = (X - 1m^T) m, added in float64."""

    K: torch.Tensor  # (n, n) float64
    inverse_mu: float | None = None
    inverse_K: torch.Tensor | None = None  # (K~ + mu I)^-1 for mu = inverse_mu

    def matmul(self, B: torch.Tensor) -> torch.Tensor:
        return self.K @ B

    def sub(self, idx: torch.Tensor) -> torch.Tensor:
        if self.K.device.type == "cpu":
            # numpy's take, rows then columns: 1.8x faster than two index_selects on a 4,000-point Gram matrix
            # (whose column gather is the slow part), and that much faster again than K[idx[:, None], idx]
            ii = idx.numpy()
            return torch.from_numpy(np.take(np.take(self.K.numpy(), ii, axis=0), ii, axis=1))
        return self.K.index_select(0, idx).index_select(1, idx)

    def inverse(self, mu: float) -> torch.Tensor | None:
        """(K~ + mu I)^-1 (one per C, shared by every class; applied as a matrix product, far faster than two
        triangular solves with a few right-hand sides), None if K~ + mu I is not numerically positive definite."""
        if self.inverse_mu != mu:
            A = self.K.clone()
            A.diagonal().add_(mu)
            info = torch.empty((), dtype=torch.int32, device=A.device)
            torch.linalg.cholesky_ex(A, out=(A, info))
            self.inverse_mu, self.inverse_K = mu, torch.cholesky_inverse(A) if int(info) == 0 else None
        return self.inverse_K


_GRAM_RESIDENT_BYTES = 2**30  # rows converted to the compute dtype in full for the Gram matrix when at most this


def centered_gram(rows: FeatureRows, m64: torch.Tensor) -> _Gram:
    n = rows.n
    Kc = torch.empty(n, n, dtype=torch.float64, device=rows.device)
    v = torch.empty(n, dtype=torch.float64, device=rows.device)
    m = m64.to(rows.dtype)
    step = rows.chunk_rows
    block = rows.block
    if n * rows.d * torch.empty((), dtype=rows.dtype).element_size() <= _GRAM_RESIDENT_BYTES:
        # the rows converted once (a few-label trial: 4,000 x 28,672 float32 is 0.46 GB), so that the blocks can be
        # small: only the lower triangle of blocks is computed, and with 8 of them per side that is 56% of the
        # products of the full matrix (instead of 75% with the 2 chunks of the default chunk size)
        Xc = torch.empty(n, rows.d, dtype=rows.dtype, device=rows.device)
        for a, b, chunk in rows.chunks():
            Xc[a:b] = chunk
        rows.passes -= 1  # counted below, once
        step = max(256, -(-n // 8))

        def block(a: int, b: int, slot: int = 0) -> torch.Tensor:  # noqa: ARG001 (same signature as rows.block)
            return Xc[a:b]

    for a in range(0, n, step):
        b = min(a + step, n)
        A = block(a, b, slot=0)
        v[a:b] = (A @ m).double()
        for c in range(0, a + 1, step):
            e = min(c + step, n)
            B = A if c == a else block(c, e, slot=1)
            blk = (A @ B.T).double()
            Kc[a:b, c:e] = blk
            if c != a:
                Kc[c:e, a:b] = blk.T
    rows.passes += 1
    Kc += v[:, None]
    Kc += v[None, :]
    Kc += float(m64 @ m64) + 1.0
    return _Gram(Kc)


def _pcg_support(
    gram: _Gram, M: torch.Tensor, Y: torch.Tensor, mu: float, max_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve (K~_SS + mu I) beta_S = y_S, beta = 0 off S, for the masks M (n, k) by preconditioned conjugate
    gradients; returns beta (n, k) and which columns reached the tolerance (the others need a direct solve)."""
    Ainv = gram.inverse(mu)
    k = M.shape[1]
    if Ainv is None:
        return torch.zeros_like(Y), torch.zeros(k, dtype=torch.bool, device=M.device)
    Mf = M.to(torch.float64)

    def apply(V: torch.Tensor) -> torch.Tensor:  # V is zero off S
        return Mf * (gram.K @ V + mu * V)

    def precondition(R: torch.Tensor) -> torch.Tensor:
        return Mf * (Ainv @ R)

    b = Mf * Y
    bnorm = b.norm(dim=0)
    X = precondition(b)
    R = b - apply(X)
    Z = precondition(R)
    D = Z.clone()
    rz = (R * Z).sum(0)
    it = 0
    for it in range(max_iter):  # noqa: B007 (logged below)
        if bool((R.norm(dim=0) <= _PCG_RTOL * bnorm).all()):
            break
        AD = apply(D)
        alpha = rz / (D * AD).sum(0)
        X += alpha * D
        R -= alpha * AD
        Z = precondition(R)
        rz_new = (R * Z).sum(0)
        D = Z + (rz_new / rz) * D
        rz = rz_new
    ok = R.norm(dim=0) <= _PCG_RTOL * bnorm
    log.debug("dual pcg: %d iterations, %d of %d solved, |N| %s", it, int(ok.sum()), k, (~M).sum(0).tolist())
    return X, ok


def _solve_support(
    gram: _Gram, S: torch.Tensor, Y: torch.Tensor, C: float, cols: torch.Tensor, direct: bool = False
) -> torch.Tensor:
    """beta (n, len(cols)): beta_S = (K~_SS + I/(2C))^-1 y_S and 0 off S, for each class column in cols."""
    n = S.shape[0]
    B = torch.zeros(n, cols.numel(), dtype=torch.float64, device=S.device)
    # Support sets holding most points (small C): conjugate gradients preconditioned by (K~ + I/(2C))^-1, which
    # all classes share; the restriction to S differs from the exact inverse by a term of rank n - |S|,
    # so a few dozen iterations replace one |S|^3 factorisation per class
    sizes = S[:, cols].sum(0)
    big = torch.nonzero(sizes >= _PCG_SHARE * n).reshape(-1)
    mu = 1.0 / (2.0 * C)
    # PCG when it is expected to cost less than the factorisations it replaces (flop counts: an iteration is two
    # n x n products with the classes' columns; the inverse, once per C, about n^3); it gets that many
    # iterations before the classes it has not solved go to a direct factorisation after all
    direct_flops = float((sizes[big].double() ** 3).sum()) / 3
    iteration_flops = 4.0 * n * n * max(1, big.numel())
    inverse_flops = 0.0 if gram.inverse_mu == mu else float(n) ** 3
    budget = int((direct_flops - inverse_flops) / iteration_flops)
    if big.numel() and n >= 256 and not direct and budget >= _PCG_MIN_ITER:
        sol, ok = _pcg_support(gram, S[:, cols[big]], Y[:, cols[big]], mu, min(budget, _PCG_MAX_ITER))
        B[:, big[ok]] = sol[:, ok]
        rest = torch.ones(cols.numel(), dtype=torch.bool, device=S.device)
        rest[big[ok]] = False
        idx_rest = torch.nonzero(rest).reshape(-1)
        if idx_rest.numel() == 0:
            return B
        B[:, idx_rest] = _solve_support(gram, S, Y, C, cols[idx_rest], direct=True)
        return B
    # classes with the same support set share one factorisation (all of them at a cold start)
    masks, inverse = torch.unique(S[:, cols].T, dim=0, return_inverse=True)
    for g in range(masks.shape[0]):
        members = torch.nonzero(inverse == g).reshape(-1)
        idx = torch.nonzero(masks[g]).reshape(-1)
        if idx.numel() == 0:
            continue
        A = gram.sub(idx)
        A.diagonal().add_(1.0 / (2.0 * C))
        rhs = Y[idx][:, cols[members]]
        sol = _mixed_solve(A, rhs, 1.0 / (2.0 * C))
        if sol is not None:
            B[idx[:, None], members[None, :]] = sol
            continue
        info = torch.empty((), dtype=torch.int32, device=A.device)
        torch.linalg.cholesky_ex(A, out=(A, info))  # in place: one |S| x |S| matrix at a time
        if int(info) == 0:
            sol = torch.cholesky_solve(rhs, A)
        else:  # numerically indefinite (only for enormous C): fall back to a least-squares solve
            A = gram.sub(idx)
            A.diagonal().add_(1.0 / (2.0 * C))
            sol = torch.linalg.lstsq(A, rhs).solution
        B[idx[:, None], members[None, :]] = sol
    return B


_MIXED_CONDITION = 2e5  # the float32 factorisation is tried when cond(A) is provably below this
_MIXED_MAX_REFINE = 8


def _mixed_solve(A: torch.Tensor, rhs: torch.Tensor, mu: float) -> torch.Tensor | None:
    """A^-1 rhs for the float64 SPD matrix A = K~_SS + mu I from a float32 Cholesky factor and iterative
    refinement in float64, to the relative residual _PCG_RTOL (about twice as fast as the float64 factorisation);
    None when A may be too ill-conditioned for float32 (then the caller factorises in float64).

    Refinement contracts the error by about cond(A) * 2^-24 per step, so it is tried only where the bound
    cond(A) <= 1 + trace(K~_SS) / mu (the eigenvalues of K~_SS are non-negative and at most its trace) is below
    _MIXED_CONDITION: a small C, where mu = 1 / (2C) is large; that is where the few-label protocols spend their
    factorisations.
    """
    if 1.0 + float(A.diagonal().sum() - mu * A.shape[0]) / mu > _MIXED_CONDITION:
        return None
    L = A.float()
    info = torch.empty((), dtype=torch.int32, device=A.device)
    torch.linalg.cholesky_ex(L, out=(L, info))
    if int(info) != 0:
        return None
    x = torch.cholesky_solve(rhs.float(), L).double()
    bound = _PCG_RTOL * rhs.norm(dim=0)
    for _ in range(_MIXED_MAX_REFINE):
        r = rhs - A @ x
        if bool((r.norm(dim=0) <= bound).all()):
            return x
        x += torch.cholesky_solve(r.float(), L).double()
    return None


def _dual_objective(B: torch.Tensor, Z: torch.Tensor, Y: torch.Tensor, C: float) -> torch.Tensor:
    slack = torch.clamp(1 - Y * Z, min=0)
    return 0.5 * (B * Z).sum(0) + C * (slack * slack).sum(0)


def dual_newton(
    prob: Problem, C: float, S0: torch.Tensor | None, max_iter: int
) -> tuple[Result, torch.Tensor]:
    """Chapelle's primal Newton in the span of the data; returns the result and the margins K~ beta."""
    gram = problem_gram(prob)
    n, K, dev = prob.n, prob.K, prob.device
    Y = prob.Y64
    S = torch.ones(n, K, dtype=torch.bool, device=dev) if S0 is None else S0.clone()
    todo = torch.arange(K, device=dev)
    # start: the Newton solution on the initial support guess (all points when cold)
    B = _solve_support(gram, S, Y, C, todo)
    Z = gram.matmul(B)
    obj = _dual_objective(B, Z, Y, C)
    full = torch.ones(K, dtype=torch.bool, device=dev)  # B solves the system on S exactly (a full step)
    n_iter = 1
    while True:
        # optimal once the solution on S has S as its own support set
        S_new = Y * Z < 1
        same = (S_new[:, todo] == S[:, todo]).all(0) & full[todo]
        S = S_new
        todo = todo[~same]
        if todo.numel() == 0 or n_iter >= max_iter:
            break
        n_iter += 1
        Bn = _solve_support(gram, S, Y, C, todo)
        Zn = gram.matmul(Bn)
        Bt, Zt, Yt = B[:, todo], Z[:, todo], Y[:, todo]
        Dl, Q = Bn - Bt, Zn - Zt
        t = line_search(Zt, Q, Yt, C, (Zt * Dl).sum(0), (Dl * Q).sum(0))
        # a full step up to rounding, or one that lands on the optimum: a Newton point whose own support set is
        # the one it was solved on minimises the objective (finite convergence), wherever the line search stopped
        # on the way (its step then differs from 1 by rounding alone); taking it saves a confirming step
        exact = ((Yt * Zn < 1) == S[:, todo]).all(0)
        t = torch.where(exact | ((t - 1).abs() <= 1e-6), torch.ones_like(t), t)
        full[todo] = t == 1
        B[:, todo] = torch.where(t == 1, Bn, Bt + t * Dl)
        Z[:, todo] = torch.where(t == 1, Zn, gram.matmul(B[:, todo]))
        new_obj = _dual_objective(B[:, todo], Z[:, todo], Yt, C)
        stalled = obj[todo] - new_obj <= 1e-13 * new_obj.abs()  # only rounding-level support changes left
        obj[todo] = new_obj
        log.debug(
            "dual newton %d: steps %s, support sizes %s", n_iter, t.tolist(), S[:, todo].sum(0).tolist()
        )
        todo = todo[~stalled]
        if todo.numel() == 0:
            break
    converged = todo.numel() == 0
    # back to the primal: w = X^T beta, b = 1^T beta (the intercept's feature is 1)
    beta = B.to(prob.dtype)
    W, _ = fused_pass(prob, None, lambda a, b, z: beta[a:b])
    return Result(W, B.sum(0), obj, n_iter, converged), Z


def problem_gram(prob: Problem) -> _Gram:
    """The problem's centred Gram matrix, computed once per problem (a C path reuses it)."""
    if prob.gram is None:
        prob.gram = centered_gram(prob.rows, prob.m64)
    return prob.gram
