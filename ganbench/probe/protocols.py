"""The paper's evaluation protocols on precomputed features: which images train, validate and test, how C is chosen.

CIFAR-10 (Radford et al. 2015, sec. 5.1): L2-SVM on the discriminator features; "full" uses all 50,000 training
images, "400" uses 400 labelled images per class. SVHN-1000 (sec. 5.2) follows the authors' released script
svhn/svhn_semisup_analysis.py in Newmu/dcgan_code: validation = first 10,000 of the shuffled training set, C from
[1e-4 .. 1e-2] by the mean validation error of 10 trials of 100 images per class, then 100 test trials.
Test images never take part in choosing C.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ganbench.choices import SVM_BACKENDS
from ganbench.errors import ConfigError
from ganbench.probe.l2svm import L2SVM, accuracies, fit_path
from ganbench.progress import progress_bar

SVHN_C_GRID = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2)  # the authors' script
DEFAULT_C_GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


@dataclass
class ProbeSettings:
    """Solver and search settings shared by every protocol."""

    Cs: Sequence[float] = DEFAULT_C_GRID
    backend: str = "torch"
    device: str = "cpu"
    seed: int = 0
    progress: bool = False

    def validate(self) -> ProbeSettings:
        if not self.Cs or any(c <= 0 for c in self.Cs):
            raise ConfigError(f"--C-grid must be positive numbers, got {list(self.Cs)}")
        if self.backend not in SVM_BACKENDS:
            raise ConfigError(f"unknown --svm-backend {self.backend!r}; choose torch or sklearn")
        return self


def shuffled_split(n: int, validation_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(validation indices, pool indices): a seeded permutation, the first validation_size images validate."""
    if not 0 < validation_size < n:
        raise ConfigError(f"validation size {validation_size} must lie between 0 and the {n} training images")
    order = np.random.RandomState(seed).permutation(n)
    return np.sort(order[:validation_size]), np.sort(order[validation_size:])


def authors_svhn_split(n: int, validation_size: int = 10000, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """The released script's split: sklearn.utils.shuffle with RandomState(42); the first 10,000 validate.

    Returned in the shuffled order, as the script keeps it.
    """
    from sklearn.utils import shuffle

    order = shuffle(np.arange(n), random_state=np.random.RandomState(seed))
    return order[:validation_size], order[validation_size:]


def class_balanced_sample(labels: np.ndarray, pool: np.ndarray, per_class: int, rng: random.Random) -> np.ndarray:
    """per_class indices of every class drawn without replacement from pool (Python's random.sample, as the
    authors' script draws them)."""
    chosen = []
    for cls in np.unique(labels[pool]):
        members = pool[labels[pool] == cls]
        if len(members) < per_class:
            raise ConfigError(f"class {cls} has only {len(members)} training images outside the validation set, "
                              f"fewer than the protocol's {per_class} per class; use the complete dataset")
        chosen.extend(rng.sample(list(members), per_class))
    return np.asarray(chosen)


def per_class_subsets(labels: np.ndarray, pool: np.ndarray, per_class: int, trials: int,
                      seed: int) -> list[np.ndarray]:
    """The labelled subsets of the few-label protocol's trials (one random.Random(seed) stream, trial after trial):
    per_class_protocol fits exactly these, so a caller can compute features for these rows alone."""
    rng = random.Random(seed)
    return [class_balanced_sample(labels, pool, per_class, rng) for _ in range(trials)]


class SelectedRows:
    """An (n, d) feature matrix of which only some rows were computed, indexed by the original row numbers (what
    the protocols read of X): a one-trial curve point extracts 24,000 of CIFAR-10's 60,000 images, not all."""

    def __init__(self, values: np.ndarray, rows: np.ndarray, n: int) -> None:
        self.values, self.dtype, self.shape = values, values.dtype, (n, values.shape[1])
        self._where = np.full(n, -1, dtype=np.int64)
        self._where[rows] = np.arange(len(rows))

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        local = self._where[np.asarray(idx)]
        if (local < 0).any():
            raise IndexError("the protocol read a row whose features were not computed")
        return self.values[local]


class _FitClock:
    """Seconds of fitting per C, summed over trials (a record's svm.fit_seconds: where the time goes along the
    grid), and the progress bar's tick. restart() before each path: the first C of a path also carries that
    problem's setup (centring, the dual's Gram matrix or the primal's preconditioner)."""

    def __init__(self, bar) -> None:
        self.bar = bar
        self.last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def restart(self) -> None:
        self.last = time.perf_counter()

    def __call__(self, model: L2SVM) -> None:
        now = time.perf_counter()
        key = repr(float(model.C))
        self.seconds[key] = self.seconds.get(key, 0.0) + now - self.last
        self.last = now
        self.bar.update()

    def record(self) -> dict[str, float]:
        return {k: round(v, 2) for k, v in self.seconds.items()}


def _solvers(models: Sequence[L2SVM], Cs: Sequence[float]) -> dict[str, str]:
    """The solver that fitted each C ("primal", "dual", or "dual+primal" where trials differ), for the record."""
    used: dict[str, set[str]] = {repr(float(c)): set() for c in Cs}
    for m in models:
        used[repr(float(m.C))].add(m.solver_)
    return {k: "+".join(sorted(v)) for k, v in used.items()}


def _pct(x: float) -> float:
    return round(100.0 * float(x), 4)


def full_protocol(X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, *,
                  validation: np.ndarray, pool: np.ndarray, settings: ProbeSettings) -> dict[str, Any]:
    """C by validation accuracy (fit on pool, score on validation), then refit on pool + validation, score test."""
    settings.validate()
    t0 = time.perf_counter()
    bar = progress_bar(len(settings.Cs) + 1, "L2-SVM fits", "fit", enabled=settings.progress)
    clock = _FitClock(bar)
    models = fit_path(_rows(X, pool), y[pool], list(settings.Cs), backend=settings.backend, device=settings.device,
                      on_fit=clock)
    X_val, y_val = _rows(X, validation), y[validation]
    val_acc = {repr(float(c)): _pct(a) for c, a in zip(settings.Cs, accuracies(models, X_val, y_val))}
    best = max(settings.Cs, key=lambda c: (val_acc[repr(float(c))], -c))
    t_select = time.perf_counter() - t0
    # the refit starts from the pool model at the chosen C: the same strongly convex objective on 25% more rows,
    # so it needs a few Newton steps instead of a cold start (the optimum itself does not depend on the start)
    chosen = models[list(settings.Cs).index(best)]
    final = L2SVM(C=best, backend=settings.backend, device=settings.device).fit(X, y, init=chosen)
    bar.update()
    bar.close()
    test_acc = _pct(final.score(X_test, y_test))
    return {
        "results": {"test_accuracy_mean": test_acc, "test_accuracy_std": 0.0, "test_accuracy_ci95": 0.0,
                    "per_trial": [test_acc], "validation_accuracy_best": val_acc[repr(float(best))]},
        "svm": {"backend": settings.backend, "C_grid": [float(c) for c in settings.Cs], "chosen_C": float(best),
                "validation_accuracy": val_acc, "solvers": _solvers(models, settings.Cs),
                "refit_on": "train + validation", "n_iter": int(final.n_iter_),
                "fit_seconds": clock.record()},
        "settings": {"validation_size": int(len(validation)), "train_size": int(len(y)), "test_size": int(len(y_test)),
                     "seed": settings.seed},
        "wall_time_s": {"select_C": round(t_select, 2),
                        "refit_and_test": round(time.perf_counter() - t0 - t_select, 2)},
    }


def per_class_protocol(X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, *,
                       validation: np.ndarray, pool: np.ndarray, per_class: int, trials: int,
                       settings: ProbeSettings, test_trials: int | None = None,
                       report: str = "accuracy") -> dict[str, Any]:
    """Few-label protocol with class-balanced subsets of the pool drawn by one random.Random(seed) stream.

    test_trials None (CIFAR-10 400/class): `trials` subsets, each fitted along the whole C grid; C is the best
    mean validation accuracy; the reported test scores are those same subsets' models at that C.
    test_trials N (the authors' SVHN script): for each C, `trials` fresh subsets scored on validation; then N
    fresh subsets at the chosen C scored on the test set. report: "accuracy" or "error" (percent).
    """
    settings.validate()
    rng = random.Random(settings.seed)  # the SVHN loop's stream (the CIFAR loop draws per_class_subsets')
    X_val, y_val = _rows(X, validation), y[validation]
    Cs = [float(c) for c in settings.Cs]
    t0 = time.perf_counter()
    val_scores: dict[str, list[float]] = {repr(c): [] for c in Cs}
    test_by_c: dict[str, list[float]] = {repr(c): [] for c in Cs}
    bar = progress_bar(trials * len(Cs) + (test_trials or 0), "L2-SVM fits", "fit", enabled=settings.progress)
    clock = _FitClock(bar)
    if test_trials is None:
        # every trial's path, then one pass over the validation and one over the test images for all of them
        fitted = []
        for idx in per_class_subsets(y, pool, per_class, trials, settings.seed):
            X_trial = _rows(X, idx)
            clock.restart()
            fitted += fit_path(X_trial, y[idx], Cs, backend=settings.backend, device=settings.device, on_fit=clock)
        for j, (a_val, a_test) in enumerate(zip(accuracies(fitted, X_val, y_val), accuracies(fitted, X_test, y_test))):
            val_scores[repr(Cs[j % len(Cs)])].append(_pct(a_val))
            test_by_c[repr(Cs[j % len(Cs)])].append(_pct(a_test))
    else:
        fitted = []
        for c in Cs:  # the authors' loop order: all trials of one C, then the next C
            for _t in range(trials):
                idx = class_balanced_sample(y, pool, per_class, rng)
                X_trial = _rows(X, idx)
                clock.restart()
                fitted.append(L2SVM(C=c, backend=settings.backend, device=settings.device).fit(X_trial, y[idx]))
                clock(fitted[-1])
        for j, a_val in enumerate(accuracies(fitted, X_val, y_val)):
            val_scores[repr(Cs[j // trials])].append(_pct(a_val))
    mean_val = {k: float(np.mean(v)) for k, v in val_scores.items()}
    best = max(Cs, key=lambda c: (mean_val[repr(c)], -c))
    t_select = time.perf_counter() - t0
    solvers = _solvers(fitted, Cs)  # before the test fits of the authors' SVHN loop replace `fitted`
    if test_trials is None:
        test_scores = test_by_c[repr(best)]
    else:
        fitted = []
        for _t in range(test_trials):
            idx = class_balanced_sample(y, pool, per_class, rng)
            fitted.append(L2SVM(C=best, backend=settings.backend, device=settings.device).fit(_rows(X, idx), y[idx]))
            bar.update()
        test_scores = [_pct(a) for a in accuracies(fitted, X_test, y_test)]
    bar.close()
    scores = np.asarray(test_scores)
    key = "test_error" if report == "error" else "test_accuracy"
    if report == "error":
        scores = 100.0 - scores
    std = float(np.std(scores))  # ddof 0, as the authors' np.std
    results = {f"{key}_mean": round(float(np.mean(scores)), 4), f"{key}_std": round(std, 4),
               f"{key}_ci95": round(1.96 * std, 4), "per_trial": [round(float(s), 4) for s in scores]}
    return {
        "results": results,
        "svm": {"backend": settings.backend, "C_grid": Cs, "chosen_C": best,
                "validation_accuracy": {k: round(v, 4) for k, v in mean_val.items()},
                "validation_accuracy_per_trial": val_scores, "solvers": solvers,
                "fit_seconds": clock.record()},
        "settings": {"per_class": per_class, "trials": trials if test_trials is None else test_trials,
                     "selection_trials_per_C": trials, "subsets_reused_for_test": test_trials is None,
                     "validation_size": int(len(validation)), "pool_size": int(len(pool)),
                     "test_size": int(len(y_test)), "seed": settings.seed, "sampler": "python random.Random(seed)"},
        "wall_time_s": {"select_C": round(t_select, 2), "test": round(time.perf_counter() - t0 - t_select, 2)},
    }


def _rows(X: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows of a (possibly memory-mapped) matrix, read in index order for sequential disk access."""
    order = np.argsort(idx, kind="stable")
    out = np.empty((len(idx), X.shape[1]), dtype=X.dtype)
    out[order] = X[idx[order]]
    return out
