"""Regularised linear L2-SVMs (squared hinge, one-vs-rest) for probing discriminator features.

For every class k, with y_i = +1 where the label is k and -1 elsewhere, the probe minimises

    f_k(w, b) = 0.5 * ||w||^2 + 0.5 * b^2 + C * sum_i max(0, 1 - y_i (w . x_i + b))^2,

which is exactly scikit-learn's ``LinearSVC(loss="squared_hinge", penalty="l2", fit_intercept=True,
intercept_scaling=1, multi_class="ovr")``: liblinear appends a constant feature 1 to every sample, so the
intercept is regularised like any weight. No feature scaling is applied (the DCGAN authors used none).

Two backends share one scikit-learn style interface (:class:`L2SVM`):

* ``backend="sklearn"`` wraps ``LinearSVC`` (the reference; it copies X to float64 and more).
* ``backend="torch"`` is ganbench's own solver, on the CPU or a GPU, all classes at once. X may be a float16,
  float32 or float64 array or ``np.memmap``; it is read in row chunks that are converted to the compute dtype
  on the fly, so X is never held in float32 in full. Two exact solvers:

  - ``"primal"`` (picked when n_samples >= n_features): a finite Newton method with conjugate-gradient inner
    solves on the current active set and an exact line search on the piecewise-quadratic objective
    (Keerthi & DeCoste 2005, "A modified finite Newton method for fast solution of large scale linear SVMs",
    JMLR 6; the generalised Hessian of the squared hinge is the one used by Lin, Weng & Keerthi 2008,
    "Trust region Newton method for large-scale logistic regression", for liblinear's L2-loss SVM). A
    Hessian-vector product costs one pass over X: each chunk is multiplied by the K directions and back.
    CG is preconditioned exactly on a subspace of the top principal directions of X (from a row sample) and
    by a Jacobi diagonal on its complement, and the solution restricted to that subspace is the cold start.
  - ``"dual"`` (picked when n_samples < n_features): Newton's method in the span of the data (Chapelle 2007,
    "Training a support vector machine in the primal", Neural Computation 19): with w = sum_i beta_i x_i and
    Gram matrix K_ij = x_i . x_j + 1, each step solves (K_SS + I / (2C)) beta_S = y_S by Cholesky on the
    support set S = {i : y_i f(x_i) < 1} and sets beta = 0 elsewhere; an exact line search makes it globally
    convergent and it stops when S repeats (finite convergence). The Gram matrix is kept in float64.

Both subtract the column mean of X before the float32 products and add its contribution back exactly in
float64 (the identities x.w = (x - m).w + m.w and X^T u = (X - 1 m^T)^T u + m (1^T u)): DCGAN features are
non-negative with a mean as large as their spread, and the uncentred float32 products would lose digits.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning

from ganbench.errors import ConfigError

__all__ = ["L2SVM", "fit_path", "gram_matrix", "squared_hinge_objective"]

log = logging.getLogger(__name__)

BACKENDS = ("torch", "sklearn")
SOLVERS = ("auto", "primal", "dual")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
CHUNK_BYTES = 256 * 2**20  # one converted row chunk
_CG_MAX_ITER = 500  # conjugate-gradient steps per Newton step (each is a pass over X)
PRECONDITIONER_RANK = 512  # dimension of the subspace on which the primal's CG is preconditioned exactly
SUBSPACE_BYTES = 2**30  # at most this much for X~ U^T (n x rank in the compute dtype): the rank shrinks


# ----------------------------------------------------------------------------------------------- validation


def _check_C(C: Any, name: str = "C") -> float:
    if isinstance(C, bool) or not isinstance(C, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a positive number, got {C!r}")
    if not math.isfinite(float(C)) or float(C) <= 0:
        raise ConfigError(f"{name} must be a positive finite number, got {C!r}; try values like 0.01, 0.1, 1")
    return float(C)


def _check_params(est: L2SVM) -> None:
    _check_C(est.C)
    if est.backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, got {est.backend!r}")
    if est.solver not in SOLVERS:
        raise ConfigError(f"solver must be one of {SOLVERS}, got {est.solver!r}")
    if est.dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {tuple(DTYPES)}, got {est.dtype!r}")
    tol = est.tol
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0 < tol < 1):
        raise ConfigError(f"tol must be a number in (0, 1), got {tol!r}")
    for name in ("max_iter", "chunk_rows"):
        value = getattr(est, name)
        if value is None and name == "chunk_rows":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _device(device: Any) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"device must name a torch device such as 'cpu' or 'cuda', got {device!r}"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} was asked for but torch sees no CUDA GPU; use device='cpu'")
    return dev


def _as_matrix(X: Any, name: str = "X") -> np.ndarray:
    """X as a 2-D numpy array; float16/32/64 arrays and memmaps are not copied (others become float32)."""
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if not isinstance(X, np.ndarray):
        try:
            X = np.asarray(X)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a 2-D numeric array, got {type(X).__name__}") from None
    if X.ndim != 2:
        raise ConfigError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ConfigError(f"{name} must have at least one sample and one feature, got shape {X.shape}")
    if X.dtype.kind != "f" or X.dtype.itemsize not in (2, 4, 8):
        if X.dtype.kind not in "biuf":
            raise ConfigError(f"{name} must hold numbers, got dtype {X.dtype}")
        X = X.astype(np.float32)
    if not X.dtype.isnative:
        X = X.astype(X.dtype.newbyteorder("="))
    return X


def _labels(y: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(classes, index of each sample's class) for labels y of n samples."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ConfigError(f"y must be 1-D (one label per sample), got shape {y.shape}")
    if len(y) != n:
        raise ConfigError(f"X has {n} samples but y has {len(y)} labels; pass one label per row of X")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ConfigError("y has NaN or infinite labels; pass finite class labels")
    classes, index = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ConfigError(f"y must hold at least 2 classes, got only {classes.tolist()!r}")
    return classes, index.reshape(-1)


# ------------------------------------------------------------------------------------------------ row chunks


class _Rows:
    """Row chunks of X on the compute device in the compute dtype, optionally minus a centre vector."""

    def __init__(
        self, X: np.ndarray, device: torch.device, dtype: torch.dtype, chunk_rows: int | None = None
    ) -> None:
        self.X = X
        self.n, self.d = X.shape
        self.device = device
        self.dtype = dtype
        itemsize = torch.empty((), dtype=dtype).element_size()
        self.chunk_rows = int(chunk_rows) if chunk_rows else max(1, CHUNK_BYTES // (self.d * itemsize))
        self.chunk_rows = min(self.chunk_rows, self.n)
        self.center: torch.Tensor | None = None  # (d,) in dtype, subtracted from every row when set
        self._buffers: dict[int, torch.Tensor] = {}
        self._resident: torch.Tensor | None = None
        self.passes = 0
        if device.type != "cpu":
            # A GPU has room for X in its own (often float16) dtype: upload it once instead of once per pass.
            free, _ = torch.cuda.mem_get_info(device)
            if X.nbytes < 0.4 * free:
                self._resident = torch.empty(X.shape, dtype=_torch_dtype(X.dtype), device=device)
                for a in range(0, self.n, self.chunk_rows):
                    b = min(a + self.chunk_rows, self.n)
                    self._resident[a:b].copy_(_from_numpy(X[a:b]))

    def _buffer(self, slot: int) -> torch.Tensor:
        buf = self._buffers.get(slot)
        if buf is None:
            buf = torch.empty(self.chunk_rows, self.d, dtype=self.dtype, device=self.device)
            self._buffers[slot] = buf
        return buf

    def block(self, a: int, b: int, slot: int = 0, center: bool = True) -> torch.Tensor:
        """Rows a..b-1 converted (and centred when a centre is set and center=True); valid until reused."""
        if self._resident is not None:
            src = self._resident[a:b]
        else:
            src = _from_numpy(self.X[a:b])
            if self.device.type != "cpu":
                src = src.to(self.device, non_blocking=False)
        shift = self.center if center else None
        if shift is None and src.dtype == self.dtype:
            return src  # zero-copy view, only ever read
        out = self._buffer(slot)[: b - a]
        out.copy_(src)
        if shift is not None:
            out.sub_(shift)
        return out

    def chunks(self, center: bool = True) -> Iterator[tuple[int, int, torch.Tensor]]:
        self.passes += 1
        for a in range(0, self.n, self.chunk_rows):
            b = min(a + self.chunk_rows, self.n)
            yield a, b, self.block(a, b, 0, center)

    def release(self) -> None:
        self._buffers.clear()
        self._resident = None


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return {2: torch.float16, 4: torch.float32, 8: torch.float64}[np.dtype(dtype).itemsize]


def _from_numpy(a: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():
        # read-only memmaps: the tensor is only ever read
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(a))


def _nonfinite_error(rows: _Rows, a: int, b: int, chunk: torch.Tensor, name: str = "X") -> ConfigError:
    if torch.isfinite(chunk).all():
        return ConfigError(
            f"{name} rows {a}..{b - 1} have values too large for {str(rows.dtype)[6:]} sums; rescale the "
            f"features"
        )
    return ConfigError(f"{name} has NaN or infinite values in rows {a}..{b - 1}; remove or impute them")


def _mean_and_check(rows: _Rows) -> torch.Tensor:
    """Column means of X (float64), checking chunk by chunk that every value is finite."""
    total = torch.zeros(rows.d, dtype=torch.float64, device=rows.device)
    for a, b, chunk in rows.chunks(center=False):
        s = chunk.sum(0)  # NaN/inf anywhere in the chunk shows up here, at a tenth of isfinite's cost
        if not bool(torch.isfinite(s).all()):
            raise _nonfinite_error(rows, a, b, chunk)
        total += s.double()
    return total / rows.n


# --------------------------------------------------------------------------------------------- the problem


class _Problem:
    """One training set on one device: row chunks of X centred by its column mean, +-1 targets, Gram cache."""

    def __init__(self, X: Any, y: Any, device: torch.device, dtype: torch.dtype, chunk_rows: int | None):
        X = _as_matrix(X)
        self.classes, index = _labels(y, X.shape[0])
        self.n, self.d = X.shape
        self.K = len(self.classes)
        self.rows = _Rows(X, device, dtype, chunk_rows)
        self.device, self.dtype = device, dtype
        mean = _mean_and_check(self.rows)
        self.rows.center = mean.to(dtype)
        self.m64 = self.rows.center.double()  # the centre exactly as subtracted
        Y = -torch.ones(self.n, self.K, dtype=torch.float64, device=device)
        Y[torch.arange(self.n, device=device), torch.as_tensor(index, device=device)] = 1.0
        self.Y64 = Y
        self.Y = Y.to(dtype)
        self._gram: _Gram | None = None
        self._subspace: _Subspace | None = None

    def gram(self) -> _Gram:
        if self._gram is None:
            self._gram = _centered_gram(self.rows, self.m64)
        return self._gram

    def forward(self, V: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
        """(n, k) products X~ V^T for V (k, d+1) (last column: the intercept's weight), one pass over X."""
        V = V.to(self.dtype)
        off = (V[:, : self.d].double() @ self.m64 + V[:, self.d].double()).to(self.dtype)
        Vt = V[:, : self.d].T
        Z = torch.empty(self.n, V.shape[0], dtype=out_dtype or self.dtype, device=self.device)
        for a, b, chunk in self.rows.chunks():
            Z[a:b] = torch.addmm(off, chunk, Vt)
        return Z

    def margins(self, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(n, K) float64 values X W^T + b for float64 W (K, d), b (K,)."""
        return self.forward(torch.cat([W, b[:, None]], 1), torch.float64)

    def subspace(self) -> _Subspace:
        if self._subspace is None:
            itemsize = torch.empty((), dtype=self.dtype).element_size()
            rank = min(PRECONDITIONER_RANK, max(16, SUBSPACE_BYTES // (self.n * itemsize)))
            self._subspace = _build_subspace(self, rank)
        return self._subspace


# ---------------------------------------------------------------------------------------------- line search


def _line_search(
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


# -------------------------------------------------------------------------------------------- primal solver


@dataclass
class _Result:
    W: torch.Tensor  # (K, d) float64
    b: torch.Tensor  # (K,) float64
    objective: torch.Tensor  # (K,) float64
    n_iter: int
    converged: bool


def _fused_pass(
    prob: _Problem, V: torch.Tensor | None, weight: Callable[[int, int, Any], torch.Tensor]
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


def _dot(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    return (A.double() * B.double()).sum(1)


@dataclass
class _Subspace:
    """Orthonormal rows U (r, d+1) spanning the directions where X~^T X~ is large, X~ U^T (n, r), and the
    column energies sum_i ((I - U^T U) x~_i)_j^2 (d+1,) float64 of what U leaves out."""

    U: torch.Tensor
    XU: torch.Tensor
    rest: torch.Tensor


def _build_subspace(prob: _Problem, rank: int) -> _Subspace:
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
            _from_numpy(np.asarray(prob.rows.X[idx[i : i + step]])).to(dev).to(dt) - prob.rows.center
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
    for a, b, chunk in prob.rows.chunks():
        xu = torch.addmm(off, chunk, Uw.T)
        XU[a:b] = xu
        resid = torch.addmm(chunk + m, xu, Uw, alpha=-1)
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
        self.U = sub.U.double()
        r = sub.U.shape[0]
        n = act.shape[0]
        eye = torch.eye(r, dtype=torch.float64, device=act.device)
        chol = []
        for j in range(act.shape[1]):
            rows = sub.XU[act[:, j]]
            core = eye + 2 * C * (rows.T @ rows).double()
            chol.append(torch.linalg.cholesky(core))
        self.L = torch.stack(chol)  # (k, r, r)
        share = act.sum(0).double() / n
        self.S = 1 + 2 * C * share[:, None] * sub.rest[None, :]  # (k, d+1)

    def apply(self, R: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """M^-1 R for residuals R (len(cols), d+1) of the classes cols (float64 result)."""
        R = R.double()
        U = self.U
        c = R @ U.T
        inner = torch.cholesky_solve(c[:, :, None], self.L[cols])[:, :, 0]
        out = (R - c @ U) / self.S[cols]
        return out - (out @ U.T) @ U + inner @ U


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
        t = _line_search(Z, Q, Y, C, (c * P).sum(1), (P * P).sum(1))
        c += t[:, None] * P
        Z += t * Q
        steps += 1
    return c @ sub.U.double(), steps


def _primal_newton(
    prob: _Problem, C: float, W0: torch.Tensor | None, b0: torch.Tensor | None, tol: float, max_iter: int
) -> _Result:
    """Modified finite Newton (Keerthi & DeCoste 2005) for all classes at once; see the module docstring.

    A class stops when its relative suboptimality (f - f*) / f is certainly below tol: either from the
    gradient (f is 1-strongly convex, so f - f* <= ||g||^2 / 2) or from the Newton decrement of the step just
    taken (f - f* of the local quadratic is (p.Hp + r.H^-1 r) / 2 <= (-g.p + ||r||^2) / 2 for the CG iterate p
    with residual r, since CG keeps p.r = 0 and H >= I).
    """
    n, d, K, dt = prob.n, prob.d, prob.K, prob.dtype
    dev = prob.device
    f64 = torch.float64
    Y, Y64 = prob.Y, prob.Y64
    V = torch.zeros(K, d + 1, dtype=dt, device=dev)
    n_iter = 0
    if W0 is not None:
        V[:, :d] = W0.to(dt)
        V[:, d] = b0.to(dt)
    else:
        start, n_iter = _subspace_start(prob.subspace(), Y64, C, tol)
        V[:] = start.to(dt)
    objective = torch.zeros(K, dtype=f64, device=dev)
    gfirst = torch.zeros(K, dtype=f64, device=dev)
    prev_obj = torch.full((K,), math.inf, dtype=f64, device=dev)
    todo = torch.arange(K, device=dev)  # classes not yet converged
    first = True
    while todo.numel():
        k = todo.numel()
        Yk, Yk64 = Y[:, todo], Y64[:, todo]
        Vk = V[todo]
        Z = torch.empty(n, k, dtype=dt, device=dev)

        def grad_weight(a: int, b: int, z: torch.Tensor, Yk=Yk, Z=Z) -> torch.Tensor:
            Z[a:b] = z
            y = Yk[a:b]
            return torch.where(y * z < 1, z - y, torch.zeros((), dtype=dt, device=dev))

        Gw, Gb = _fused_pass(prob, Vk, grad_weight)
        Z64 = Z.double()
        act = Yk64 * Z64 < 1
        R = torch.where(act, Z64 - Yk64, torch.zeros((), dtype=f64, device=dev))
        fk = 0.5 * _dot(Vk, Vk) + C * (R * R).sum(0)
        objective[todo] = fk
        G = torch.cat([Vk.double()[:, :d] + 2 * C * Gw, (Vk[:, d].double() + 2 * C * Gb)[:, None]], 1)
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
        eta = torch.clamp(torch.sqrt(gnorm / gfirst[todo]), max=0.1)
        target = torch.maximum((eta * gnorm) ** 2, 0.2 * tol * fk)
        precond = _Preconditioner(prob.subspace(), act, C)
        P, Q, rr = _conjugate_gradient(prob, C, G.to(dt), act.to(dt), target, precond)
        P64, Q64 = P.double(), Q.double()
        gap = 0.5 * (-(G * P64).sum(1) + rr)
        # exact line search along p; X~ p came out of the CG iterations, so the step needs no pass over X
        t = _line_search(Z64, Q64, Yk64, C, _dot(Vk, P), _dot(P, P))
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
    return _Result(W, b, objective, n_iter, converged)


def _conjugate_gradient(
    prob: _Problem,
    C: float,
    G: torch.Tensor,
    act: torch.Tensor,
    target: torch.Tensor,
    precond: _Preconditioner,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Solve (I + 2C X~_A^T X~_A) p_k = -g_k for every class k at once, until ||r_k||^2 <= target_k.

    Preconditioned conjugate gradients. Returns p (k, d+1), X~ p (n, k) and ||r||^2 (k,) float64. Each
    Hessian-vector product is one fused pass over X; classes that are done drop out of the pass.
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

        Hw, Hb = _fused_pass(prob, Dl.to(dt), hv_weight)
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


# ---------------------------------------------------------------------------------------------- dual solver


@dataclass
class _Gram:
    """K~ = X X^T + 1 (float64): the centred products (X - 1m^T)(X - 1m^T)^T, taken in the compute dtype, plus
    the rank-one terms v 1^T + 1 v^T + (m.m + 1) with v = (X - 1m^T) m, added in float64."""

    K: torch.Tensor  # (n, n) float64

    def matmul(self, B: torch.Tensor) -> torch.Tensor:
        return self.K @ B

    def sub(self, idx: torch.Tensor) -> torch.Tensor:
        return self.K.index_select(0, idx).index_select(1, idx)  # much faster than K[idx[:, None], idx]


def _centered_gram(rows: _Rows, m64: torch.Tensor) -> _Gram:
    n = rows.n
    Kc = torch.empty(n, n, dtype=torch.float64, device=rows.device)
    v = torch.empty(n, dtype=torch.float64, device=rows.device)
    m = m64.to(rows.dtype)
    step = rows.chunk_rows
    for a in range(0, n, step):
        b = min(a + step, n)
        A = rows.block(a, b, slot=0)
        v[a:b] = (A @ m).double()
        for c in range(0, a + 1, step):
            e = min(c + step, n)
            B = A if c == a else rows.block(c, e, slot=1)
            blk = (A @ B.T).double()
            Kc[a:b, c:e] = blk
            if c != a:
                Kc[c:e, a:b] = blk.T
    rows.passes += 1
    Kc += v[:, None]
    Kc += v[None, :]
    Kc += float(m64 @ m64) + 1.0
    return _Gram(Kc)


def _solve_support(
    gram: _Gram, S: torch.Tensor, Y: torch.Tensor, C: float, cols: torch.Tensor
) -> torch.Tensor:
    """beta (n, len(cols)): beta_S = (K~_SS + I/(2C))^-1 y_S and 0 off S, for each class column in cols."""
    n = S.shape[0]
    B = torch.zeros(n, cols.numel(), dtype=torch.float64, device=S.device)
    # classes with the same support set share one factorisation (all of them at a cold start)
    masks, inverse = torch.unique(S[:, cols].T, dim=0, return_inverse=True)
    for g in range(masks.shape[0]):
        members = torch.nonzero(inverse == g).reshape(-1)
        idx = torch.nonzero(masks[g]).reshape(-1)
        if idx.numel() == 0:
            continue
        A = gram.sub(idx)
        A.diagonal().add_(1.0 / (2.0 * C))
        info = torch.empty((), dtype=torch.int32, device=A.device)
        torch.linalg.cholesky_ex(A, out=(A, info))  # in place: one |S| x |S| matrix at a time
        rhs = Y[idx][:, cols[members]]
        if int(info) == 0:
            sol = torch.cholesky_solve(rhs, A)
        else:  # numerically indefinite (only for enormous C): fall back to a least-squares solve
            A = gram.sub(idx)
            A.diagonal().add_(1.0 / (2.0 * C))
            sol = torch.linalg.lstsq(A, rhs).solution
        B[idx[:, None], members[None, :]] = sol
    return B


def _dual_objective(B: torch.Tensor, Z: torch.Tensor, Y: torch.Tensor, C: float) -> torch.Tensor:
    slack = torch.clamp(1 - Y * Z, min=0)
    return 0.5 * (B * Z).sum(0) + C * (slack * slack).sum(0)


def _dual_newton(
    prob: _Problem, C: float, S0: torch.Tensor | None, max_iter: int
) -> tuple[_Result, torch.Tensor]:
    """Chapelle's primal Newton in the span of the data; returns the result and the margins K~ beta."""
    gram = prob.gram()
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
        t = _line_search(Zt, Q, Yt, C, (Zt * Dl).sum(0), (Dl * Q).sum(0))
        t = torch.where((t - 1).abs() <= 1e-6, torch.ones_like(t), t)  # a full step up to rounding
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
    W, _ = _fused_pass(prob, None, lambda a, b, z: beta[a:b])
    return _Result(W, B.sum(0), obj, n_iter, converged), Z


def gram_matrix(
    X: Any, chunk_rows: int | None = None, device: str | torch.device = "cpu", dtype: str = "float32"
) -> np.ndarray:
    """The (n, n) float64 Gram matrix X X^T + 1 of the samples with the intercept feature appended.

    Products are taken in ``dtype`` on centred row chunks (see the module docstring), so X is never converted
    in full.
    """
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {tuple(DTYPES)}, got {dtype!r}")
    X = _as_matrix(X)
    rows = _Rows(X, _device(device), DTYPES[dtype], chunk_rows)
    rows.center = _mean_and_check(rows).to(rows.dtype)
    return _centered_gram(rows, rows.center.double()).K.cpu().numpy()


# ----------------------------------------------------------------------------------------------- estimator


def squared_hinge_objective(coef: np.ndarray, intercept: np.ndarray, X: Any, y: Any, C: float, classes=None):
    """Per-class one-vs-rest objective 0.5||w||^2 + 0.5 b^2 + C sum max(0, 1 - y(w.x + b))^2, in float64.

    For tests and diagnostics: X is converted to float64 in full.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    classes = np.unique(y) if classes is None else np.asarray(classes)
    coef = np.asarray(coef, dtype=np.float64)
    intercept = np.asarray(intercept, dtype=np.float64)
    Y = np.where(y[:, None] == classes[None, :], 1.0, -1.0)
    Z = X @ coef.T + intercept
    slack = np.maximum(0.0, 1.0 - Y * Z)
    return 0.5 * (coef**2).sum(1) + 0.5 * intercept**2 + C * (slack**2).sum(0)


class L2SVM(ClassifierMixin, BaseEstimator):
    """One-vs-rest linear SVM with squared hinge loss and an L2-regularised intercept (liblinear's objective).

    C: inverse regularisation strength, as in LinearSVC.
    backend: "torch" (ganbench's solver) or "sklearn" (LinearSVC, the reference).
    device: torch device for the torch backend ("cpu", "cuda", "cuda:1").
    tol: torch primal: stop a class once its relative suboptimality (f - f*) / f is provably below tol (from
        the gradient norm or the Newton decrement, see _primal_newton), or when the objective stops
        decreasing at the working precision; the last Newton step usually ends far below tol. torch dual:
        unused (it stops when the support set repeats, which is exact). sklearn: LinearSVC's tol.
    max_iter: Newton steps (torch) or LinearSVC's max_iter (sklearn).
    solver: "auto" (dual when n_samples < n_features and its n x n float64 Gram matrix fits in memory,
        else primal), "primal" or "dual".
    dtype: compute dtype of the products with X ("float32" or "float64"); X itself may be float16/32/64.
    chunk_rows: rows of X converted at a time (default: about 256 MB of the compute dtype).
    warm_start: start the next fit from this model's solution (same classes and features).

    decision_function always returns (n_samples, n_classes), one column per one-vs-rest classifier, also for
    two classes (then column 0 is the negation of column 1).
    """

    def __init__(
        self,
        C: float = 1.0,
        *,
        backend: str = "torch",
        device: str = "cpu",
        tol: float = 1e-4,
        max_iter: int = 1000,
        solver: str = "auto",
        dtype: str = "float32",
        chunk_rows: int | None = None,
        warm_start: bool = False,
    ) -> None:
        self.C = C
        self.backend = backend
        self.device = device
        self.tol = tol
        self.max_iter = max_iter
        self.solver = solver
        self.dtype = dtype
        self.chunk_rows = chunk_rows
        self.warm_start = warm_start

    # -- fitting

    def fit(self, X: Any, y: Any, init: L2SVM | None = None) -> L2SVM:
        """Fit on X (n, d) and labels y (n,).

        init: a fitted L2SVM to start from (same classes and features; torch backend only, LinearSVC has no
        warm start). With warm_start=True a refit starts from the previous solution when it is compatible.
        """
        _check_params(self)
        from_attribute = init is None and self.warm_start and hasattr(self, "coef_")
        if from_attribute:
            init = self
        if self.backend == "sklearn":
            return self._fit_sklearn(X, y)
        prob = _Problem(X, y, _device(self.device), DTYPES[self.dtype], self.chunk_rows)
        try:
            compatible = not from_attribute or (
                np.array_equal(self.classes_, prob.classes) and self.coef_.shape[1] == prob.d
            )
            self._fit_problem(prob, _warm_from_model(init, prob) if compatible else None)
        finally:
            prob.rows.release()
        return self

    def _choose_solver(self, prob: _Problem) -> str:
        if self.solver != "auto":
            if self.solver == "dual":
                _check_gram_memory(prob.n, prob.device, strict=True)
            return self.solver
        if prob.n < prob.d and _check_gram_memory(prob.n, prob.device, strict=False):
            return "dual"
        return "primal"

    def _fit_problem(self, prob: _Problem, warm: _Warm | None) -> torch.Tensor | None:
        """Fit on a prepared problem; returns the training margins (n, K) when the dual solver knows them."""
        C = float(self.C)
        solver = self._choose_solver(prob)
        passes0 = prob.rows.passes
        Z = None
        if solver == "primal":
            W0 = b0 = None
            if warm is not None:
                W0, b0 = warm.W, warm.b
            res = _primal_newton(prob, C, W0, b0, float(self.tol), int(self.max_iter))
        else:
            S0 = None
            if warm is not None:
                Zw = warm.Z if warm.Z is not None else prob.margins(warm.W, warm.b)
                S0 = prob.Y64 * Zw < 1
            res, Z = _dual_newton(prob, C, S0, int(self.max_iter))
        if not res.converged:
            warnings.warn(
                f"L2SVM ({solver} solver) did not converge in max_iter={self.max_iter} Newton steps; "
                f"raise max_iter",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.classes_ = prob.classes
        self.coef_ = res.W.float().cpu().numpy()
        self.intercept_ = res.b.float().cpu().numpy()
        self.objective_ = res.objective.cpu().numpy()
        self.n_iter_ = int(res.n_iter)
        self.n_passes_ = prob.rows.passes - passes0
        self.solver_ = solver
        self.n_features_in_ = prob.d
        return Z

    def _fit_sklearn(self, X: Any, y: Any) -> L2SVM:
        from sklearn.svm import LinearSVC

        X = _as_matrix(X)
        classes, _ = _labels(y, X.shape[0])
        rows = _Rows(X, torch.device("cpu"), torch.float32, self.chunk_rows)
        _mean_and_check(rows)
        n, d = X.shape
        dual = n < d if self.solver == "auto" else self.solver == "dual"
        svc = LinearSVC(
            C=float(self.C),
            loss="squared_hinge",
            penalty="l2",
            dual=dual,
            tol=float(self.tol),
            max_iter=int(self.max_iter),
            fit_intercept=True,
            intercept_scaling=1,
            multi_class="ovr",
        )
        svc.fit(X, np.asarray(y))
        coef, intercept = svc.coef_, svc.intercept_
        if len(classes) == 2:  # liblinear trains classes_[1] vs classes_[0]; the rest-vs-class-0 one is -w
            coef = np.concatenate([-coef, coef])
            intercept = np.concatenate([-intercept, intercept])
        self.classes_ = classes
        self.coef_ = np.ascontiguousarray(coef, dtype=np.float32)
        self.intercept_ = np.asarray(intercept, dtype=np.float32)
        self.n_iter_ = int(svc.n_iter_)
        self.solver_ = "dual" if dual else "primal"
        self.n_features_in_ = d
        return self

    # -- prediction

    def decision_function(self, X: Any) -> np.ndarray:
        """(n_samples, n_classes) one-vs-rest scores w_k . x + b_k (float32)."""
        if not hasattr(self, "coef_"):
            raise ConfigError("this L2SVM is not fitted yet; call fit(X, y) first")
        X = _as_matrix(X)
        if X.shape[1] != self.coef_.shape[1]:
            raise ConfigError(
                f"X has {X.shape[1]} features but the SVM was fitted on {self.coef_.shape[1]}; pass features "
                f"extracted the same way"
            )
        dev = _device(self.device) if self.backend == "torch" else torch.device("cpu")
        dt = DTYPES.get(self.dtype, torch.float32)
        rows = _Rows(X, dev, dt, self.chunk_rows)
        Wt = torch.as_tensor(self.coef_, device=dev).to(dt).T
        b = torch.as_tensor(self.intercept_, device=dev).to(dt)
        out = np.empty((X.shape[0], len(self.classes_)), dtype=np.float32)
        for a, e, chunk in rows.chunks(center=False):
            z = torch.addmm(b, chunk, Wt)
            if not bool(torch.isfinite(z).all()):
                raise _nonfinite_error(rows, a, e, chunk)
            out[a:e] = z.float().cpu().numpy()
        rows.release()
        return out

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (from classes_) of the highest one-vs-rest score."""
        scores = self.decision_function(X)
        return self.classes_[np.argmax(scores, axis=1)]


@dataclass
class _Warm:
    W: torch.Tensor  # (K, d) float64
    b: torch.Tensor  # (K,) float64
    Z: torch.Tensor | None = None  # (n, K) float64 margins on the training set, when known


def _warm_from_model(init: L2SVM | None, prob: _Problem) -> _Warm | None:
    if init is None:
        return None
    if not hasattr(init, "coef_"):
        raise ConfigError("init must be a fitted L2SVM; fit it first or pass init=None")
    if len(init.classes_) != prob.K or not np.array_equal(init.classes_, prob.classes):
        raise ConfigError(
            f"init was fitted on classes {init.classes_.tolist()} but y has {prob.classes.tolist()}; "
            f"pass init=None"
        )
    if init.coef_.shape[1] != prob.d:
        raise ConfigError(
            f"init was fitted on {init.coef_.shape[1]} features but X has {prob.d}; pass init=None"
        )
    W = torch.as_tensor(np.asarray(init.coef_, dtype=np.float64), device=prob.device)
    b = torch.as_tensor(np.asarray(init.intercept_, dtype=np.float64), device=prob.device)
    return _Warm(W, b)


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def _check_gram_memory(n: int, device: torch.device, strict: bool) -> bool:
    """Whether the dual's n x n float64 Gram matrix and one factorisation of that size fit in memory."""
    need = 2 * 8 * n * n
    if need <= 0.7 * _available_bytes(device):
        return True
    if strict:
        raise ConfigError(
            f"solver='dual' needs about {need / 2**30:.1f} GiB for {n} samples (an n x n float64 Gram matrix "
            f"and its factor) but {device} has less free; use solver='primal'"
        )
    return False


# ---------------------------------------------------------------------------------------------------- paths


def fit_path(
    X: Any,
    y: Any,
    Cs: Sequence[float],
    *,
    backend: str = "torch",
    device: str = "cpu",
    warm_start: bool = True,
    **params: Any,
) -> list[L2SVM]:
    """Fit one L2SVM per C (in the order of Cs), sharing the data passes, the Gram matrix and warm starts.

    The torch backend fits the Cs in increasing order, each starting from the previous solution (its support
    set for the dual solver), and computes the dual's Gram matrix once. params: other L2SVM hyper-parameters.
    """
    Cs = list(Cs) if not isinstance(Cs, (int, float)) else [Cs]
    if not Cs:
        raise ConfigError("Cs is empty; pass at least one value of C")
    Cs = [_check_C(c, "every C in Cs") for c in Cs]
    models = [L2SVM(C=c, backend=backend, device=device, **params) for c in Cs]
    for m in models:
        _check_params(m)
    if backend == "sklearn":
        return [m.fit(X, y) for m in models]
    first = models[0]
    prob = _Problem(X, y, _device(device), DTYPES[first.dtype], first.chunk_rows)
    try:
        warm: _Warm | None = None
        for i in sorted(range(len(Cs)), key=lambda j: Cs[j]):
            m = models[i]
            Z = m._fit_problem(prob, warm)
            if warm_start:
                W = torch.as_tensor(m.coef_, dtype=torch.float64, device=prob.device)
                b = torch.as_tensor(m.intercept_, dtype=torch.float64, device=prob.device)
                warm = _Warm(W, b, Z)
    finally:
        prob.rows.release()
    return models
