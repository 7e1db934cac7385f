"""A tiny third-party GAN variant, installed in the tests to prove the `ganbench.variants` entry point."""

import torch
from torch import nn

from ganbench.models.base import Discriminator, Generator, Variant, init_dcgan_weights


class ToyG(Generator):
    def __init__(self, nz: int = 8, channels: int = 1):
        super().__init__()
        self.nz, self.channels, self.image_size, self.z_dist = nz, channels, 16, "normal"
        self.net = nn.Sequential(nn.Linear(nz, channels * 16 * 16), nn.Tanh())
        init_dcgan_weights(self)

    def forward(self, z):
        return self.net(z).view(-1, self.channels, 16, 16)


class ToyD(Discriminator):
    def __init__(self, channels: int = 1, ndf: int = 4):
        super().__init__()
        self.channels, self.image_size = channels, 16
        self.conv = nn.Sequential(nn.Conv2d(channels, ndf, 3, 2, 1), nn.LeakyReLU(0.2))
        self.head = nn.Linear(ndf * 8 * 8, 1)
        init_dcgan_weights(self)

    def feature_maps(self, x):
        return [self.conv(x)]

    def forward(self, x):
        return self.head(torch.flatten(self.conv(x), 1)).view(-1)


def toy16() -> Variant:
    return Variant("toy16", ToyG, ToyD, {"nz": 8, "ndf": 4, "channels": 1}, 16, description="entry-point toy")


from ganbench.objectives import Objective  # noqa: E402


class ToyObjective(Objective):
    """A least-absolute-deviation objective, to prove the `ganbench.objectives` entry point."""

    name = "toy-l1"
    paper = "a test plugin"
    output_kind = "critic"

    def d_loss(self, D, real, fake):
        r, f = D(real).float(), D(fake).float()
        return (r - 1).abs().mean() + f.abs().mean(), self.output_logs(r, f)

    def g_loss(self, D, real, fake):
        return (D(fake).float() - 1).abs().mean(), {}
