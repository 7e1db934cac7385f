"""The raw image as a representation: the floor every learner must beat (Coates et al. 2011 and the DCGAN paper's
tables have no such row; it answers "how much does any learner add over the pixels the SVM could read itself")."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ganbench.representations.base import check_image_shape


class PixelFeatures:
    """Images (N, C, H, W) uint8 -> their pixels in [-1, 1] (the scale G and D work in), flattened channel-major.

    There is nothing to fit; the "training" only records the image size and channels the learner accepts.
    """

    name = "pixels"
    description = "the raw image, flattened (C*H*W features), scaled to [-1, 1]"
    paper = "no learner: the floor"
    options: dict[str, Any] = {}

    def __init__(self, image_size: int, channels: int):
        self.image_size, self.channels = image_size, channels

    @property
    def dim(self) -> int:
        return self.channels * self.image_size**2

    def settings(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "channels": self.channels}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> PixelFeatures:
        return self

    def check_images(self, images: np.ndarray) -> None:
        check_image_shape(self.name, self.channels, self.image_size, images)

    def fit(self, images: np.ndarray, **_: Any) -> dict[str, Any]:
        self.check_images(images)
        return {}

    def transform(self, images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        self.check_images(images)
        x = torch.from_numpy(np.array(images)).to(device).float()  # a writable copy
        return (x / 127.5 - 1.0).flatten(1)
