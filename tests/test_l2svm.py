"""ganbench.probe.l2svm against scikit-learn's LinearSVC (liblinear), on small synthetic problems."""

from __future__ import annotations

import functools
import logging

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.svm import LinearSVC

import ganbench.probe.primal as primal
from ganbench.errors import ConfigError
from ganbench.probe import L2SVM, fit_path, gram_matrix, squared_hinge_objective

C_REF = 0.05


@pytest.fixture(autouse=True)
def one_thread():
    """These problems are tiny: with two threads, every small op can wait on a busy core (shared CI boxes)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def problem(kind: str, n_train: int = 400, d: int = 60, classes: int = 10, seed: int = 0):
    """(X_train, y_train, X_test, y_test) float32 with a non-zero feature mean, as DCGAN features have."""
    sep = {"separated": 3.0, "overlapping": 0.7}[kind]
    X, y = make_classification(
        n_samples=n_train + 1000,
        n_features=d,
        n_informative=min(d, 12),
        n_redundant=0,
        n_classes=classes,
        n_clusters_per_class=1,
        class_sep=sep,
        random_state=seed,
    )
    X = (0.5 * X + 1.0).astype(np.float32)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


@functools.cache
def reference(kind: str, C: float = C_REF, **shape):
    """LinearSVC converged far beyond its defaults."""
    X, y, _, _ = problem(kind, **shape)
    return LinearSVC(C=C, tol=1e-10, max_iter=1_000_000, dual=True).fit(X, y)


def objective(model, X, y, C):
    return squared_hinge_objective(model.coef_, model.intercept_, X, y, C)


@pytest.mark.parametrize("kind", ["separated", "overlapping"])
@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_matches_liblinear(kind, solver):
    X, y, Xt, yt = problem(kind)
    ref = reference(kind)
    ours = L2SVM(C=C_REF, solver=solver).fit(X, y)
    assert ours.solver_ == solver
    assert ours.coef_.shape == (10, X.shape[1]) and ours.coef_.dtype == np.float32
    f_ours, f_ref = objective(ours, X, y, C_REF), objective(ref, X, y, C_REF)
    assert np.all(f_ours <= f_ref * (1 + 1e-4)), (f_ours - f_ref) / f_ref
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-3, atol=1e-3 * np.abs(ref.coef_).max())
    np.testing.assert_allclose(
        ours.intercept_, ref.intercept_, rtol=1e-3, atol=1e-3 * np.abs(ref.coef_).max()
    )
    assert abs(ours.score(Xt, yt) - ref.score(Xt, yt)) <= 0.003
    # the objective the solver reports is the one it reached
    np.testing.assert_allclose(ours.objective_, f_ours, rtol=1e-5)


@pytest.mark.parametrize("kind", ["separated", "overlapping"])
@pytest.mark.parametrize("hessian_dtype", ["float32", "bfloat16"])
def test_primal_conjugate_gradient_path(kind, hessian_dtype, monkeypatch):
    # With d + 1 > the preconditioner's rank the primal runs its Newton-CG passes over X (with the rank at its
    # default, d = 60 is solved inside the subspace start alone). The bfloat16 Hessian reaches the same optimum:
    # only the CG's products are approximate, the gradient and the stopping test are exact.
    monkeypatch.setattr(primal, "PRECONDITIONER_RANK", 8)
    X, y, Xt, yt = problem(kind)
    ref = reference(kind)
    # tol 1e-5: the coefficients are compared, and at the default 1e-4 the stopping test leaves them free to
    # move by up to sqrt(2e-4 f), about 0.5% of the largest here (either schedule of the CG may land there)
    ours = L2SVM(C=C_REF, solver="primal", hessian_dtype=hessian_dtype, tol=1e-5).fit(X, y)
    assert ours.n_passes_ > 3  # the subspace pass, gradients and Hessian-vector products
    f_ours, f_ref = objective(ours, X, y, C_REF), objective(ref, X, y, C_REF)
    assert np.all(f_ours <= f_ref * (1 + 1e-4)), (f_ours - f_ref) / f_ref
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-3, atol=3e-3 * np.abs(ref.coef_).max())
    assert abs(ours.score(Xt, yt) - ref.score(Xt, yt)) <= 0.003


def test_more_features_than_samples_picks_dual_and_agrees_with_primal():
    X, y, Xt, yt = problem("overlapping", n_train=150, d=300)
    ref = reference("overlapping", n_train=150, d=300)
    auto = L2SVM(C=C_REF).fit(X, y)
    primal = L2SVM(C=C_REF, solver="primal", tol=1e-7).fit(X, y)
    assert auto.solver_ == "dual"
    np.testing.assert_allclose(primal.coef_, auto.coef_, rtol=1e-3, atol=1e-3 * np.abs(auto.coef_).max())
    f_ref = objective(ref, X, y, C_REF)
    assert np.all(objective(auto, X, y, C_REF) <= f_ref * (1 + 1e-6))
    assert np.array_equal(auto.predict(Xt), ref.predict(Xt))


def test_auto_solver_takes_the_primal_below_the_crossover_and_the_path_reaches_the_same_optima(monkeypatch):
    import ganbench.probe.l2svm as l2svm

    X, y, Xt, _ = problem("overlapping", n_train=240, d=300)
    Xc = X.astype(np.float64) - X.astype(np.float64).mean(0)
    energy = float((Xc * Xc).sum(1).mean())
    n, d = X.shape
    c_cross = n * n / (l2svm._CROSSOVER * d) / (2 * energy)  # where 2 C mean |x~|^2 = n^2 / (30 d)
    Cs = [c_cross / 9, c_cross / 1.5, c_cross * 1.5, c_cross * 9]
    # below the row minimum (the default 3,000) the dual keeps every C
    assert [m.solver_ for m in fit_path(X, y, Cs)] == ["dual"] * 4
    monkeypatch.setattr(l2svm, "_CROSSOVER_MIN_ROWS", 200)
    path = fit_path(X, y, Cs, tol=1e-7)
    assert [m.solver_ for m in path] == ["primal", "primal", "dual", "dual"]
    assert L2SVM(C=Cs[1]).fit(X, y).solver_ == "primal" and L2SVM(C=Cs[2]).fit(X, y).solver_ == "dual"
    # the same optimum as the dual alone, on both sides of the switch (the dual is exact)
    dual = fit_path(X, y, Cs, solver="dual")
    for a, b in zip(path, dual, strict=True):
        assert np.all(a.objective_ <= b.objective_ * (1 + 1e-6)), (a.objective_ - b.objective_) / b.objective_
        np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-3, atol=1e-3 * np.abs(b.coef_).max())
        assert np.mean(a.predict(Xt) == b.predict(Xt)) >= 0.995


def test_float16_memmap_and_chunking(tmp_path):
    X, y, Xt, yt = problem("overlapping")
    path = tmp_path / "x.f16"
    mm = np.memmap(path, dtype=np.float16, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    X16 = np.memmap(path, dtype=np.float16, mode="r", shape=X.shape)
    for solver in ("primal", "dual"):
        a = L2SVM(C=C_REF, solver=solver).fit(X16, y)
        b = L2SVM(C=C_REF, solver=solver, chunk_rows=7).fit(X16, y)
        same_data = L2SVM(C=C_REF, solver=solver).fit(np.asarray(X16, dtype=np.float32), y)
        full32 = L2SVM(C=C_REF, solver=solver).fit(X, y)
        scale = np.abs(a.coef_).max()
        np.testing.assert_allclose(b.coef_, a.coef_, rtol=1e-4, atol=1e-5 * scale)
        np.testing.assert_allclose(same_data.coef_, a.coef_, rtol=1e-4, atol=1e-5 * scale)
        # float16 rounding of the inputs (relative 5e-4) moves the solution a little, not the predictions
        np.testing.assert_allclose(full32.coef_, a.coef_, atol=2e-2 * scale)
        assert np.mean(a.predict(Xt) == full32.predict(Xt)) >= 0.98
        assert np.array_equal(a.predict(X16), a.predict(X))
    assert not X16.flags.writeable  # read, never copied into a writeable array or written


@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_warm_started_path_equals_cold_fits(solver, monkeypatch):
    monkeypatch.setattr(primal, "PRECONDITIONER_RANK", 8)  # warm starts pay off in the Newton-CG path
    X, y, _, _ = problem("overlapping")
    Cs = [0.5, 0.01, 0.05, 0.2]  # not sorted: models come back in this order
    path = fit_path(X, y, Cs, backend="torch", device="cpu", solver=solver, tol=1e-7)
    cold = [L2SVM(C=c, solver=solver, tol=1e-7).fit(X, y) for c in Cs]
    assert [m.C for m in path] == Cs
    for warm, ref in zip(path, cold, strict=True):
        scale = np.abs(ref.coef_).max()
        np.testing.assert_allclose(warm.coef_, ref.coef_, rtol=2e-3, atol=2e-3 * scale)
        np.testing.assert_allclose(warm.objective_, ref.objective_, rtol=1e-4)
    # the smallest C is fitted first (cold); every later one starts from its predecessor
    later = [i for i in range(len(Cs)) if Cs[i] != min(Cs)]
    assert sum(path[i].n_iter_ for i in later) < sum(cold[i].n_iter_ for i in later)


def test_warm_start_attribute_and_init():
    X, y, _, _ = problem("overlapping", n_train=150, d=300)
    model = L2SVM(C=0.01, warm_start=True).fit(X, y)
    cold = L2SVM(C=0.1).fit(X, y)
    model.set_params(C=0.1).fit(X, y)
    assert model.n_iter_ < cold.n_iter_
    np.testing.assert_allclose(model.coef_, cold.coef_, rtol=1e-4, atol=1e-6 * np.abs(cold.coef_).max())
    other = L2SVM(C=0.1).fit(X, y, init=L2SVM(C=0.01).fit(X, y))
    assert other.n_iter_ < cold.n_iter_
    np.testing.assert_allclose(other.coef_, cold.coef_, rtol=1e-4, atol=1e-6 * np.abs(cold.coef_).max())


@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_binary_and_non_contiguous_labels(solver):
    X, y, Xt, yt = problem("overlapping", classes=3)
    labels = np.array([3, 7, 9])
    ours = L2SVM(C=C_REF, solver=solver).fit(X, labels[y])
    ref = LinearSVC(C=C_REF, tol=1e-10, max_iter=1_000_000).fit(X, labels[y])
    assert ours.classes_.tolist() == [3, 7, 9]
    assert ours.decision_function(Xt).shape == (len(Xt), 3)
    assert np.array_equal(ours.predict(Xt), ref.predict(Xt))
    assert set(np.unique(ours.predict(Xt))) <= {3, 7, 9}

    Xb, yb = X[y < 2], np.where(y[y < 2] == 0, "cat", "dog")
    ours = L2SVM(C=C_REF, solver=solver).fit(Xb, yb)
    ref = LinearSVC(C=C_REF, tol=1e-10, max_iter=1_000_000).fit(Xb, yb)
    scores = ours.decision_function(Xt)
    assert scores.shape == (len(Xt), 2)  # one-vs-rest columns even for two classes
    np.testing.assert_allclose(ours.coef_[1], ref.coef_[0], rtol=1e-3, atol=1e-3 * np.abs(ref.coef_).max())
    np.testing.assert_allclose(ours.coef_[0], -ours.coef_[1], rtol=1e-3, atol=1e-3 * np.abs(ref.coef_).max())
    np.testing.assert_allclose(scores[:, 1], ref.decision_function(Xt), atol=2e-3 * np.abs(scores).max())
    assert np.array_equal(ours.predict(Xt), ref.predict(Xt))


def test_sklearn_backend_is_linearsvc():
    X, y, Xt, yt = problem("overlapping")
    ours = L2SVM(C=C_REF, backend="sklearn", tol=1e-10, max_iter=1_000_000).fit(X, y)
    ref = reference("overlapping")
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-5, atol=1e-6)
    assert ours.solver_ == "primal"  # n_samples > n_features: liblinear's primal Newton
    assert ours.score(Xt, yt) == ref.score(Xt, yt)
    Xb, yb = X[y < 2], y[y < 2]
    binary = L2SVM(C=C_REF, backend="sklearn").fit(Xb, yb)
    np.testing.assert_allclose(binary.coef_[0], -binary.coef_[1])
    path = fit_path(X, y, [0.01, 0.1], backend="sklearn", tol=1e-10, max_iter=1_000_000)
    np.testing.assert_allclose(
        path[1].coef_, L2SVM(C=0.1, backend="torch").fit(X, y).coef_, rtol=1e-3, atol=1e-3
    )


def test_gram_matrix_and_estimator_protocol():
    X, y, _, _ = problem("overlapping", n_train=50)
    X64 = X.astype(np.float64)
    np.testing.assert_allclose(gram_matrix(X, chunk_rows=7), X64 @ X64.T + 1, rtol=1e-5)
    model = L2SVM(C=0.3, solver="dual", chunk_rows=16)
    assert model.get_params()["C"] == 0.3
    copy = clone(model).set_params(C=0.7)
    assert copy.C == 0.7 and model.C == 0.3
    assert copy.fit(X, y).score(X, y) > 0.5


def _check_error(call, *fragments):
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and message
    for fragment in fragments:
        assert fragment in message, message


def test_errors_are_one_line_config_errors():
    X, y, _, _ = problem("overlapping", n_train=50)
    _check_error(lambda: L2SVM(C=0).fit(X, y), "C must be a positive")
    _check_error(lambda: L2SVM(C=-1.0).fit(X, y), "C must be a positive")
    _check_error(lambda: L2SVM(C=float("nan")).fit(X, y), "C must be a positive")
    _check_error(lambda: L2SVM(C="big").fit(X, y), "C must be a positive number")
    _check_error(lambda: L2SVM(backend="liblinear").fit(X, y), "backend")
    _check_error(lambda: L2SVM(solver="cd").fit(X, y), "solver")
    _check_error(lambda: L2SVM(dtype="float16").fit(X, y), "dtype")
    _check_error(lambda: L2SVM(tol=0).fit(X, y), "tol")
    _check_error(lambda: L2SVM(max_iter=0).fit(X, y), "max_iter")
    _check_error(lambda: L2SVM(chunk_rows=0).fit(X, y), "chunk_rows")
    _check_error(lambda: L2SVM(device="quantum").fit(X, y), "device")
    _check_error(lambda: L2SVM().fit(X[0], y), "2-D")
    _check_error(lambda: L2SVM().fit(X[None], y), "2-D")
    _check_error(lambda: L2SVM().fit(X, y[:-1]), "50 samples but y has 49")
    _check_error(lambda: L2SVM().fit(X, y[:, None]), "1-D")
    _check_error(lambda: L2SVM().fit(X, np.zeros(len(y))), "at least 2 classes")
    for bad in (np.nan, np.inf):
        Xbad = X.copy()
        Xbad[45, 3] = bad
        for backend in ("torch", "sklearn"):
            _check_error(
                lambda Xbad=Xbad, b=backend: L2SVM(backend=b, chunk_rows=7).fit(Xbad, y), "rows 42..48"
            )
    _check_error(lambda: L2SVM().predict(X), "not fitted")
    fitted = L2SVM().fit(X, y)
    _check_error(lambda: fitted.predict(X[:, :5]), "5 features")
    Xnan = X.copy()
    Xnan[0, 0] = np.nan
    _check_error(lambda: fitted.predict(Xnan), "NaN")
    _check_error(lambda: fit_path(X, y, []), "Cs is empty")
    _check_error(lambda: fit_path(X, y, [0.1, -1]), "every C in Cs")
    _check_error(lambda: L2SVM().fit(X, y % 3, init=fitted), "classes")
    if not torch.cuda.is_available():
        _check_error(lambda: L2SVM(device="cuda").fit(X, y), "no CUDA")


def test_bfloat16_hessian_on_the_active_rows_only(monkeypatch):
    # at a large C most rows end up outside every class's active set: the CG then reads only the active ones
    monkeypatch.setattr(primal, "PRECONDITIONER_RANK", 8)
    X, y, _, _ = problem("separated")
    seen = []
    lowp_pass = primal._lowp_pass
    monkeypatch.setattr(primal, "_lowp_pass", lambda prob, Xb, *a: seen.append(Xb.shape[0]) or lowp_pass(prob, Xb, *a))
    exact = L2SVM(C=10.0, solver="primal", hessian_dtype="float32", tol=1e-8).fit(X, y)
    fast = L2SVM(C=10.0, solver="primal", hessian_dtype="bfloat16", tol=1e-8).fit(X, y)
    assert seen and min(seen) < 0.75 * len(y)
    np.testing.assert_allclose(objective(fast, X, y, 10.0), objective(exact, X, y, 10.0), rtol=1e-6)


def test_accuracies_of_many_models_in_one_pass():
    from ganbench.probe.l2svm import accuracies

    X, y, Xt, yt = problem("overlapping")
    models = fit_path(X, y, [0.001, 0.05, 1.0]) + [L2SVM(C=0.05, solver="dual").fit(X[:200], y[:200])]
    got = accuracies(models, Xt, yt)
    assert got == pytest.approx([m.score(Xt, yt) for m in models], abs=1.5 / len(yt))
    assert len(set(got)) > 1  # the models differ, and so do their scores
    with pytest.raises(ConfigError, match="features"):
        accuracies(models, Xt[:, :5], yt)


def test_dual_conjugate_gradients_on_large_support_sets_match_the_direct_solves(monkeypatch):
    # at a small C nearly every point is a support vector: the dual then solves its Newton systems by PCG with one
    # inverse shared by the classes instead of one factorisation per class; the solutions are the same
    import ganbench.probe.dual as dual

    X, y, _, _ = problem("overlapping", n_train=400, d=900)
    Cs = [1e-4, 1e-3, 1e-2]
    used = []
    pcg = dual._pcg_support
    monkeypatch.setattr(dual, "_pcg_support", lambda *a: used.append(a[1].shape[1]) or pcg(*a))
    monkeypatch.setattr(dual, "_PCG_MIN_ITER", 1)  # the cost model would pick factorisations at this small n
    fast = fit_path(X, y, Cs, solver="dual")
    assert used  # the PCG path ran
    monkeypatch.setattr(dual, "_PCG_SHARE", 2.0)  # no class qualifies: factorisations only
    direct = fit_path(X, y, Cs, solver="dual")
    for C, a, b in zip(Cs, fast, direct):
        np.testing.assert_allclose(objective(a, X, y, C), objective(b, X, y, C), rtol=1e-7)
        np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-4, atol=1e-5 * np.abs(b.coef_).max())


def test_mixed_precision_factorisation_refines_to_float64_accuracy_or_declines():
    # the dual's float32 Cholesky with float64 refinement: the same solution as a float64 solve where the
    # condition bound allows it, None (a float64 factorisation instead) where it does not
    import ganbench.probe.dual as dual

    rng = np.random.default_rng(1)
    X = rng.random((300, 2000)) * 2  # non-negative features with a large mean, as DCGAN's: a large top eigenvalue
    K = torch.as_tensor(X @ X.T + 1.0)
    rhs = torch.as_tensor(rng.choice([-1.0, 1.0], size=(300, 3)))
    for mu, expect in ((5e4, True), (5e2, True), (0.5, False)):  # 1 / (2C) for C = 1e-5, 1e-3, 1
        A = K.clone()
        A.diagonal().add_(mu)
        sol = dual._mixed_solve(A, rhs, mu)
        assert (sol is not None) == expect, mu
        if sol is not None:
            exact = torch.linalg.solve(A, rhs)
            assert float((A @ sol - rhs).norm() / rhs.norm()) <= dual._PCG_RTOL
            np.testing.assert_allclose(sol.numpy(), exact.numpy(), rtol=1e-9, atol=1e-12 * float(exact.abs().max()))


def test_dual_path_with_and_without_the_float32_factorisation(monkeypatch):
    import ganbench.probe.dual as dual

    X, y, _, _ = problem("overlapping", n_train=150, d=300)
    Cs = [1e-4, 1e-2, 1.0]
    calls = []
    mixed = dual._mixed_solve
    monkeypatch.setattr(dual, "_mixed_solve", lambda *a: calls.append(a[2]) or mixed(*a))
    fast = fit_path(X, y, Cs, solver="dual")
    assert calls  # it was tried
    monkeypatch.setattr(dual, "_MIXED_CONDITION", 0.0)  # never: float64 factorisations only
    exact = fit_path(X, y, Cs, solver="dual")
    for C, a, b in zip(Cs, fast, exact):
        np.testing.assert_allclose(objective(a, X, y, C), objective(b, X, y, C), rtol=1e-9)
        np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-5, atol=1e-6 * np.abs(b.coef_).max())


def test_path_predictor_minimises_the_objective_on_the_extrapolated_ray():
    # along a C path the primal starts from the best point of V0 + t T (T: the path's last step); never worse than
    # the previous solution V0 (t = 0), and the exact minimiser of the new C's objective over t >= 0
    from ganbench.probe.problem import Problem

    X, y, _, _ = problem("overlapping")
    prob = Problem(X, y, torch.device("cpu"), torch.float64, None)
    a, b = L2SVM(C=0.01, tol=1e-8).fit(X, y), L2SVM(C=0.05, tol=1e-8).fit(X, y)
    V = [torch.as_tensor(np.c_[m.coef_, m.intercept_], dtype=torch.float64) for m in (a, b)]
    C = 0.25
    rng = np.random.default_rng(0)
    for T in (V[1] - V[0], torch.as_tensor(rng.normal(size=V[0].shape)) * 10):  # a sensible trend, then garbage
        start = primal.path_predictor(prob, C, V[1], T).numpy()
        f = lambda v: squared_hinge_objective(v[:, :-1], v[:, -1], X, y, C)  # noqa: E731
        ts = np.linspace(0, 3, 3001)
        on_ray = np.array([f(V[1].numpy() + t * T.numpy()) for t in ts])  # (t, class)
        got = f(start)
        assert np.all(got <= f(V[1].numpy()) * (1 + 1e-12))
        assert np.all(got <= on_ray.min(0) * (1 + 1e-9))
    # the sensible trend closes most of the gap to the new optimum that the previous solution leaves
    best = f(np.c_[(m := L2SVM(C=C, tol=1e-10).fit(X, y)).coef_, m.intercept_])
    start = primal.path_predictor(prob, C, V[1], V[1] - V[0]).numpy()
    gap = (f(start) - best) / (f(V[1].numpy()) - best)
    assert np.all(gap < 0.5), gap


def test_bfloat16_newton_schedule_changes_the_passes_not_the_optimum(monkeypatch):
    # _lowp_newton lets each class take its step as soon as its CG is done; the exact gradient pass is shared by
    # the classes waiting for it. Running it for every class at once (never while a CG is left) or as soon as one
    # waits must reach the same optimum: only the number of exact passes differs.
    monkeypatch.setattr(primal, "PRECONDITIONER_RANK", 8)
    X, y, _, _ = problem("overlapping")
    ref = reference("overlapping")
    calls = []
    fused = primal.fused_pass
    monkeypatch.setattr(primal, "fused_pass", lambda prob, V, w: calls.append(V.shape[0]) or fused(prob, V, w))
    fits = {}
    for wait in (0, 10**9):
        monkeypatch.setattr(primal, "_WAIT_PASSES", wait)
        calls.clear()
        fits[wait] = (L2SVM(C=C_REF, solver="primal", hessian_dtype="bfloat16", tol=1e-6).fit(X, y), list(calls))
    (eager, eager_calls), (batched, batched_calls) = fits[0], fits[10**9]
    f_ref = objective(ref, X, y, C_REF)
    for m in (eager, batched):
        assert np.all(objective(m, X, y, C_REF) <= f_ref * (1 + 1e-6))
    np.testing.assert_allclose(eager.coef_, batched.coef_, atol=1e-3 * np.abs(ref.coef_).max())
    # eager: exact passes for fewer classes each, so more of them; batched: every class waits for the others
    assert len(eager_calls) > len(batched_calls)
    assert np.mean(eager_calls) < np.mean(batched_calls)
    # each class makes about the same Newton steps either way (one gradient each), only grouped differently
    assert abs(sum(eager_calls) - sum(batched_calls)) <= 0.2 * sum(batched_calls)


def test_ray_minimum_is_the_objective_at_the_best_point_of_each_ray():
    # _ray_minimum: min over t >= 0 of f(v + t p) from the margins X~ v and X~ p, against a numpy grid over t
    X, y, _, _ = problem("overlapping")
    C = 0.3
    classes = np.unique(y)
    Ypm = np.where(y[:, None] == classes[None, :], 1.0, -1.0)
    Xt = np.c_[X.astype(np.float64), np.ones(len(X))]
    rng = np.random.default_rng(1)
    V = rng.normal(size=(len(classes), Xt.shape[1])) * 0.05
    P = rng.normal(size=V.shape) * 0.05
    P[0] = -V[0]  # a ray through the origin: its best point lies inside (0, 1], not at the start
    f = lambda v: squared_hinge_objective(v[:, :-1], v[:, -1], X, y, C)  # noqa: E731
    got = primal._ray_minimum(torch.as_tensor(Xt @ V.T), torch.as_tensor(Xt @ P.T, dtype=torch.float32),
                              torch.as_tensor(Ypm), C, torch.as_tensor(V, dtype=torch.float32),
                              torch.as_tensor(P, dtype=torch.float32)).numpy()
    on_ray = np.array([f(V + t * P) for t in np.linspace(0, 8, 8001)])  # (t, class)
    assert got.shape == (len(classes),)
    assert np.all(got <= on_ray.min(0) * (1 + 1e-6))  # float32 directions and X~ p: rounding only
    assert np.all(got >= on_ray.min(0) * (1 - 1e-4))  # and no lower than the grid's minimum, up to its spacing
    assert np.all(got <= f(V) * (1 + 1e-6))  # t = 0 is on the ray: never above the start
    assert np.sum(got < f(V) * (1 - 1e-3)) >= len(classes) // 2  # most of these rays descend: the minimum is at t > 0


@pytest.mark.parametrize("kind", ["separated", "overlapping"])
def test_bfloat16_cg_ending_at_its_best_iterate_reaches_the_same_optimum(kind, monkeypatch, caplog):
    # _lowp_newton ends a class's CG once _ALONG_PATIENCE iterates have not lowered the true objective along them,
    # and takes the step along the best one. With it (the default) and without it (patience 0), the fit reaches
    # liblinear's optimum; on these problems the stop fires, so the two fits take different paths.
    monkeypatch.setattr(primal, "PRECONDITIONER_RANK", 8)
    X, y, _, _ = problem(kind)
    ref = reference(kind)
    f_ref = objective(ref, X, y, C_REF)
    stops = {}
    fits = {}
    for patience in (0, primal._ALONG_PATIENCE):
        monkeypatch.setattr(primal, "_ALONG_PATIENCE", patience)
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="ganbench.probe.primal"):
            fits[patience] = L2SVM(C=C_REF, solver="primal", hessian_dtype="bfloat16", tol=1e-6).fit(X, y)
        said = [r.getMessage() for r in caplog.records if "ended at their best iterate" in r.getMessage()]
        stops[patience] = int(said[-1].split()[2])
        assert np.all(objective(fits[patience], X, y, C_REF) <= f_ref * (1 + 1e-6))
        np.testing.assert_allclose(fits[patience].coef_, ref.coef_, atol=1e-3 * np.abs(ref.coef_).max())
    assert primal._ALONG_PATIENCE > 0
    assert stops[0] == 0 and stops[primal._ALONG_PATIENCE] > 0, stops
    assert fits[0].n_passes_ != fits[primal._ALONG_PATIENCE].n_passes_
