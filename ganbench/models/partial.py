"""The partial DCGAN models of incomplete releases of the authors' weights (Newmu/dcgan_code): the leading conv
blocks of a released discriminator, no classifier head, and no generator.

`dcgan32-partial` is what the ImageNet 32x32 release allows (its discriminator's layers 1-4); `dcgan-svhn32-partial`
serves an incomplete copy of the SVHN release. ganbench/interop/dcgan_code.py writes checkpoints of these models.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ganbench.errors import ModelError
from ganbench.models.base import Generator, Variant
from ganbench.models.catalog import register_variant
from ganbench.models.dcgan import ConvDiscriminator

AUTHORS_BN_EPS = 1e-8


class AbsentGenerator(Generator):
    """Stands in for a generator whose weights the release lacks: knows its prior, refuses to generate."""

    def __init__(self, nz: int, channels: int = 3, image_size: int = 32, z_dist: str = "uniform",
                 model: str = "partial model"):
        super().__init__()
        self.nz, self.channels, self.image_size, self.z_dist = nz, channels, image_size, z_dist
        self.model = model

    def sample_z(self, n: int, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> torch.Tensor:
        if device is None:
            device = generator.device if generator is not None else "cpu"  # no parameters to take a device from
        return super().sample_z(n, generator=generator, device=device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        raise ModelError(
            f"{self.model}: no generator (the authors' release lacks its weights); "
            "use its discriminator's feature maps only"
        )


class PartialConvDiscriminator(ConvDiscriminator):
    """The first n_layers conv blocks of a ConvDiscriminator (same module names), without a classifier head."""

    def __init__(self, widths, strides, kernel: int, n_layers: int, channels: int = 3, image_size: int = 32,
                 bn_eps: float = AUTHORS_BN_EPS, model: str = "partial model"):
        if not 1 <= n_layers <= len(widths):
            raise ValueError(f"n_layers must be between 1 and {len(widths)}, got {n_layers}")
        super().__init__(list(widths)[:n_layers], list(strides)[:n_layers], kernel, channels, image_size,
                         "linear", bn_eps)
        del self.head  # the release lacks the layers between these blocks and the dense head
        self.n_layers, self.model = n_layers, model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ModelError(
            f"partial discriminator: no classifier head ({self.model} keeps conv layers 1-{self.n_layers} only); "
            "use feature_maps"
        )


def _partial_variant(name: str, widths: Callable[[int], list[int]], strides: list[int], kernel: int,
                     nz: int, ndf: int, n_layers: int, z_dist: str, description: str) -> Variant:
    def gen(nz: int, channels: int) -> AbsentGenerator:
        return AbsentGenerator(nz, channels, 32, z_dist, name)

    def disc(ndf: int, channels: int, n_layers: int, bn_eps: float) -> PartialConvDiscriminator:
        return PartialConvDiscriminator(widths(ndf), strides, kernel, n_layers, channels, 32, bn_eps, name)

    defaults = {"nz": nz, "ndf": ndf, "channels": 3, "n_layers": n_layers, "bn_eps": AUTHORS_BN_EPS}
    return Variant(name, gen, disc, defaults, 32, description=description)


register_variant(_partial_variant(
    "dcgan32-partial", lambda ndf: [ndf, ndf, 2 * ndf, 2 * ndf, 4 * ndf, 4 * ndf], [1, 2, 1, 2, 1, 2], 3,
    256, 128, 4, "uniform",
    "leading conv layers (n_layers, default 4) of dcgan32's D, no head, no G: the incomplete authors' release",
))
register_variant(_partial_variant(
    "dcgan-svhn32-partial", lambda ndf: [ndf, 2 * ndf, 4 * ndf], [2, 2, 2], 5,
    100, 64, 3, "normal",
    "leading conv layers (n_layers) of dcgan-svhn32's D, no head, no G: for an incomplete copy of the release",
))
