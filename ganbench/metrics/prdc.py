"""k-NN precision/recall and density/coverage between real and generated features.

* Improved precision and recall (Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for
  Assessing Generative Models", https://arxiv.org/abs/1904.06991), k = 3: each sample set's manifold is
  the union of balls around its points with radius = distance to the point's k-th nearest neighbour in
  its own set (itself excluded). precision = share of fake samples inside the real manifold, recall =
  share of real samples inside the fake manifold. "Inside" is ``<=`` as in the authors' code and
  torch-fidelity.
* Density and coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative
  Models", https://arxiv.org/abs/2002.09797), k = 5: density = (1 / (k M)) sum_j #{real i : fake j in
  B(real i, r_k(i))}; coverage = share of real points whose ball contains at least one fake point.
  "Inside" is strict ``<`` as in the authors' ``prdc`` package.

Both papers embed images with VGG-16 (fc2, 4096-d); ganbench uses the Inception pool3 features it
already has for FID, so results are labelled ``features="inception-pool3"`` and are not directly
comparable with VGG-16 numbers.

Distances are never held as a full N x M matrix: rows are processed in chunks of ~``chunk_mb`` MB, with
squared distances ||a||^2 + ||b||^2 - 2 a.b in float64 (comparisons use squared distances, which order
the same way), so 50,000 x 50,000 needs a few GB (the features themselves) rather than 20 GB.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ganbench.metrics.errors import MetricInputError
from ganbench.metrics.fid import as_features

__all__ = ["density_coverage", "precision_recall", "prdc"]

FEATURES_NOTE = "the papers used VGG-16 fc2 features; these k-NN metrics here use the named features instead"


def _prepare(real: Any, fake: Any, k_max: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = as_features(real, name="real features")
    y = as_features(fake, name="fake features")
    if x.shape[1] != y.shape[1]:
        raise MetricInputError(
            f"real features have {x.shape[1]} dims but fake features {y.shape[1]}; use the same feature layer"
        )
    for name, arr in (("real", x), ("fake", y)):
        if arr.shape[0] <= k_max:
            raise MetricInputError(
                f"{name} features have {arr.shape[0]} samples but k={k_max} nearest neighbours need at least "
                f"{k_max + 1}; use more samples or a smaller k"
            )
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))


def _rows_per_chunk(n_cols: int, chunk_mb: float) -> int:
    return max(1, int(chunk_mb * 2**20 // (8 * max(n_cols, 1))))


def _sq_dists(a: torch.Tensor, a_sq: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    d = a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return d.clamp_(min=0.0)


def _knn_sq_radii(x: torch.Tensor, ks: tuple[int, ...], chunk_mb: float) -> dict[int, torch.Tensor]:
    """Squared distance of each row of x to its k-th nearest other row, for each k in ks."""
    n = x.shape[0]
    sq = (x * x).sum(1)
    k_max = max(ks)
    out = {k: torch.empty(n, dtype=x.dtype, device=x.device) for k in ks}
    step = _rows_per_chunk(n, chunk_mb)
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        d = _sq_dists(x[lo:hi], sq[lo:hi], x, sq)
        rows = torch.arange(hi - lo, device=x.device)
        d[rows, rows + lo] = float("inf")  # exclude each point's distance to itself
        nearest = torch.topk(d, k_max, dim=1, largest=False, sorted=True).values
        for k in ks:
            out[k][lo:hi] = nearest[:, k - 1]
    return out


def prdc(
    real: Any,
    fake: Any,
    k_pr: int | None = 3,
    k_dc: int | None = 5,
    features: str = "inception-pool3",
    chunk_mb: float = 256.0,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Precision/recall (k_pr, skipped if None) and density/coverage (k_dc, skipped if None) in one pass.

    ``real``: (N, D), ``fake``: (M, D) features. Returns a dict with precision, recall, density, coverage
    (those asked for), k_pr, k_dc, features and a note on the papers' VGG-16 features. ``device="cuda"``
    runs the float64 distance chunks on the GPU (50,000 x 50,000 then takes seconds, not minutes).
    """
    ks = tuple(k for k in (k_pr, k_dc) if k is not None)
    if not ks:
        raise MetricInputError("prdc needs k_pr or k_dc; pass at least one neighbourhood size")
    if any((not isinstance(k, (int, np.integer))) or k < 1 for k in ks):
        raise MetricInputError(f"neighbourhood sizes must be positive integers, got {ks}")
    x, y = _prepare(real, fake, max(ks))
    x, y = x.to(device), y.to(device)
    with torch.no_grad():
        r_real = _knn_sq_radii(x, ks, chunk_mb)
        r_fake = _knn_sq_radii(y, (k_pr,), chunk_mb)[k_pr] if k_pr is not None else None
        x_sq, y_sq = (x * x).sum(1), (y * y).sum(1)
        n_real, n_fake = x.shape[0], y.shape[0]
        fake_in_real = torch.zeros(n_fake, dtype=torch.bool, device=x.device)  # precision
        real_in_fake = torch.zeros(n_real, dtype=torch.bool, device=x.device)  # recall
        density_count = 0
        nearest_fake = torch.full((n_real,), float("inf"), dtype=x.dtype, device=x.device)  # coverage
        step = _rows_per_chunk(n_real, chunk_mb)
        for lo in range(0, n_fake, step):
            hi = min(lo + step, n_fake)
            d = _sq_dists(y[lo:hi], y_sq[lo:hi], x, x_sq)  # (fake chunk, real)
            if k_pr is not None:
                fake_in_real[lo:hi] = (d <= r_real[k_pr][None, :]).any(dim=1)
                real_in_fake |= (d <= r_fake[lo:hi, None]).any(dim=0)
            if k_dc is not None:
                density_count += int((d < r_real[k_dc][None, :]).sum())
                nearest_fake = torch.minimum(nearest_fake, d.min(dim=0).values)
    out: dict[str, Any] = {}
    if k_pr is not None:
        out.update(
            precision=float(fake_in_real.double().mean()),
            recall=float(real_in_fake.double().mean()),
            k_pr=int(k_pr),
        )
    if k_dc is not None:
        out.update(
            density=density_count / (k_dc * n_fake),
            coverage=float((nearest_fake < r_real[k_dc]).double().mean()),
            k_dc=int(k_dc),
        )
    out.update(features=features, features_note=FEATURES_NOTE)
    return out


def precision_recall(
    real: Any,
    fake: Any,
    k: int = 3,
    features: str = "inception-pool3",
    chunk_mb: float = 256.0,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Kynkaanniemi et al. 2019 precision and recall with k nearest neighbours (default 3)."""
    return prdc(real, fake, k_pr=k, k_dc=None, features=features, chunk_mb=chunk_mb, device=device)


def density_coverage(
    real: Any,
    fake: Any,
    k: int = 5,
    features: str = "inception-pool3",
    chunk_mb: float = 256.0,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Naeem et al. 2020 density and coverage with k nearest neighbours (default 5)."""
    return prdc(real, fake, k_pr=None, k_dc=k, features=features, chunk_mb=chunk_mb, device=device)
