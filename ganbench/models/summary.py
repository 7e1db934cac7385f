"""One row per registered model: what `ganbench models` prints."""

from __future__ import annotations

from typing import Any

from ganbench.models.base import Variant
from ganbench.registry import available_variants, load_variant_file


def describe_variant(variant: Variant) -> dict[str, Any]:
    """Name, image size, nz, parameter counts of G and D, feature_dim and layer shapes of the default build."""
    gen, disc = variant.build()
    return {
        "name": variant.name,
        "image_size": variant.image_size,
        "nz": gen.nz,
        "z_dist": gen.z_dist,
        "g_params": sum(p.numel() for p in gen.parameters()),
        "d_params": sum(p.numel() for p in disc.parameters()),
        "feature_dim": disc.feature_dim(),
        "layers": [list(s) for s in disc.layer_shapes()],
        "defaults": dict(variant.defaults),
        "objective": variant.objective,
        "options": dict(variant.options),
        "schedule": variant.schedule,
        "origin": dict(variant.origin),
        "description": variant.description,
    }


def describe_variants(variant_file: str | None = None) -> list[dict[str, Any]]:
    """describe_variant for every registered model (plus one loaded from a file, if given)."""
    if variant_file:
        load_variant_file(variant_file)
    return [describe_variant(v) for v in available_variants()]
