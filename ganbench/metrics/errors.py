"""Errors of the metrics room; both subclass GanbenchError, so the CLI prints them as one line (exit 2)."""

from __future__ import annotations

from ganbench.errors import GanbenchError, one_line  # noqa: F401 (one_line re-exported for the metrics)


class InceptionWeightsError(GanbenchError):
    """The Inception weights file is missing (and not downloadable), unreadable or not the FID network's."""


class MetricInputError(GanbenchError):
    """Features, statistics or images that a metric cannot use: too few samples, mismatched dims, NaN/inf."""
