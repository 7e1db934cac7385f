"""What every fitted representation shares: the check that images have the shape it was fitted on."""

from __future__ import annotations

import numpy as np

from ganbench.errors import ConfigError


def check_image_shape(name: str, channels: int, image_size: int, images: np.ndarray) -> None:
    """ConfigError in one line unless images are (N, channels, image_size, image_size)."""
    shape = tuple(images.shape[1:])
    want = (channels, image_size, image_size)
    if shape != want:
        have = "x".join(map(str, shape))
        raise ConfigError(f"this {name} representation was fitted on {'x'.join(map(str, want))} images; these are "
                          f"{have}: use images of the fitted size or fit it on these")
