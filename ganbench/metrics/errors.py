"""Errors of the metrics room; both subclass GanbenchError, so the CLI prints them as one line (exit 2)."""

from __future__ import annotations

from ganbench.errors import GanbenchError


class InceptionWeightsError(GanbenchError):
    """The Inception weights file is missing (and not downloadable), unreadable or not the FID network's."""


class MetricInputError(GanbenchError):
    """Features, statistics or images that a metric cannot use: too few samples, mismatched dims, NaN/inf."""


def one_line(text: object, limit: int = 300) -> str:
    """Collapse whitespace (newlines included) so a message stays on one line; cut very long texts."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
