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

  - ``"primal"`` (picked when n_samples >= n_features, and on the CPU at the small C where it is faster than
    the dual for 3,000 <= n_samples < n_features: _primal_below_crossover): a finite Newton method with
    conjugate-gradient inner solves on the current active set and an exact line search on the piecewise-quadratic
    objective
    (Keerthi & DeCoste 2005, "A modified finite Newton method for fast solution of large scale linear SVMs",
    JMLR 6; the generalised Hessian of the squared hinge is the one used by Lin, Weng & Keerthi 2008,
    "Trust region Newton method for large-scale logistic regression", for liblinear's L2-loss SVM). A
    Hessian-vector product costs one pass over X: each chunk is multiplied by the K directions and back.
    CG is preconditioned exactly on a subspace of the top principal directions of X (from a row sample) and
    by a Jacobi diagonal on its complement, and the solution restricted to that subspace is the cold start.
    With the bfloat16 Hessian products (the CPU default where they are native) each class runs its Newton steps
    on its own clock: a pass carries the CG directions of every class still iterating, instead of a step waiting
    for its slowest class (primal._lowp_newton).
  - ``"dual"`` (picked otherwise when n_samples < n_features): Newton's method in the span of the data (Chapelle 2007,
    "Training a support vector machine in the primal", Neural Computation 19): with w = sum_i beta_i x_i and
    Gram matrix K_ij = x_i . x_j + 1, each step solves (K_SS + I / (2C)) beta_S = y_S by Cholesky on the
    support set S = {i : y_i f(x_i) < 1} and sets beta = 0 elsewhere; an exact line search makes it globally
    convergent and it stops when S repeats (finite convergence), or as soon as a Newton point's own support set
    is the one it was solved on. The Gram matrix is kept in float64; where its condition number is provably
    small (a small C) the factorisations are taken in float32 and refined in float64 to a 1e-11 residual.

Both subtract the column mean of X before the float32 products and add its contribution back exactly in
float64 (the identities x.w = (x - m).w + m.w and X^T u = (X - 1 m^T)^T u + m (1^T u)): DCGAN features are
non-negative with a mean as large as their spread, and the uncentred float32 products would lose digits.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning

from ganbench.choices import SVM_BACKENDS
from ganbench.devices import available_bytes
from ganbench.errors import ConfigError
from ganbench.probe.dual import centered_gram, dual_newton
from ganbench.probe.primal import PRECONDITIONER_RANK as PRECONDITIONER_RANK  # re-exported
from ganbench.probe.primal import primal_newton
from ganbench.probe.problem import Problem, as_matrix, class_indices
from ganbench.probe.rows import CHUNK_BYTES as CHUNK_BYTES  # re-exported: the default chunk size
from ganbench.probe.rows import FeatureRows, mean_and_check, nonfinite_error

__all__ = ["L2SVM", "fit_path", "gram_matrix", "squared_hinge_objective"]

log = logging.getLogger(__name__)

BACKENDS = SVM_BACKENDS
SOLVERS = ("auto", "primal", "dual")
HESSIAN_DTYPES = ("auto", "bfloat16", "float32")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
    if est.hessian_dtype not in HESSIAN_DTYPES:
        raise ConfigError(f"hessian_dtype must be one of {HESSIAN_DTYPES}, got {est.hessian_dtype!r}")
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


# --------------------------------------------------------------------------------------------- the problem


def gram_matrix(
    X: Any, chunk_rows: int | None = None, device: str | torch.device = "cpu", dtype: str = "float32"
) -> np.ndarray:
    """The (n, n) float64 Gram matrix X X^T + 1 of the samples with the intercept feature appended.

    Products are taken in ``dtype`` on centred row chunks (see the module docstring), so X is never converted
    in full.
    """
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {tuple(DTYPES)}, got {dtype!r}")
    X = as_matrix(X)
    rows = FeatureRows(X, _device(device), DTYPES[dtype], chunk_rows)
    rows.center = mean_and_check(rows).to(rows.dtype)
    return centered_gram(rows, rows.center.double()).K.cpu().numpy()


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
        the gradient norm or the Newton decrement, see primal_newton), or when the objective stops
        decreasing at the working precision; the last Newton step usually ends far below tol. torch dual:
        unused (it stops when the support set repeats, which is exact). sklearn: LinearSVC's tol.
    max_iter: Newton steps (torch) or LinearSVC's max_iter (sklearn).
    solver: "auto" (dual when n_samples < n_features and its n x n float64 Gram matrix fits in memory,
        except, on the CPU, at a C small enough that the primal is faster (_primal_below_crossover); else
        primal), "primal" or "dual".
    dtype: compute dtype of the products with X ("float32" or "float64"); X itself may be float16/32/64.
    chunk_rows: rows of X converted at a time (default: about 256 MB of the compute dtype).
    warm_start: start the next fit from this model's solution (same classes and features).
    hessian_dtype: torch primal: the precision of the conjugate-gradient Hessian-vector products. "bfloat16"
        runs them on a resident bfloat16 copy of the centred X (native matrix units: about 4x faster per pass on
        an AMX CPU), "float32" on X itself, "auto" picks bfloat16 on a CPU with native bfloat16 when the copy
        fits in a third of the free memory. The gradient, objective and stopping test are always exact in
        dtype, so the solution satisfies the same tolerance either way.

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
        hessian_dtype: str = "auto",
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
        self.hessian_dtype = hessian_dtype

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
        prob = Problem(X, y, _device(self.device), DTYPES[self.dtype], self.chunk_rows)
        try:
            compatible = not from_attribute or (
                np.array_equal(self.classes_, prob.classes) and self.coef_.shape[1] == prob.d
            )
            self._fit_problem(prob, _warm_from_model(init, prob) if compatible else None)
        finally:
            prob.rows.release()
        return self

    def _choose_solver(self, prob: Problem) -> str:
        if self.solver != "auto":
            if self.solver == "dual":
                _check_gram_memory(prob.n, prob.device, strict=True)
            return self.solver
        if prob.n < prob.d and _check_gram_memory(prob.n, prob.device, strict=False):
            if prob.device.type == "cpu" and _primal_below_crossover(prob, float(self.C)):
                return "primal"
            return "dual"
        return "primal"

    def _fit_problem(self, prob: Problem, warm: _Warm | None) -> torch.Tensor | None:
        """Fit on a prepared problem; returns the training margins (n, K) when the dual solver knows them."""
        C = float(self.C)
        solver = self._choose_solver(prob)
        passes0 = prob.rows.passes
        Z = None
        if solver == "primal":
            W0 = b0 = trend = None
            if warm is not None:
                W0, b0, trend = warm.W, warm.b, warm.trend
            res = primal_newton(prob, C, W0, b0, float(self.tol), int(self.max_iter), self.hessian_dtype, trend)
        else:
            prob.lowp = prob.subspace = None  # a path that moved on from the primal (its small C) needs neither again
            S0 = None
            if warm is not None:
                Zw = warm.Z if warm.Z is not None else prob.margins(warm.W, warm.b)
                S0 = prob.Y64 * Zw < 1
            res, Z = dual_newton(prob, C, S0, int(self.max_iter))
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

        X = as_matrix(X)
        classes, _ = class_indices(y, X.shape[0])
        rows = FeatureRows(X, torch.device("cpu"), torch.float32, self.chunk_rows)
        mean_and_check(rows)
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
        X = as_matrix(X)
        if X.shape[1] != self.coef_.shape[1]:
            raise ConfigError(
                f"X has {X.shape[1]} features but the SVM was fitted on {self.coef_.shape[1]}; pass features "
                f"extracted the same way"
            )
        dev = _device(self.device) if self.backend == "torch" else torch.device("cpu")
        dt = DTYPES.get(self.dtype, torch.float32)
        rows = FeatureRows(X, dev, dt, self.chunk_rows)
        Wt = torch.as_tensor(self.coef_, device=dev).to(dt).T
        b = torch.as_tensor(self.intercept_, device=dev).to(dt)
        out = np.empty((X.shape[0], len(self.classes_)), dtype=np.float32)
        for a, e, chunk in rows.chunks(center=False):
            z = torch.addmm(b, chunk, Wt)
            if not bool(torch.isfinite(z).all()):
                raise nonfinite_error(rows, a, e, chunk)
            out[a:e] = z.float().cpu().numpy()
        rows.release()
        return out

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (from classes_) of the highest one-vs-rest score."""
        scores = self.decision_function(X)
        return self.classes_[np.argmax(scores, axis=1)]


def accuracies(models: Sequence[L2SVM], X: Any, y: Any) -> list[float]:
    """Accuracy on (X, y) of each fitted model, from one pass over X for all of them.

    The same numbers as [m.score(X, y) for m in models] up to the summation order of the float32 products,
    but X is read and converted once instead of once per model: on a C grid of a few-label protocol that is
    hundreds of passes over the validation and test features saved.
    """
    if not models:
        return []
    X = as_matrix(X)
    y = np.asarray(y)
    first = models[0]
    for m in models:
        if not hasattr(m, "coef_"):
            raise ConfigError("every model must be fitted before scoring; call fit(X, y) first")
        if m.coef_.shape[1] != X.shape[1]:
            raise ConfigError(
                f"X has {X.shape[1]} features but a model was fitted on {m.coef_.shape[1]}; pass features "
                f"extracted the same way"
            )
    dev = _device(first.device) if first.backend == "torch" else torch.device("cpu")
    dt = DTYPES.get(first.dtype, torch.float32)
    sizes = [len(m.classes_) for m in models]
    Wt = torch.as_tensor(np.concatenate([m.coef_ for m in models]), device=dev).to(dt).T
    b = torch.as_tensor(np.concatenate([m.intercept_ for m in models]), device=dev).to(dt)
    rows = FeatureRows(X, dev, dt, None)
    correct = np.zeros(len(models), dtype=np.int64)
    bounds = np.cumsum([0] + sizes)
    for a, e, chunk in rows.chunks(center=False):
        z = torch.addmm(b, chunk, Wt)
        if not bool(torch.isfinite(z).all()):
            raise nonfinite_error(rows, a, e, chunk)
        for j, m in enumerate(models):
            pred = m.classes_[z[:, bounds[j] : bounds[j + 1]].argmax(1).cpu().numpy()]
            correct[j] += int((pred == y[a:e]).sum())
    rows.release()
    return [float(c) / len(y) for c in correct]


@dataclass
class _Warm:
    W: torch.Tensor  # (K, d) float64
    b: torch.Tensor  # (K,) float64
    Z: torch.Tensor | None = None  # (n, K) float64 margins on the training set, when known
    # along a C path: (dW, db), how the solution moved from the C before to this one, scaled to the next step in
    # log C; the primal solver starts from the best point of W + t dW (see primal.path_predictor)
    trend: tuple[torch.Tensor, torch.Tensor] | None = None


def _warm_from_model(init: L2SVM | None, prob: Problem) -> _Warm | None:
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


_CROSSOVER_MIN_ROWS = 3000  # below this the dual's whole C path costs seconds: less than the primal's set-up
_CROSSOVER = 30.0  # the primal is cheaper while 2 C mean ||x~||^2 <= n^2 / (_CROSSOVER d) (measured, see below)


def _primal_below_crossover(prob: Problem, C: float) -> bool:
    """Whether the primal solver is the cheaper one for n < d samples at this C (on the CPU).

    The dual's cost at a C is its factorisations, about n^3 (the support sets hold a large share of the points
    at a small C); the primal's is its passes over X, n d each, whose number grows with rho = 2 C mean ||x~||^2,
    the data term's scale against the regulariser's (the Hessian is I + 2C X~_A^T X~_A). So the primal is the
    cheaper one below a rho proportional to n^2 / d. The constant was measured on dcgan32 features along the
    default grid (docs/perf-log.md, "The few-label protocol's small C"): the per-C crossing lies at
    rho 10-35 for 4,000 x 28,672, 30-90 for 8,000 x 28,672 and 24-80 for 4,000 x 8,192, against n^2 / (30 d) =
    19, 74 and 65. Both solvers reach the same optimum; only the time differs.
    """
    n, d = prob.n, prob.d
    return n >= _CROSSOVER_MIN_ROWS and 2.0 * C * prob.centred_energy() <= n * n / (_CROSSOVER * d)


def _check_gram_memory(n: int, device: torch.device, strict: bool) -> bool:
    """Whether the dual's n x n float64 Gram matrix and one factorisation of that size fit in memory."""
    need = 2 * 8 * n * n
    if need <= 0.7 * available_bytes(device):
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
    on_fit: Callable[[L2SVM], None] | None = None,
    **params: Any,
) -> list[L2SVM]:
    """Fit one L2SVM per C (in the order of Cs), sharing the data passes, the Gram matrix and warm starts.

    The torch backend fits the Cs in increasing order, each starting from the previous solution (its support
    set for the dual solver; for the primal, the best point on the line that extrapolates the path's last step in
    log C, see primal.path_predictor), and computes the dual's Gram matrix once. on_fit: called with each fitted model
    (progress). params: other L2SVM hyper-parameters.
    """
    Cs = list(Cs) if not isinstance(Cs, (int, float)) else [Cs]
    if not Cs:
        raise ConfigError("Cs is empty; pass at least one value of C")
    Cs = [_check_C(c, "every C in Cs") for c in Cs]
    models = [L2SVM(C=c, backend=backend, device=device, **params) for c in Cs]
    for m in models:
        _check_params(m)
    if backend == "sklearn":
        for m in models:
            m.fit(X, y)
            if on_fit is not None:
                on_fit(m)
        return models
    first = models[0]
    prob = Problem(X, y, _device(device), DTYPES[first.dtype], first.chunk_rows)
    try:
        warm: _Warm | None = None
        order = sorted(range(len(Cs)), key=lambda j: Cs[j])
        for pos, i in enumerate(order):
            m = models[i]
            Z = m._fit_problem(prob, warm)
            if on_fit is not None:
                on_fit(m)
            if warm_start:
                W = torch.as_tensor(m.coef_, dtype=torch.float64, device=prob.device)
                b = torch.as_tensor(m.intercept_, dtype=torch.float64, device=prob.device)
                trend = None
                if (warm is not None and m.solver_ == "primal" and pos + 1 < len(order)
                        and Cs[order[pos - 1]] < Cs[i]):
                    # the next C continues the path: the step from the C before, scaled to the next step in log C
                    # (the primal's predictor; the dual starts from the support set instead)
                    scale = math.log(Cs[order[pos + 1]] / Cs[i]) / math.log(Cs[i] / Cs[order[pos - 1]])
                    trend = (scale * (W - warm.W), scale * (b - warm.b))
                warm = _Warm(W, b, Z, trend)
    finally:
        prob.rows.release()
    return models
