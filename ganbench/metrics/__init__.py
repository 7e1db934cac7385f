"""Sample-quality metrics: FID, Inception Score, KID, precision/recall, density/coverage, digits-IS/FID.

Pure functions on numpy feature arrays, one module each: ``fid`` (Frechet distance, statistics files),
``inception_score``, ``kid``, ``prdc`` (precision/recall, density/coverage) and ``compute``
(``compute_all``). Feature extractors: ``inception`` (pytorch-fid's FID-Inception, weights lookup) and
``digits_classifier`` (a small CNN for the offline digits demo: digits-IS / digits-FID).

The functions ``inception_score.inception_score`` and ``prdc.prdc`` share their module's name, so import
them from the module (``from ganbench.metrics.inception_score import inception_score``).
"""

from __future__ import annotations

from ganbench.metrics.compute import METRICS, compute_all
from ganbench.metrics.errors import InceptionWeightsError, MetricInputError
from ganbench.metrics.fid import feature_statistics, frechet_distance, load_statistics, save_statistics
from ganbench.metrics.kid import kernel_inception_distance
from ganbench.metrics.prdc import density_coverage, precision_recall

__all__ = [
    "METRICS",
    "InceptionWeightsError",
    "MetricInputError",
    "compute_all",
    "density_coverage",
    "feature_statistics",
    "frechet_distance",
    "kernel_inception_distance",
    "load_statistics",
    "precision_recall",
    "save_statistics",
]
