"""The primal solver of the torch L2-SVM (ganbench/probe/l2svm.py; the method is in its module docstring): modified
finite Newton with preconditioned conjugate gradients on the active set (Keerthi & DeCoste 2005), the
subspace-plus-Jacobi preconditioner and the cold start restricted to its subspace."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from ganbench.devices import available_bytes
from ganbench.probe.newton import Result, fused_pass, line_search
from ganbench.probe.problem import Problem
from ganbench.probe.rows import from_numpy

PRECONDITIONER_RANK = 512  # dimension of the subspace on which the primal's CG is preconditioned exactly
SUBSPACE_BYTES = 2**30  # at most this much for X~ U^T (n x rank in the compute dtype): the rank shrinks

log = logging.getLogger(__name__)

_CG_MAX_ITER = 500  # conjugate-gradient steps per Newton step (each is a pass over X)
_FORCING_MAX = 0.1  # a Newton step's CG runs to relative residual min(sqrt(|g| / |g_0|), _FORCING_MAX) ...
_TARGET_FLOOR = 0.2  # ... and no further than ||r||^2 = _TARGET_FLOOR tol f (the stopping test is 0.5 ||g||^2 <= tol f)
LOWP_BLOCK = 2048  # rows of the bfloat16 copy per block of a fused Hessian-vector product


def _dot(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    return (A.double() * B.double()).sum(1)


@dataclass
class _Subspace:
    """Orthonormal rows U (r, d+1) spanning the directions where X~^T X~ is large, X~ U^T (n, r), and the
    column energies sum_i ((I - U^T U) x~_i)_j^2 (d+1,) float64 of what U leaves out."""

    U: torch.Tensor
    XU: torch.Tensor
    rest: torch.Tensor


def _build_subspace(prob: Problem, rank: int) -> _Subspace:
    """The mean/intercept direction and the top principal directions of a row sample of X (Nystrom-style).

    With d + 1 <= rank the subspace is everything and the preconditioner below is the exact Hessian.
    """
    n, d, dt, dev = prob.n, prob.d, prob.dtype, prob.device
    if d + 1 <= rank:
        U = torch.eye(d + 1, dtype=torch.float64, device=dev)
        return _Subspace(U.to(dt), prob.forward(U), torch.zeros(d + 1, dtype=torch.float64, device=dev))
    size = min(n, max(2 * rank, 2048))
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(n, size=size, replace=False))
    step = prob.rows.chunk_rows
    sample = torch.cat(
        [
            from_numpy(np.asarray(prob.rows.X[idx[i : i + step]])).to(dev).to(dt) - prob.rows.center
            for i in range(0, size, step)
        ]
    )
    gram = (sample @ sample.T).double()
    evals, evecs = torch.linalg.eigh(gram)
    top = torch.argsort(evals, descending=True)[: rank - 1]
    top = top[evals[top] > evals.max() * 1e-10]
    Uw = (evecs[:, top].T.to(dt) @ sample).double() / evals[top].sqrt()[:, None]
    del sample, gram, evecs
    mean_dir = torch.cat([prob.m64, torch.ones(1, dtype=torch.float64, device=dev)])
    basis = torch.cat([mean_dir[None, :], torch.cat([Uw, torch.zeros_like(Uw[:, :1])], 1)])
    U = torch.linalg.qr(basis.T).Q.T.to(dt)
    # one pass: X~ U^T, and the energy of the rows outside span(U), per column
    Uw, Ub = U[:, :d], U[:, d]
    off = (Uw.double() @ prob.m64 + Ub.double()).to(dt)
    m = prob.rows.center
    XU = torch.empty(n, U.shape[0], dtype=dt, device=dev)
    rest = torch.zeros(d + 1, dtype=torch.float64, device=dev)
    if prob.lowp is not None:
        # both products (2 n d r flops, most of this function's time) from the bfloat16 copy: X~ U^T and the
        # energies only shape the preconditioner and the cold start, which need not be exact (the Newton steps
        # and their stopping test use the exact gradient), so bfloat16 costs no accuracy of the solution
        Ur = Uw.to(torch.bfloat16)
        blocks = ((a, min(a + LOWP_BLOCK, n), prob.lowp[a:a + LOWP_BLOCK]) for a in range(0, n, LOWP_BLOCK))
    else:
        Ur = Uw
        blocks = prob.rows.chunks()
    for a, b, block in blocks:
        xu = (block @ Ur.T).to(dt).add_(off)
        XU[a:b] = xu
        resid = (block.to(dt) + m).sub_(xu.to(Ur.dtype) @ Ur)  # a new tensor: the chunk may be a view of X
        rest[:d] += (resid * resid).sum(0).double()
        rest[d] += ((1 - xu @ Ub) ** 2).sum().double()
    return _Subspace(U, XU, rest)


class _Preconditioner:
    """Block preconditioner for H_k = I + 2C X~_A^T X~_A (class k's active set A), applied as its inverse

        M_k^-1 = U^T (I + 2C U X~_A^T X~_A U^T)^-1 U + (I - U^T U) S_k^-1 (I - U^T U).

    On span(U) (the large eigenvalues, from a row sample: the idea of randomised Nystrom preconditioning,
    Frangella, Tropp & Udell 2023, "Randomized Nystrom preconditioning", SIAM J. Matrix Anal. Appl. 44) it is
    the exact Hessian block: (X~U^T)^T D_A (X~U^T) needs no pass over X. On the complement it is the Jacobi
    diagonal S_k = 1 + 2C (|A| / n) sum_i ((I - U^T U) x~_i)^2, the complement's energy scaled to the active
    set, so that both blocks come out on the same scale (with the identity there, CG would still see the
    complement's eigenvalues of order 2C |A| sigma^2 next to the ones of the exact block).
    """

    def __init__(self, sub: _Subspace, act: torch.Tensor, C: float) -> None:
        self.sub = sub
        self.U = sub.U  # in the compute dtype: the preconditioner need not be exact, only fixed within a CG solve
        self.L, self.S = self._blocks(act, C)  # (k, r, r), (k, d+1)

    def _blocks(self, act: torch.Tensor, C: float) -> tuple[torch.Tensor, torch.Tensor]:
        sub = self.sub
        eye = torch.eye(sub.U.shape[0], dtype=torch.float64, device=act.device)
        chol = []
        for j in range(act.shape[1]):
            rows = sub.XU[act[:, j]]
            core = eye + 2 * C * (rows.T @ rows).double()
            chol.append(torch.linalg.cholesky(core))
        share = act.sum(0).double() / act.shape[0]
        return torch.stack(chol), (1 + 2 * C * share[:, None] * sub.rest[None, :]).to(sub.U.dtype)

    def refactor(self, cols: torch.Tensor, act: torch.Tensor, C: float) -> None:
        """Rebuild the blocks of the classes cols for their new active sets act (n, len(cols))."""
        self.L[cols], self.S[cols] = self._blocks(act, C)

    def apply(self, R: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """M^-1 R for residuals R (len(cols), d+1) of the classes cols (float64 result)."""
        U = self.U
        R = R.to(U.dtype)
        c = R @ U.T
        inner = torch.cholesky_solve(c.double()[:, :, None], self.L[cols])[:, :, 0].to(U.dtype)
        out = (R - c @ U) / self.S[cols]
        return out.addmm_(inner - out @ U.T, U).double()


def _subspace_start(sub: _Subspace, Y: torch.Tensor, C: float, tol: float) -> tuple[torch.Tensor, int]:
    """The exact solution restricted to w in span(U), as a cold start: (K, d+1) float64 and Newton steps.

    Newton with the exact r x r Hessian on the features X~ U^T that the preconditioner already holds, so it
    makes no pass over X; it gets the dominant directions and a close guess of the active sets.
    """
    XU = sub.XU
    n, r = XU.shape
    K = Y.shape[1]
    c = torch.zeros(K, r, dtype=torch.float64, device=XU.device)
    Z = torch.zeros(n, K, dtype=torch.float64, device=XU.device)
    eye = torch.eye(r, dtype=torch.float64, device=XU.device)
    steps = 0
    for _ in range(50):
        act = Y * Z < 1
        R = torch.where(act, Z - Y, torch.zeros((), dtype=torch.float64, device=XU.device))
        f = 0.5 * (c * c).sum(1) + C * (R * R).sum(0)
        G = c + 2 * C * (R.to(XU.dtype).T @ XU).double()
        if bool((0.5 * (G * G).sum(1) <= 0.1 * tol * f).all()):
            break
        P = torch.empty_like(c)
        for k in range(K):
            rows = XU[act[:, k]]
            H = eye + 2 * C * (rows.T @ rows).double()
            P[k] = -torch.linalg.solve(H, G[k])
        Q = (XU @ P.T.to(XU.dtype)).double()
        t = line_search(Z, Q, Y, C, (c * P).sum(1), (P * P).sum(1))
        c += t[:, None] * P
        Z += t * Q
        steps += 1
    return c @ sub.U.double(), steps


def _exact_gradient(
    prob: Problem, C: float, Vk: torch.Tensor, cols: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One exact pass for the classes cols at their points Vk (len(cols), d+1): margins X~ v (n, k) float64, active
    sets (n, k), objectives (k,) and gradients (k, d+1) float64."""
    n, d, dt, dev = prob.n, prob.d, prob.dtype, prob.device
    Yk, Yk64 = prob.Y[:, cols], prob.Y64[:, cols]
    Z = torch.empty(n, cols.numel(), dtype=dt, device=dev)

    def grad_weight(a: int, b: int, z: torch.Tensor) -> torch.Tensor:
        Z[a:b] = z
        y = Yk[a:b]
        return torch.where(y * z < 1, z - y, torch.zeros((), dtype=dt, device=dev))

    Gw, Gb = fused_pass(prob, Vk, grad_weight)
    Z64 = Z.double()
    act = Yk64 * Z64 < 1
    R = torch.where(act, Z64 - Yk64, torch.zeros((), dtype=torch.float64, device=dev))
    f = 0.5 * _dot(Vk, Vk) + C * (R * R).sum(0)
    G = torch.cat([Vk.double()[:, :d] + 2 * C * Gw, (Vk[:, d].double() + 2 * C * Gb)[:, None]], 1)
    return Z64, act, f, G


def primal_newton(
    prob: Problem, C: float, W0: torch.Tensor | None, b0: torch.Tensor | None, tol: float, max_iter: int,
    hessian_dtype: str = "auto", trend: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Result:
    """Modified finite Newton (Keerthi & DeCoste 2005) for all classes at once; see l2svm.py's docstring.

    A class stops when its relative suboptimality (f - f*) / f is certainly below tol: either from the
    gradient (f is 1-strongly convex, so f - f* <= ||g||^2 / 2) or from the Newton decrement of the step just
    taken (f - f* of the local quadratic is (p.Hp + r.H^-1 r) / 2 <= (-g.p + ||r||^2) / 2 for the CG iterate p
    with residual r, since CG keeps p.r = 0 and H >= I). The second needs the exact Hessian: with the bfloat16
    one (problem_lowp) the classes run on their own clocks in _lowp_newton, where only the gradient test stops a
    class.
    """
    d, K, dt = prob.d, prob.K, prob.dtype
    lowp = problem_lowp(prob, hessian_dtype)
    dev = prob.device
    f64 = torch.float64
    Y64 = prob.Y64
    V = torch.zeros(K, d + 1, dtype=dt, device=dev)
    n_iter = 0
    if W0 is not None:
        V[:, :d] = W0.to(dt)
        V[:, d] = b0.to(dt)
        if trend is not None:
            T = torch.cat([trend[0], trend[1][:, None]], 1)
            V[:] = path_predictor(prob, C, torch.cat([W0, b0[:, None]], 1), T)
    else:
        start, n_iter = _subspace_start(problem_subspace(prob), Y64, C, tol)
        V[:] = start.to(dt)
    if lowp is not None:
        return _lowp_newton(prob, C, V, tol, max_iter, lowp, n_iter)
    objective = torch.zeros(K, dtype=f64, device=dev)
    gfirst = torch.zeros(K, dtype=f64, device=dev)
    prev_obj = torch.full((K,), math.inf, dtype=f64, device=dev)
    todo = torch.arange(K, device=dev)  # classes not yet converged
    first = True
    while todo.numel():
        Yk64, Vk = Y64[:, todo], V[todo]
        Z64, act, fk, G = _exact_gradient(prob, C, Vk, todo)
        objective[todo] = fk
        gnorm = G.norm(dim=1)
        if first:
            gfirst[todo] = gnorm
            first = False
        stalled = prev_obj[todo] - fk <= 1e-12 * fk.abs()  # no decrease left at the working precision
        done = (0.5 * gnorm**2 <= tol * fk) | stalled
        log.debug("primal newton %d: objective %s, |g| %s", n_iter, fk.tolist(), gnorm.tolist())
        keep = ~done
        todo, G, Z64, Yk64, act, Vk, gnorm, fk = (
            todo[keep],
            G[keep],
            Z64[:, keep],
            Yk64[:, keep],
            act[:, keep],
            Vk[keep],
            gnorm[keep],
            fk[keep],
        )
        if todo.numel() == 0 or n_iter >= max_iter:
            break
        n_iter += 1
        prev_obj[todo] = fk
        # Inexact Newton: CG to relative residual eta (-> 0 with the gradient: superlinear convergence), but
        # no further than the stopping rule needs.
        eta = torch.clamp(torch.sqrt(gnorm / gfirst[todo]), max=_FORCING_MAX)
        target = torch.maximum((eta * gnorm) ** 2, _TARGET_FLOOR * tol * fk)
        precond = _Preconditioner(problem_subspace(prob), act, C)
        P, Q, rr = _conjugate_gradient(prob, C, G.to(dt), act.to(dt), target, precond)
        P64, Q64 = P.double(), Q.double()
        gap = 0.5 * (-(G * P64).sum(1) + rr)
        # exact line search along p; X~ p came out of the CG iterations, so the step needs no pass over X
        t = line_search(Z64, Q64, Yk64, C, _dot(Vk, P), _dot(P, P))
        Vn = Vk.double() + t[:, None] * P64
        V[todo] = Vn.to(dt)
        fin = gap <= tol * fk
        if bool(fin.any()):
            Zt = Z64 + t * Q64
            slack = torch.clamp(1 - Yk64 * Zt, min=0)
            objective[todo] = torch.where(fin, 0.5 * (Vn * Vn).sum(1) + C * (slack * slack).sum(0), fk)
            todo = todo[~fin]
    converged = todo.numel() == 0
    W = V[:, :d].double()
    b = V[:, d].double()
    return Result(W, b, objective, n_iter, converged)


_WAIT_PASSES = 4  # Hessian passes a class that finished its CG may sit out waiting for company in the exact pass
_ALONG_PATIENCE = 3  # CG iterations without a lower objective along the iterates before the CG ends (0: never)


def _lowp_newton(
    prob: Problem, C: float, V: torch.Tensor, tol: float, max_iter: int, lowp: torch.Tensor, n_iter0: int
) -> Result:
    """The Newton-CG of primal_newton with the bfloat16 Hessian, each class on its own clock.

    Every class makes the same Newton steps, with the same CG targets, as in the lock-step loop (but for the stop
    along the objective, below): classes never interact there either. What changes is the schedule. In lock step a
    Newton step lasts as long as its slowest class's CG, and a pass over the bfloat16 rows costs almost as much for
    one direction as for ten (0.36 against 0.43 s on 40,000 x 28,672, docs/perf-log.md), so the
    classes that finished sat idle in passes that carried one or two. Here a class that finishes its CG takes its
    step at once and waits only for the exact (float32) pass that gives its next gradient; that pass is shared by
    every class waiting for it, and is run when no CG is left to run or a waiting class has sat out _WAIT_PASSES
    Hessian passes (it costs 1.0 s for one class, 2.3 s for ten, so running it per class would cost more than the
    waiting saves).

    A CG may also end before its target, at its best iterate by the true objective. The CG minimises the quadratic
    model of f on the current active sets; at a large C a step changes many of them, the model stops describing f,
    and the line search cuts the finished step (54% of the CG iterations went into steps cut below t = 0.5 on 10,000
    rows of CIFAR-10 DCGAN features, C = 1e-2 then 0.1). While every row is read, the pass gives X~ d, so X~ p of
    each iterate is at hand and f(v + t p), minimised over t (_ray_minimum), costs no pass over X. Once
    _ALONG_PATIENCE iterations have not lowered it, the CG ends at the best iterate. The optimum is unchanged (the
    stopping test is the exact gradient one); near it the active sets settle and f along the iterates is the model,
    which CG lowers at every iteration (up to the bfloat16 rounding of the products), so it does not fire there.
    Measured on 10,000 x 28,672 (docs/perf-log.md): at C = 0.1, 3,401 -> 1,251 passes.
    """
    n, d, K, dt, dev = prob.n, prob.d, prob.K, prob.dtype, prob.device
    f64 = torch.float64
    Y64 = prob.Y64
    objective = torch.zeros(K, dtype=f64, device=dev)
    gfirst = torch.full((K,), math.nan, dtype=f64, device=dev)
    prev_obj = torch.full((K,), math.inf, dtype=f64, device=dev)
    target = torch.zeros(K, dtype=f64, device=dev)
    rz = torch.zeros(K, dtype=f64, device=dev)
    rr = torch.zeros(K, dtype=f64, device=dev)
    P = torch.zeros(K, d + 1, dtype=dt, device=dev)
    R = torch.zeros(K, d + 1, dtype=f64, device=dev)
    D = torch.zeros(K, d + 1, dtype=f64, device=dev)
    G = torch.zeros(K, d + 1, dtype=f64, device=dev)
    Z = torch.zeros(n, K, dtype=f64, device=dev)  # exact margins where each class's current step started
    Q = torch.zeros(n, K, dtype=torch.float32, device=dev)  # X~ p of each class's CG iterate
    act = torch.zeros(n, K, dtype=torch.bool, device=dev)
    bank = _Preconditioner(problem_subspace(prob), act, C)  # each class's block is rebuilt as its step starts
    state = ["grad"] * K  # grad: waits for the exact pass; cg: in its CG; done
    steps = [0] * K
    cg_iters = [0] * K
    waited = [0] * K
    q_whole = [True] * K  # Q[:, k] was accumulated over every row (not over a subset of the rows)
    last: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # k -> (V, p, margins) of its last step
    converged = [False] * K
    rows_idx: torch.Tensor | None = None  # the rows the Hessian passes read (None: all)
    # the along-the-CG stop: the objective at the best point of each CG iterate's ray, the best iterate so far
    best_phi = torch.zeros(K, dtype=f64, device=dev)
    best_P = torch.zeros(K, d + 1, dtype=dt, device=dev)
    best_Q = torch.zeros(n, K, dtype=torch.float32, device=dev)
    best_at = [0] * K  # CG iteration of the best iterate (0: none lowered the objective yet)
    cut_short = [False] * K
    along_stops = 0
    rows_used, act_used = lowp, act

    def subset_rows() -> None:
        # the Hessian passes read only rows active for some class in its CG (at a large C most are inactive)
        nonlocal rows_idx, rows_used, act_used
        cgk = [k for k in range(K) if state[k] == "cg"]
        union = act[:, cgk].any(1) if cgk else torch.zeros(n, dtype=torch.bool, device=dev)
        need = int(union.sum())
        if rows_idx is not None:
            inside = torch.zeros(n, dtype=torch.bool, device=dev)
            inside[rows_idx] = True
            if not bool((union & ~inside).any()) and 2 * need >= rows_idx.numel():
                act_used = act.index_select(0, rows_idx)
                return
        if need < 0.75 * n:
            rows_idx = torch.nonzero(union).reshape(-1)
            rows_used = lowp  # drop the old copy of the rows before taking the new one (up to 1.7 GB each)
            rows_used, act_used = lowp.index_select(0, rows_idx), act.index_select(0, rows_idx)
        else:
            rows_idx, rows_used, act_used = None, lowp, act

    while True:
        # classes whose CG reached its target take their step: the exact line search along p
        fin = [k for k in range(K) if state[k] == "cg" and (rr[k] <= target[k] or cg_iters[k] >= _CG_MAX_ITER
                                                           or cut_short[k])]
        if fin:
            ks = torch.tensor(fin, device=dev)
            partial = [j for j, k in enumerate(fin) if not q_whole[k]]
            if partial:
                Q[:, ks[partial]] = _lowp_forward(prob, lowp, P[ks[partial]])
            P64, V64 = P[ks].double(), V[ks].double()
            t = line_search(Z[:, ks], Q[:, ks].double(), Y64[:, ks], C, (V64 * P64).sum(1), (P64 * P64).sum(1))
            V[ks] = (V64 + t[:, None] * P64).to(dt)
            log.debug("primal newton: classes %s took steps %s after %s CG iterations, line search %s", fin,
                      [steps[k] for k in fin], [cg_iters[k] for k in fin], t.tolist())
            for j, k in enumerate(fin):
                last[k] = (V64[j], P64[j], Z[:, k].clone())
                state[k], waited[k] = "grad", 0
        grad = [k for k in range(K) if state[k] == "grad"]
        live = [k for k in range(K) if state[k] == "cg"]
        if not grad and not live:
            break
        if grad and (not live or max(waited[k] for k in grad) >= _WAIT_PASSES):
            Z64, actk, fk, Gk = _exact_gradient(prob, C, V[grad], torch.tensor(grad, device=dev))
            gnorm = Gk.norm(dim=1)
            log.debug("primal newton (classes %s): objective %s, |g| %s", grad, fk.tolist(), gnorm.tolist())
            retake, start = [], []
            for j, k in enumerate(grad):
                f, g = float(fk[j]), float(gnorm[j])
                if k in last and f > float(prev_obj[k]) + 1e-12 * abs(f):
                    retake.append(k)  # the line search ran on the approximate X~ p: retake it with the exact one
                    continue
                last.pop(k, None)
                objective[k] = f
                if math.isnan(float(gfirst[k])):
                    gfirst[k] = g
                stalled = float(prev_obj[k]) - f <= 1e-12 * abs(f)  # no decrease left at the working precision
                if 0.5 * g * g <= tol * f or stalled:
                    state[k], converged[k] = "done", True
                    continue
                if steps[k] >= max_iter:
                    state[k] = "done"
                    continue
                steps[k] += 1
                prev_obj[k] = f
                # inexact Newton, as in primal_newton: CG to relative residual eta, no further than needed
                eta = min(math.sqrt(g / float(gfirst[k])), _FORCING_MAX)
                target[k] = max((eta * g) ** 2, _TARGET_FLOOR * tol * f)
                Z[:, k], act[:, k], G[k] = Z64[:, j], actk[:, j], Gk[j]
                start.append(k)
            if retake:
                rk = torch.tensor(retake, device=dev)
                lV = torch.stack([last[k][0] for k in retake])
                lP = torch.stack([last[k][1] for k in retake])
                lZ = torch.stack([last[k][2] for k in retake], 1)
                Qx = prob.forward(lP, torch.float64)
                t = line_search(lZ, Qx, Y64[:, rk], C, (lV * lP).sum(1), (lP * lP).sum(1))
                V[rk] = (lV + t[:, None] * lP).to(dt)
                for k in retake:
                    del last[k]
            if start:
                ks = torch.tensor(start, device=dev)
                bank.refactor(ks, act[:, ks], C)
                R[ks] = -G[ks]
                Zr = bank.apply(R[ks], ks)
                D[ks] = Zr
                rz[ks] = (R[ks] * Zr).sum(1)
                rr[ks] = (R[ks] * R[ks]).sum(1)
                P[ks] = 0
                Q[:, ks] = 0
                for k in start:
                    state[k], cg_iters[k], q_whole[k] = "cg", 0, True
                    best_phi[k], best_at[k], cut_short[k] = objective[k], 0, False
                subset_rows()
            for k in grad:
                waited[k] = 0
            continue
        # one Hessian pass for every class in its CG
        live = [k for k in live if rr[k] > target[k]]
        lv = torch.tensor(live, device=dev)
        Dl = D[lv]
        T = torch.empty(rows_used.shape[0], len(live), dtype=dt, device=dev)
        Hw, Hb = _lowp_pass(prob, rows_used, Dl, act_used[:, lv].to(dt), T)
        HD = Dl + 2 * C * torch.cat([Hw, Hb[:, None]], 1)
        alpha = rz[lv] / (Dl * HD).sum(1)
        P[lv] += (alpha[:, None] * Dl).to(dt)
        if rows_idx is None:
            Q[:, lv] += T * alpha.float()[None, :]
            if _ALONG_PATIENCE:
                # the true objective along each iterate (X~ p is at hand: no pass over X); a CG whose iterates
                # stopped lowering it ends at its best one
                phi = _ray_minimum(Z[:, lv], Q[:, lv], Y64[:, lv], C, V[lv], P[lv])
                for j, k in enumerate(live):
                    it = cg_iters[k] + 1
                    if float(phi[j]) < float(best_phi[k]):
                        best_phi[k], best_at[k] = phi[j], it
                        best_P[k] = P[k]
                        best_Q[:, k] = Q[:, k]
                    elif best_at[k] and it - best_at[k] >= _ALONG_PATIENCE:
                        cut_short[k] = True
                        along_stops += 1
                        P[k] = best_P[k]
                        Q[:, k] = best_Q[:, k]
        else:
            for k in live:
                q_whole[k] = False
        Rl = R[lv] - alpha[:, None] * HD
        R[lv] = Rl
        rr[lv] = (Rl * Rl).sum(1)
        Zl = bank.apply(Rl, lv)
        rz_new = (Rl * Zl).sum(1)
        D[lv] = Zl + (rz_new / rz[lv])[:, None] * Dl
        rz[lv] = rz_new
        for k in live:
            cg_iters[k] += 1
        for k in grad:
            waited[k] += 1
    log.debug("primal newton: %d CGs ended at their best iterate along the objective", along_stops)
    W = V[:, :d].double()
    b = V[:, d].double()
    return Result(W, b, objective, n_iter0 + max(steps), all(converged))


def _ray_minimum(
    Z: torch.Tensor, Q: torch.Tensor, Y: torch.Tensor, C: float, V: torch.Tensor, P: torch.Tensor
) -> torch.Tensor:
    """min over t >= 0 of the objective f(v + t p) = |v + t p|^2 / 2 + C sum max(0, 1 - y (z + t q))^2, per class:
    margins Z = X~ v (n, k), Q = X~ p (n, k), labels Y (n, k) of +-1, points V and directions P (k, d+1).
    Returns (k,) float64."""
    V64, P64, Q64 = V.double(), P.double(), Q.double()
    t = line_search(Z, Q64, Y, C, (V64 * P64).sum(1), (P64 * P64).sum(1))
    slack = torch.clamp(1 - Y * (Z + t * Q64), min=0)
    return 0.5 * ((V64 + t[:, None] * P64) ** 2).sum(1) + C * (slack * slack).sum(0)


def path_predictor(prob: Problem, C: float, V0: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """The start of a fit along a C path: the minimiser of this C's objective on the ray V0 + t T, t >= 0, per
    class (V0: the previous C's solution, T: the path's last step scaled to this one; both (K, d+1) float64).

    An extrapolation in log C is a better guess than the previous solution wherever the path is smooth, and the
    exact line search (one pass over X for both) can only lower the objective below the previous solution's
    (t = 0), so a poor guess costs one pass and nothing more. Measured on 40,000 x 28,672 DCGAN features: 152 ->
    115 passes at C = 1e-3 from the 3e-4 solution; at C = 0.1 on a 10x grid no gain beyond the run-to-run spread
    (results/benchmarks/protocols.md). Returns (K, d+1) in the compute dtype.
    """
    k = V0.shape[0]
    Z = prob.forward(torch.cat([V0, T]), torch.float64)
    t = line_search(Z[:, :k], Z[:, k:], prob.Y64, C, (V0 * T).sum(1), (T * T).sum(1))
    log.debug("path predictor: steps %s", t.tolist())
    return (V0 + t[:, None] * T).to(prob.dtype)


def _conjugate_gradient(
    prob: Problem,
    C: float,
    G: torch.Tensor,
    act: torch.Tensor,
    target: torch.Tensor,
    precond: _Preconditioner,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Solve (I + 2C X~_A^T X~_A) p_k = -g_k for every class k at once, until ||r_k||^2 <= target_k.

    Preconditioned conjugate gradients with exact (compute dtype) products; the bfloat16 ones run in _lowp_newton.
    Returns p (k, d+1), X~ p (n, k) and ||r||^2 (k,) float64. Each Hessian-vector product is one fused pass over
    X; classes that are done drop out of the pass.
    """
    n, dt, dev = prob.n, prob.dtype, prob.device
    k = G.shape[0]
    everyone = torch.arange(k, device=dev)
    P = torch.zeros_like(G)
    Q = torch.zeros(n, k, dtype=dt, device=dev)
    R = -G.double()
    Zr = precond.apply(R, everyone)
    D = Zr.clone()
    rz = (R * Zr).sum(1)
    rr = (R * R).sum(1)
    live = everyone
    for step in range(_CG_MAX_ITER):
        live = live[rr[live] > target[live]]
        if live.numel() == 0:
            break
        log.debug("  cg %d: %d classes left", step, live.numel())
        Dl = D[live]
        actl = act[:, live]
        T = torch.empty(n, live.numel(), dtype=dt, device=dev)

        def hv_weight(a: int, b: int, z: torch.Tensor, T=T, actl=actl) -> torch.Tensor:
            T[a:b] = z
            return z * actl[a:b]

        Hw, Hb = fused_pass(prob, Dl.to(dt), hv_weight)
        HD = Dl + 2 * C * torch.cat([Hw, Hb[:, None]], 1)
        alpha = rz[live] / (Dl * HD).sum(1)
        P[live] += (alpha[:, None] * Dl).to(dt)
        Q[:, live] += (T.double() * alpha[None, :]).to(dt)
        Rl = R[live] - alpha[:, None] * HD
        R[live] = Rl
        rr[live] = (Rl * Rl).sum(1)
        Zl = precond.apply(Rl, live)
        rz_new = (Rl * Zl).sum(1)
        beta = rz_new / rz[live]
        rz[live] = rz_new
        D[live] = Zl + beta[:, None] * Dl
    return P, Q, rr


def fast_bfloat16(device: torch.device) -> bool:
    """Whether bfloat16 matrix products are native on this device (a CPU with AVX512-BF16 or AMX, any CUDA GPU)."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def problem_lowp(prob: Problem, hessian_dtype: str) -> torch.Tensor | None:
    """The centred rows X~ (n, d) in bfloat16, held in memory for the CG's Hessian-vector products, or None.

    hessian_dtype "bfloat16" always builds it, "float32" never, "auto" on the CPU where bfloat16 products are
    native and the copy takes under a third of the free memory. Only the Hessian is approximated with it: the
    gradient, objective, margins and stopping test stay in the compute dtype, so the optimum is the one the exact
    products define; an approximate Hessian only changes the path there (inexact Newton).
    """
    if hessian_dtype == "float32" or prob.dtype != torch.float32:
        return None
    if hessian_dtype == "auto":
        if prob.device.type != "cpu" or not fast_bfloat16(prob.device):
            return None
        if 2 * prob.n * prob.d > available_bytes(prob.device) / 3:
            return None
    if prob.lowp is None:
        Xb = torch.empty(prob.n, prob.d, dtype=torch.bfloat16, device=prob.device)
        for a, b, chunk in prob.rows.chunks():
            Xb[a:b] = chunk
        prob.lowp = Xb
    return prob.lowp


def _lowp_pass(
    prob: Problem, Xb: torch.Tensor, D: torch.Tensor, act: torch.Tensor, T: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """X~^T (act * X~ d) for directions D (k, d+1) from the bfloat16 rows Xb: native bfloat16 matrix products
    (float32 accumulation, results rounded to bfloat16), the mean and intercept terms in float64. Writes X~ d
    into T (n, k).

    Both products run on one block of LOWP_BLOCK rows at a time, so the second reads the block while it is
    still in the cache instead of a second pass over the whole copy from memory (0.35 -> 0.27 s a product on
    40,000 x 28,672, 10 directions, 2 cores).
    """
    d = prob.d
    prob.rows.passes += 1  # a pass over (a copy of) X
    Dw = D[:, :d]
    off = (Dw.double() @ prob.m64 + D[:, d].double()).float()
    Db = Dw.to(torch.bfloat16)
    acc = torch.zeros(D.shape[0], d, dtype=torch.float32, device=Xb.device)
    ub = torch.zeros(D.shape[0], dtype=torch.float64, device=Xb.device)
    for a in range(0, Xb.shape[0], LOWP_BLOCK):
        block = Xb[a:a + LOWP_BLOCK]
        z = (Db @ block.T).T.float().add_(off).contiguous()  # (D X^T)^T: faster than X D^T for few directions
        T[a:a + LOWP_BLOCK] = z
        u = z.mul_(act[a:a + LOWP_BLOCK])
        ub += u.sum(0, dtype=torch.float64)
        acc += u.to(torch.bfloat16).T @ block  # the block's sum, added in float32
    return acc.double() + ub[:, None] * prob.m64[None, :], ub


def _lowp_forward(prob: Problem, Xb: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """X~ v (n, k) float32 for V (k, d+1) from the bfloat16 rows."""
    prob.rows.passes += 1
    d = prob.d
    off = (V[:, :d].double() @ prob.m64 + V[:, d].double()).float()
    return (V[:, :d].to(torch.bfloat16) @ Xb.T).T.float().add_(off)


def problem_subspace(prob: Problem) -> _Subspace:
    """The problem's preconditioning subspace, built once per problem (a C path reuses it)."""
    if prob.subspace is None:
        itemsize = torch.empty((), dtype=prob.dtype).element_size()
        rank = min(PRECONDITIONER_RANK, max(16, SUBSPACE_BYTES // (prob.n * itemsize)))
        prob.subspace = _build_subspace(prob, rank)
    return prob.subspace
