"""Frechet distance between Gaussians fitted to features, and pytorch-fid-compatible statistics files.

FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", https://arxiv.org/abs/1706.08500) is the Frechet (2-Wasserstein) distance between
N(mu1, S1) and N(mu2, S2) (Dowson & Landau 1982):

    d^2 = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).

pytorch-fid (and the TTUR reference code) take a general matrix square root of the non-symmetric
product S1 S2 with scipy.linalg.sqrtm. The product is similar to the symmetric positive semi-definite
matrix S1^(1/2) S2 S1^(1/2) (it equals S1^(1/2) [S1^(1/2) S2 S1^(1/2)] S1^(-1/2) when S1 is
invertible, and the eigenvalues agree in the singular case too), so

    tr((S1 S2)^(1/2)) = sum_i sqrt(lambda_i(S1^(1/2) S2 S1^(1/2))),

which needs only symmetric factorisations: a Cholesky factor (or, for singular S1, an eigendecomposition)
standing in for S1^(1/2), then the eigenvalues of one symmetric matrix. That is several times faster
than a Schur-based sqrtm and has no spurious imaginary parts; eigenvalues that round-off makes slightly
negative are clamped to 0.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg

from ganbench.files import atomic_path, atomic_write
from ganbench.metrics.errors import MetricInputError, one_line

__all__ = [
    "as_features",
    "check_same_input_mode",
    "feature_statistics",
    "frechet_distance",
    "load_statistics",
    "save_statistics",
    "statistics_complete",
    "statistics_input_mode",
]


def as_features(feats: Any, name: str = "features", min_samples: int = 2) -> np.ndarray:
    """Validate an (N, D) feature array (numpy or torch) and return it as float64."""
    if hasattr(feats, "detach"):  # a torch tensor, without importing torch here
        feats = feats.detach().cpu().numpy()
    arr = np.asarray(feats)
    if arr.ndim != 2:
        raise MetricInputError(
            f"{name} must be a 2-D array (samples, dims), got shape {tuple(arr.shape)}; "
            "flatten each sample's features into one row"
        )
    if not np.issubdtype(arr.dtype, np.number):
        raise MetricInputError(f"{name} must be numeric, got dtype {arr.dtype}; pass float features")
    if arr.shape[0] < min_samples:
        raise MetricInputError(
            f"{name} has {arr.shape[0]} sample(s), need at least {min_samples}; use more images"
        )
    if arr.shape[1] < 1:
        raise MetricInputError(f"{name} has 0 feature dimensions; check the feature extractor")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise MetricInputError(
            f"{name} contains NaN or infinite values in {bad} of {arr.shape[0]} samples; "
            "check the images fed to the network (e.g. a diverged generator)"
        )
    return arr


def feature_statistics(feats: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of (N, D) features, in float64, with the unbiased (N-1) normalisation.

    The same estimate as pytorch-fid's ``np.mean(act, 0)`` / ``np.cov(act, rowvar=False)``. Warns when
    N <= D: the covariance is then singular and FID is strongly biased upwards (use >= 10,000 samples
    for numbers comparable with papers, which report FID on 50,000).
    """
    x = as_features(feats)
    n, d = x.shape
    if n <= d:
        warnings.warn(
            f"FID statistics from {n} samples of {d}-dim features: fewer samples than dimensions gives a "
            "singular covariance and a biased FID; use more samples (papers use 50,000)",
            RuntimeWarning,
            stacklevel=2,
        )
    mu = x.mean(axis=0)
    sigma = np.cov(x, rowvar=False, ddof=1)
    return mu, np.atleast_2d(sigma)


def check_stats(mu: Any, sigma: Any, which: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    sigma = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    if mu.ndim != 1:
        raise MetricInputError(f"mu{which} must be a vector, got shape {mu.shape}; pass the feature mean")
    if sigma.shape != (mu.shape[0], mu.shape[0]):
        raise MetricInputError(
            f"sigma{which} has shape {sigma.shape} but mu{which} has {mu.shape[0]} dims; "
            "pass the covariance of the same features"
        )
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise MetricInputError(
            f"statistics {which} contain NaN or infinite values; recompute them from finite features"
        )
    return mu, sigma


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((S1 S2)^(1/2)) = sum sqrt(eig(S1^(1/2) S2 S1^(1/2))) for symmetric PSD S1, S2 (see module doc).

    When S1 is positive definite (the usual case: more samples than dimensions), its Cholesky factor
    S1 = L L^T stands in for S1^(1/2): L = S1^(1/2) Q with Q orthogonal (polar decomposition), so
    L^T S2 L = Q^T [S1^(1/2) S2 S1^(1/2)] Q has the same eigenvalues and costs a Cholesky instead of a
    full eigendecomposition. Otherwise (singular S1, e.g. fewer samples than dims) S1^(1/2) comes from
    ``eigh`` with round-off negative eigenvalues clamped to 0.
    """
    s1 = 0.5 * (sigma1 + sigma1.T)
    s2 = 0.5 * (sigma2 + sigma2.T)
    try:
        factor = scipy.linalg.cholesky(s1, lower=True, check_finite=False)
        m = factor.T @ s2 @ factor
    except np.linalg.LinAlgError:  # not positive definite
        w, v = np.linalg.eigh(s1)
        root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T  # S1^(1/2), PSD by construction
        m = root1 @ s2 @ root1
    m = 0.5 * (m + m.T)
    lam = np.linalg.eigvalsh(m)
    return float(np.sqrt(np.clip(lam, 0.0, None)).sum())


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (FID when they describe Inception pool3).

    Agrees with ``pytorch_fid.fid_score.calculate_frechet_distance`` to ~1e-9 relative on well-conditioned
    statistics. If the eigendecompositions fail or give non-finite values, retries once with ``eps`` added
    to both diagonals (pytorch-fid's fallback) and warns. Round-off can make a distance between
    identical statistics a tiny negative number; it is clamped to 0.
    """
    mu1, sigma1 = check_stats(mu1, sigma1, "1")
    mu2, sigma2 = check_stats(mu2, sigma2, "2")
    if mu1.shape != mu2.shape:
        raise MetricInputError(
            f"statistics have different dimensions ({mu1.shape[0]} vs {mu2.shape[0]}); "
            "compute both from the same feature layer (same --dims)"
        )
    diff = mu1 - mu2
    try:
        tr_covmean = _trace_sqrt_product(sigma1, sigma2)
    except np.linalg.LinAlgError:
        tr_covmean = float("nan")
    if not np.isfinite(tr_covmean):
        warnings.warn(
            f"Frechet distance: eigendecomposition failed or was not finite; adding {eps} to the diagonal "
            "of both covariances",
            RuntimeWarning,
            stacklevel=2,
        )
        offset = np.eye(sigma1.shape[0]) * eps
        try:
            tr_covmean = _trace_sqrt_product(sigma1 + offset, sigma2 + offset)
        except np.linalg.LinAlgError as exc:
            raise MetricInputError(
                f"Frechet distance failed even with eps={eps} on the diagonal ({one_line(exc)}); "
                "check the statistics (are they covariances?)"
            ) from None
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    return max(value, 0.0)


# --------------------------------------------------------------------------------------------------------
# Statistics files: pytorch-fid's npz format (arrays "mu" and "sigma"), plus a JSON sidecar "<path>.json".


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where the JSON description of a statistics file lives: the npz path plus ".json"."""
    p = Path(path)
    return p.with_name(p.name + ".json")


def save_statistics(path: str | os.PathLike, mu: Any, sigma: Any, meta: dict[str, Any] | None = None,
                    inception_input: str | None = None) -> Path:
    """Write mu/sigma as pytorch-fid's npz (``python -m pytorch_fid stats.npz dir`` reads it) plus a sidecar.

    A path without the ".npz" suffix gets it (pytorch-fid only recognises statistics files by it). The
    sidecar ``<path>.json`` holds ``meta`` (suggested keys: source, count, network, weights_sha256) and
    ``dims``. ``inception_input`` (the Inception input mode, ``pytorch-fid`` or ``tf1``) is written into
    the npz itself as a string array of that name (pytorch-fid reads only ``mu`` and ``sigma``) and into the
    sidecar. Both files are written atomically. Returns the npz path.
    """
    mu, sigma = check_stats(mu, sigma, "")
    p = Path(path)
    if p.suffix != ".npz":
        p = p.with_name(p.name + ".npz")
    if not p.parent.is_dir():
        raise MetricInputError(
            f"cannot save statistics to {p}: folder {p.parent} does not exist; create it first"
        )
    info = _jsonable(dict(meta or {}))
    info["dims"] = int(mu.shape[0])
    info.setdefault("format", "pytorch-fid npz: mu (D,), sigma (D, D), float64")
    arrays: dict[str, np.ndarray] = {"mu": mu, "sigma": sigma}
    if inception_input is not None:
        info["inception_input"] = str(inception_input)
        arrays["inception_input"] = np.array(str(inception_input))
    try:
        text = json.dumps(info, indent=2, sort_keys=True)
    except TypeError as exc:
        raise MetricInputError(
            f"statistics metadata is not JSON-serialisable ({one_line(exc)}); pass plain str/int/float values"
        ) from None
    # the sidecar goes first and comes back last: a writer killed in between leaves an npz without one (which
    # statistics_complete rejects), never a new npz described by the old file's sidecar
    sidecar_path(p).unlink(missing_ok=True)
    with atomic_path(p) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    atomic_write(sidecar_path(p), text + "\n")
    return p


def statistics_complete(path: str | os.PathLike) -> bool:
    """True when path holds statistics that save_statistics finished writing (npz and sidecar, both readable);
    a cache of statistics rebuilds when this is False rather than trusting what a killed writer left."""
    p = Path(path)
    if not (p.is_file() and sidecar_path(p).is_file()):
        return False
    try:
        load_statistics(p)
    except MetricInputError:
        return False
    return True


def load_statistics(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read (mu, sigma, meta) from a pytorch-fid npz (ours or pytorch-fid's ``--save-stats``).

    ``meta`` is the sidecar's content, or {} when there is none (files written by pytorch-fid).
    """
    p = Path(path)
    if not p.is_file():
        raise MetricInputError(
            f"statistics file {p} not found; check the path or save it first from real images"
        )
    try:
        with np.load(p, allow_pickle=False) as f:
            if "mu" not in f.files or "sigma" not in f.files:
                raise MetricInputError(
                    f"{p} has arrays {sorted(f.files)} but needs 'mu' and 'sigma'; "
                    "it is not an FID statistics file (pytorch-fid --save-stats format)"
                )
            mu, sigma = np.array(f["mu"]), np.array(f["sigma"])
            mode = str(f["inception_input"]) if "inception_input" in f.files else None
    except MetricInputError:
        raise
    except Exception as exc:
        raise MetricInputError(
            f"cannot read statistics file {p} ({type(exc).__name__}: {one_line(exc, 120)}); "
            "it is corrupt or not an npz file: recreate it"
        ) from None
    mu, sigma = check_stats(mu, sigma, f" in {p}")
    meta: dict[str, Any] = {}
    side = sidecar_path(p)
    if side.is_file():
        try:
            meta = json.loads(side.read_text())
        except (OSError, ValueError) as exc:
            raise MetricInputError(
                f"cannot read {side} ({one_line(exc, 120)}); fix or delete the sidecar"
            ) from None
        if not isinstance(meta, dict):
            raise MetricInputError(f"{side} must hold a JSON object; fix or delete the sidecar")
        if "dims" in meta and meta["dims"] != mu.shape[0]:
            raise MetricInputError(
                f"{side} says dims={meta['dims']} but {p} holds {mu.shape[0]}-dim statistics; "
                "the sidecar belongs to another file: delete it or recreate both"
            )
    if mode is not None:
        meta["inception_input"] = mode  # the npz's own entry wins over the sidecar
    return mu, sigma, meta


def statistics_input_mode(meta: dict[str, Any]) -> str:
    """The Inception input mode statistics were computed with: the stored one, else ``pytorch-fid`` (files
    without the entry come from pytorch-fid itself or from ganbench before the tf1 mode existed)."""
    return str(meta.get("inception_input") or "pytorch-fid")


def check_same_input_mode(meta: dict[str, Any], mode: str, where: str) -> None:
    """Refuse to compare statistics computed with another Inception input mode than ``mode``."""
    theirs = statistics_input_mode(meta)
    if theirs != mode:
        raise MetricInputError(
            f"{where} holds statistics of Inception input mode {theirs!r} but this evaluation uses {mode!r}: "
            f"their FID would mix two input pipelines; recompute them with `ganbench stats ... --inception-input "
            f"{mode}` or evaluate with --inception-input {theirs}"
        )
