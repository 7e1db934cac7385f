"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs", https://arxiv.org/abs/1801.01401).

KID is the unbiased estimate of the squared MMD between real and generated features with the cubic
polynomial kernel k(x, y) = (x.y / d + 1)^3, d the feature dimension:

    MMD^2_u = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i, y_j)
              - 2/m^2 sum_{i,j} k(x_i, y_j)

averaged over ``subsets`` random subsets of size m = min(subset_size, n_real, n_fake) drawn without
replacement (the paper's code and torch-fidelity default to 100 subsets of 1,000). Reported as
(mean, std with ddof=0) over the subsets. Values slightly below 0 are valid (similar distributions).

``sampling="torch-fidelity"`` draws the subsets as torch-fidelity does (one
``numpy.random.RandomState(seed)``, each round the generated subset first, then the real one), so the
same features give the same subsets and the same KID; the default draws with ``numpy.random.default_rng``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ganbench.metrics.errors import MetricInputError
from ganbench.metrics.fid import as_features
from ganbench.metrics.inception_score import SAMPLINGS

__all__ = ["kernel_inception_distance", "mmd2_unbiased", "polynomial_kernel"]


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / d + 1)^3 for all row pairs, in float64."""
    d = x.shape[1]
    return (x @ y.T / d + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between equally sized samples x, y (m >= 2) with the cubic polynomial kernel."""
    m = x.shape[0]
    k_xx = polynomial_kernel(x, x)
    k_yy = polynomial_kernel(y, y)
    k_xy = polynomial_kernel(x, y)
    off_xx = k_xx.sum() - np.trace(k_xx)
    off_yy = k_yy.sum() - np.trace(k_yy)
    return float((off_xx + off_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    real: Any, fake: Any, subsets: int = 100, subset_size: int = 1000, seed: int | None = 0,
    sampling: str = "ganbench",
) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over ``subsets`` seeded subsets of min(subset_size, n) samples."""
    x = as_features(real, name="real features")
    y = as_features(fake, name="fake features")
    if x.shape[1] != y.shape[1]:
        raise MetricInputError(
            f"real features have {x.shape[1]} dims but fake features {y.shape[1]}; use the same feature layer"
        )
    if subsets < 1 or subset_size < 2:
        raise MetricInputError(
            f"KID needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}"
        )
    m = min(subset_size, x.shape[0], y.shape[0])
    if sampling not in SAMPLINGS:
        raise MetricInputError(f"unknown sampling {sampling!r}; choose one of {', '.join(SAMPLINGS)}")
    legacy = sampling == "torch-fidelity"
    rng = np.random.RandomState(seed) if legacy else np.random.default_rng(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        if legacy:  # torch-fidelity's order: its input1 (generated) first
            yi = y[rng.choice(y.shape[0], m, replace=False)]
            xi = x[rng.choice(x.shape[0], m, replace=False)]
        else:
            xi = x[rng.choice(x.shape[0], m, replace=False)]
            yi = y[rng.choice(y.shape[0], m, replace=False)]
        values[i] = mmd2_unbiased(xi, yi)
    return float(values.mean()), float(values.std())
