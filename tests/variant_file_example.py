"""A GAN variant defined in a loose file, loaded with --variant tests/variant_file_example.py:WIDE_D."""

from ganbench.models.base import Variant
from ganbench.models.dcgan import ConvDiscriminator, ConvGenerator


def make_g(nz: int, channels: int) -> ConvGenerator:
    return ConvGenerator(nz, 32, [16], [2, 2], 3, channels, "linear", "normal")


def make_d(ndf: int, channels: int) -> ConvDiscriminator:
    return ConvDiscriminator([ndf, 2 * ndf], [2, 2], 3, channels, 16, "linear")


WIDE_D = Variant("filevariant16", make_g, make_d, {"nz": 16, "ndf": 8, "channels": 1}, 16,
                 loss="hinge", description="file toy")
