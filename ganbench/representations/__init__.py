"""What a probe reads when the learner is not a GAN's discriminator: fitted representations, images -> (N, d).

A representation class has `name`, `description`, `paper`, `options` (keyword options with their defaults), is built
as cls(image_size, channels, **options), learns in `fit(images, seed=, device=, progress=)` (returning what the
fit record should say), and maps uint8 images (N, C, H, W) to float features with `transform(images, device)`;
`settings()`, `state_dict()` and `load_state_dict()` make it a checkpoint. Networks (a GAN's D, an owned encoder)
are read by ganbench.features instead, which pools their feature maps.
"""

from __future__ import annotations

from typing import Any

from ganbench.errors import ConfigError
from ganbench.representations.kmeans import KMeansFeatures
from ganbench.representations.pixels import PixelFeatures

LEARNERS: dict[str, type] = {cls.name: cls for cls in (KMeansFeatures, PixelFeatures)}


def learner_class(name: str) -> type:
    """The representation class of a learner name, or ConfigError naming the known ones."""
    if name not in LEARNERS:
        raise ConfigError(f"unknown learner {name!r}; choose one of {', '.join(sorted(LEARNERS))} (GANs: leave "
                          "--learner out and pick --objective)")
    return LEARNERS[name]


def build_learner(name: str, image_size: int, channels: int, options: dict[str, Any]) -> Any:
    """An unfitted representation of that learner, its options checked (one line naming the accepted ones)."""
    cls = learner_class(name)
    unknown = sorted(set(options) - set(cls.options))
    if unknown:
        accepted = ", ".join(f"{k} (default {v})" for k, v in cls.options.items()) or "none"
        raise ConfigError(f"learner {name!r} takes no option {', '.join(unknown)}; it accepts {accepted}")
    return cls(image_size, channels, **options)


__all__ = ["LEARNERS", "KMeansFeatures", "PixelFeatures", "build_learner", "learner_class"]
