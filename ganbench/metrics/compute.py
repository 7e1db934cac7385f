"""All sample-quality metrics from one set of features per side (one Inception pass per image set)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ganbench.choices import QUALITY_METRICS
from ganbench.metrics.errors import MetricInputError
from ganbench.metrics.fid import check_stats, feature_statistics, frechet_distance
from ganbench.metrics.inception_score import inception_score
from ganbench.metrics.kid import kernel_inception_distance
from ganbench.metrics.prdc import prdc

__all__ = ["METRICS", "compute_all"]

METRICS = QUALITY_METRICS


def _split(feats: Any, side: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(pool3, logits) from an ``extract`` dict or a plain (N, D) array (features only)."""
    if feats is None:
        return None, None
    if isinstance(feats, dict):
        if "pool3" not in feats:
            raise MetricInputError(f"{side} features dict has no 'pool3' entry; pass the output of extract()")
        return feats["pool3"], feats.get("logits")
    return feats, None


def check_metrics(metrics: Sequence[str]) -> list[str]:
    """The metric names in lower case; unknown names (or none at all) are one error naming them."""
    wanted = [m.lower() for m in metrics]
    unknown = sorted(set(wanted) - set(METRICS))
    if unknown or not wanted:
        raise MetricInputError(f"unknown metric(s) {unknown or '(none)'}; choose from {list(METRICS)}")
    return wanted


def compute_all(
    real_feats: Any,
    fake_feats: Any,
    metrics: Sequence[str] = METRICS,
    *,
    real_stats: tuple[np.ndarray, np.ndarray] | None = None,
    is_splits: int = 10,
    is_seed: int | None = 0,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    kid_seed: int | None = 0,
    k_pr: int = 3,
    k_dc: int = 5,
    features: str = "inception-pool3",
    device: str = "cpu",
    sampling: str = "ganbench",
) -> dict[str, Any]:
    """Compute ``metrics`` (subset of fid, is, kid, pr, dc) and return a flat dict.

    ``real_feats`` / ``fake_feats``: dicts from :func:`ganbench.metrics.inception.extract` (``pool3`` and
    ``logits``) or plain (N, D) feature arrays. ``real_stats=(mu, sigma)`` (e.g. from
    :func:`load_statistics`) replaces the real features for FID; then ``real_feats`` may be None unless
    kid/pr/dc are asked for. IS uses the fake side's logits only. Keys: fid, is_mean, is_std, kid_mean,
    kid_std, precision, recall, density, coverage (those computed), n_fake, n_real (when known) and
    features (the name of the feature space). ``device`` runs the P/R/D/C distance chunks there.
    ``sampling``: how IS splits and KID subsets are drawn from their seeds, ``ganbench`` or
    ``torch-fidelity`` (its RandomState convention; see the metrics' modules).
    """
    wanted = check_metrics(metrics)
    real, _ = _split(real_feats, "real")
    fake, fake_logits = _split(fake_feats, "fake")
    if fake is None and fake_logits is None:
        raise MetricInputError("no fake features given; extract features of the generated images first")
    needs_real = [m for m in wanted if m in ("kid", "pr", "dc") or (m == "fid" and real_stats is None)]
    if needs_real and real is None:
        raise MetricInputError(
            f"metrics {needs_real} need real features; pass them (or real_stats for FID only)"
        )
    out: dict[str, Any] = {}
    if "fid" in wanted:
        mu_f, sig_f = feature_statistics(fake)
        if real_stats is not None:
            mu_r, sig_r = check_stats(real_stats[0], real_stats[1], " (real_stats)")
        else:
            mu_r, sig_r = feature_statistics(real)
        out["fid"] = frechet_distance(mu_r, sig_r, mu_f, sig_f)
    if "is" in wanted:
        if fake_logits is None:
            raise MetricInputError(
                "Inception Score needs the fake images' logits; pass the dict returned by extract()"
            )
        out["is_mean"], out["is_std"] = inception_score(
            fake_logits, splits=is_splits, seed=is_seed, sampling=sampling
        )
    if "kid" in wanted:
        out["kid_mean"], out["kid_std"] = kernel_inception_distance(
            real, fake, subsets=kid_subsets, subset_size=kid_subset_size, seed=kid_seed,
            sampling=sampling,
        )
    if "pr" in wanted or "dc" in wanted:
        r = prdc(
            real,
            fake,
            k_pr=k_pr if "pr" in wanted else None,
            k_dc=k_dc if "dc" in wanted else None,
            features=features,
            device=device,
        )
        out.update({k: r[k] for k in ("precision", "recall", "density", "coverage") if k in r})
    n_fake = fake if fake is not None else fake_logits
    out["n_fake"] = int(np.shape(n_fake)[0])
    if real is not None:
        out["n_real"] = int(np.shape(real)[0])
    out["features"] = features
    return out
