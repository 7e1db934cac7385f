"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs", https://arxiv.org/abs/1606.03498).

IS = exp(E_x KL(p(y|x) || p(y))), with p(y) the mean of p(y|x) over the split, computed on ``splits``
disjoint parts of the samples and reported as mean and (population, ddof=0) standard deviation over
the parts, as in the reference code (openai/improved-gan, ``inception_score/model.py``).

Which logits: the reference takes the TF 2015 graph's pool3 features times the ``softmax/logits``
weight matrix, i.e. all 1008 outputs and no bias (the graph's extra 8 classes are unused but still take
a little probability mass); torch-fidelity's default ``logits_unbiased`` does the same. We follow
them: pass ``extract(...)["logits"]`` (1008 columns, no bias). Restricting to 1000 classes or adding
the bias changes the score in the 2nd-3rd digit and makes it incomparable with published numbers.

Order of samples: the reference splits the samples in the order given; torch-fidelity shuffles with a
fixed seed first. Here ``seed`` (default 0) shuffles with ``numpy.random.default_rng(seed)`` before
splitting; ``seed=None`` keeps the given order, as the reference does. With one split the order is
irrelevant. ``sampling="torch-fidelity"`` shuffles as torch-fidelity does instead
(``numpy.random.RandomState(seed).permutation``; its default seed is 2020), so that the same splits, and
hence the same score, come out of the same logits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ganbench.metrics.errors import MetricInputError
from ganbench.metrics.fid import as_features

__all__ = ["SAMPLINGS", "inception_score", "permutation", "softmax"]

# How seeded subsets are drawn: ganbench's numpy Generator, or the legacy RandomState torch-fidelity uses.
SAMPLINGS = ("ganbench", "torch-fidelity")


def permutation(n: int, seed: int, sampling: str = "ganbench") -> np.ndarray:
    """A seeded permutation of range(n) in the given sampling convention."""
    if sampling not in SAMPLINGS:
        raise MetricInputError(f"unknown sampling {sampling!r}; choose one of {', '.join(SAMPLINGS)}")
    if sampling == "torch-fidelity":
        return np.random.RandomState(seed).permutation(n)
    return np.random.default_rng(seed).permutation(n)


def softmax(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p, log p) of row-wise softmax in float64, stable for large logits."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return np.exp(log_p), log_p


def inception_score(logits: Any, splits: int = 10, seed: int | None = 0,
                    sampling: str = "ganbench") -> tuple[float, float]:
    """(mean, std) of exp(mean_x KL(p(y|x) || p(y))) over ``splits`` parts; ``logits`` is (N, classes).

    The parts are ``[i * N // splits, (i + 1) * N // splits)`` of the (shuffled unless ``seed=None``)
    samples, as in the reference. Works for any classifier's logits (e.g. digits-IS with 10 classes).
    """
    x = as_features(logits, name="logits", min_samples=1)
    n = x.shape[0]
    if not isinstance(splits, (int, np.integer)) or splits < 1:
        raise MetricInputError(f"IS splits must be a positive integer, got {splits!r}")
    if n < splits:
        raise MetricInputError(
            f"Inception Score with {splits} splits needs at least {splits} samples, got {n}; "
            "use more samples or fewer splits"
        )
    if seed is not None:
        x = x[permutation(n, seed, sampling)]
    p, log_p = softmax(x)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        part, log_part = p[lo:hi], log_p[lo:hi]
        log_py = np.log(part.mean(axis=0))
        # p * (log p - log p(y)), with 0 log 0 = 0 for classes whose probability underflowed to 0.
        kl = np.where(part > 0, part * (log_part - log_py), 0.0).sum(axis=1)
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))
