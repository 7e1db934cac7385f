"""The DCGAN paper's architectures (Radford, Metz, Chintala 2015) as the authors' code built them.

dcgan32      the 32x32 ImageNet model released in Newmu/dcgan_code (used for the paper's CIFAR-10 result)
dcgan64      the 64x64 LSUN / faces model of the paper's figure 1 (5x5 kernels, as in the authors' code)
dcgan64-pt   pytorch/examples' `dcgan` (4x4 kernels, Gaussian z), for like-for-like comparison with that peer
dcgan-svhn32 the authors' released SVHN model (5x5 stride-2, three conv layers)

Every network is bias-free where BatchNorm follows, as in the authors' Theano code; the authors' generators
normalise the projected z per unit (BatchNorm1d over the C*4*4 outputs), which is kept here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ganbench.models.base import Discriminator, Generator, Variant, init_dcgan_weights
from ganbench.models.catalog import register_variant
from ganbench.models.parts import G_NORMS, MinibatchDiscrimination, VirtualBatchNorm, d_norm_layer


def _deconv(cin: int, cout: int, kernel: int, stride: int) -> nn.ConvTranspose2d:
    # out = (in-1)*s - 2p + k + op; this p and op make every layer scale the map by exactly `stride`
    pad = (kernel - 1) // 2
    return nn.ConvTranspose2d(
        cin, cout, kernel, stride=stride, padding=pad, output_padding=stride + 2 * pad - kernel, bias=False
    )


class ConvGenerator(Generator):
    """z -> project (linear or 4x4 transposed conv) to base_channels x 4 x 4 -> transposed convs -> tanh."""

    def __init__(
        self,
        nz: int,
        base_channels: int,
        widths: Sequence[int],
        strides: Sequence[int],
        kernel: int,
        channels: int = 3,
        project: str = "linear",
        z_dist: str = "uniform",
        bn_eps: float = 1e-5,
        g_norm: str = "batch",
        vbn_ref: int = 32,
    ):
        super().__init__()
        if len(widths) != len(strides) - 1:
            raise ValueError("widths must name the output channels of every layer but the last")
        if g_norm not in G_NORMS:
            raise ValueError(f"unknown g_norm {g_norm!r}; choose one of {', '.join(G_NORMS)}")
        if g_norm == "vbn" and vbn_ref < 2:
            raise ValueError(f"vbn_ref must be at least 2, got {vbn_ref}")

        def norm(kind: type[nn.Module], n: int) -> nn.Module:
            return VirtualBatchNorm(n, vbn_ref, bn_eps) if g_norm == "vbn" else kind(n, eps=bn_eps)

        self.nz, self.channels, self.z_dist = nz, channels, z_dist
        self.base_channels = base_channels
        self.image_size = 4
        for s in strides:
            self.image_size *= s
        if project == "linear":
            self.project = nn.Sequential(
                nn.Linear(nz, base_channels * 16, bias=False),
                norm(nn.BatchNorm1d, base_channels * 16),
                nn.ReLU(True),
            )
        elif project == "convT":
            self.project = nn.Sequential(
                nn.Unflatten(1, (nz, 1, 1)),
                nn.ConvTranspose2d(nz, base_channels, 4, 1, 0, bias=False),
                norm(nn.BatchNorm2d, base_channels),
                nn.ReLU(True),
            )
        else:
            raise ValueError(f"unknown projection {project!r}")
        layers: list[nn.Module] = []
        cin = base_channels
        for cout, stride in zip(widths, strides[:-1]):
            layers += [_deconv(cin, cout, kernel, stride), norm(nn.BatchNorm2d, cout), nn.ReLU(True)]
            cin = cout
        self.body = nn.Sequential(*layers, _deconv(cin, channels, kernel, strides[-1]), nn.Tanh())
        init_dcgan_weights(self)
        self.vbn_ref = vbn_ref if g_norm == "vbn" else 0
        if self.vbn_ref:
            # the fixed reference batch of virtual BN, drawn once and saved with the weights
            self.register_buffer("ref_z", self.sample_z(vbn_ref, generator=torch.Generator().manual_seed(0),
                                                        device="cpu"))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.vbn_ref:  # the reference batch travels in front of z through every layer (VirtualBatchNorm)
            z = torch.cat([self.ref_z.to(z.dtype), z])
        h = self.project(z)
        if h.dim() == 2:
            h = h.view(-1, self.base_channels, 4, 4)
        out = self.body(h)
        return out[self.vbn_ref:] if self.vbn_ref else out


class ConvDiscriminator(Discriminator):
    """Strided convs with LeakyReLU(0.2), BatchNorm on all but the first, then a linear or 4x4-conv head."""

    def __init__(
        self,
        widths: Sequence[int],
        strides: Sequence[int],
        kernel: int,
        channels: int = 3,
        image_size: int = 32,
        head: str = "linear",
        bn_eps: float = 1e-5,
        d_norm: str = "batch",
        minibatch_kernels: int = 0,
        minibatch_dims: int = 5,
    ):
        super().__init__()
        self.channels, self.image_size = channels, image_size
        pad = (kernel - 1) // 2
        blocks = []
        cin, size = channels, image_size
        for i, (cout, stride) in enumerate(zip(widths, strides)):
            norm = d_norm_layer(d_norm, cout, bn_eps) if i > 0 else None
            # a conv followed by normalisation needs no bias; without normalisation it gets one
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, pad, bias=i > 0 and norm is None)]
            if norm is not None:
                layers.append(norm)
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            blocks.append(nn.Sequential(*layers))
            cin, size = cout, size // stride
        self.blocks = nn.ModuleList(blocks)
        if minibatch_kernels < 0 or minibatch_dims < 1:
            raise ValueError("minibatch_kernels must be >= 0 and minibatch_dims >= 1")
        self.minibatch = (MinibatchDiscrimination(cin * size * size, minibatch_kernels, minibatch_dims)
                          if minibatch_kernels else None)
        if self.minibatch is not None:  # Salimans et al.: o(x) joins the last features before the last layer
            self.head = nn.Linear(cin * size * size + minibatch_kernels, 1, bias=False)
        elif head == "linear":
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(cin * size * size, 1, bias=False))
        elif head == "conv":
            self.head = nn.Sequential(nn.Conv2d(cin, 1, size, 1, 0, bias=False), nn.Flatten())
        else:
            raise ValueError(f"unknown head {head!r}")
        init_dcgan_weights(self)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for block in self.blocks:
            x = block(x)
            maps.append(x)
        return maps

    def feature_modules(self) -> list[nn.Module]:
        return list(self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        if self.minibatch is not None:
            f = x.flatten(1)
            return self.head(torch.cat([f, self.minibatch(f)], 1)).view(-1)
        return self.head(x).view(-1)


# architecture options every built-in accepts (Variant.options): recorded in a checkpoint only when changed
ARCH_OPTIONS = {"d_norm": "batch", "minibatch_kernels": 0, "minibatch_dims": 5, "g_norm": "batch", "vbn_ref": 32}
_G_OPTS, _D_OPTS = ("g_norm", "vbn_ref"), ("d_norm", "minibatch_kernels", "minibatch_dims")


def _g_opts(opts: dict) -> dict:
    return {k: v for k, v in opts.items() if k in _G_OPTS}


def _d_opts(opts: dict) -> dict:
    return {k: v for k, v in opts.items() if k in _D_OPTS}


# dcgan32: the authors' imagenet_gan_pretrain_128f_relu_lrelu_7l_3x3_256z (parameter shapes in ../shared/README.md)
def _g32(nz: int, ngf: int, channels: int, bn_eps: float, **opts) -> ConvGenerator:
    return ConvGenerator(
        nz, 4 * ngf, [4 * ngf, 2 * ngf, 2 * ngf, ngf, ngf], [2, 1, 2, 1, 2, 1], 3, channels, "linear",
        "uniform", bn_eps, **_g_opts(opts),
    )


def _d32(ndf: int, channels: int, bn_eps: float, **opts) -> ConvDiscriminator:
    widths = [ndf, ndf, 2 * ndf, 2 * ndf, 4 * ndf, 4 * ndf]
    return ConvDiscriminator(widths, [1, 2, 1, 2, 1, 2], 3, channels, 32, "linear", bn_eps, **_d_opts(opts))


def _g64(nz: int, ngf: int, channels: int, bn_eps: float, **opts) -> ConvGenerator:
    return ConvGenerator(
        nz, 8 * ngf, [4 * ngf, 2 * ngf, ngf], [2, 2, 2, 2], 5, channels, "linear", "uniform", bn_eps,
        **_g_opts(opts),
    )


def _d64(ndf: int, channels: int, bn_eps: float, **opts) -> ConvDiscriminator:
    return ConvDiscriminator([ndf, 2 * ndf, 4 * ndf, 8 * ndf], [2, 2, 2, 2], 5, channels, 64, "linear", bn_eps,
                             **_d_opts(opts))


def _g64pt(nz: int, ngf: int, channels: int, bn_eps: float, **opts) -> ConvGenerator:
    return ConvGenerator(
        nz, 8 * ngf, [4 * ngf, 2 * ngf, ngf], [2, 2, 2, 2], 4, channels, "convT", "normal", bn_eps,
        **_g_opts(opts),
    )


def _d64pt(ndf: int, channels: int, bn_eps: float, **opts) -> ConvDiscriminator:
    return ConvDiscriminator([ndf, 2 * ndf, 4 * ndf, 8 * ndf], [2, 2, 2, 2], 4, channels, 64, "conv", bn_eps,
                             **_d_opts(opts))


def _gsvhn(nz: int, ngf: int, channels: int, bn_eps: float, **opts) -> ConvGenerator:
    return ConvGenerator(nz, 4 * ngf, [2 * ngf, ngf], [2, 2, 2], 5, channels, "linear", "normal", bn_eps,
                         **_g_opts(opts))


def _dsvhn(ndf: int, channels: int, bn_eps: float, **opts) -> ConvDiscriminator:
    return ConvDiscriminator([ndf, 2 * ndf, 4 * ndf], [2, 2, 2], 5, channels, 32, "linear", bn_eps,
                             **_d_opts(opts))


register_variant(Variant(
    "dcgan32", _g32, _d32, {"nz": 256, "ngf": 128, "ndf": 128, "channels": 3, "bn_eps": 1e-5}, 32,
    description="paper's 32x32 ImageNet model (authors' release): 3x3 convs, 6 layers, z ~ U[-1,1]^256",
    options=ARCH_OPTIONS,
))
register_variant(Variant(
    "dcgan64", _g64, _d64, {"nz": 100, "ngf": 128, "ndf": 128, "channels": 3, "bn_eps": 1e-5}, 64,
    description="paper's 64x64 LSUN/faces model: 5x5 stride-2 convs, 1024x4x4 base, z ~ U[-1,1]^100",
    options=ARCH_OPTIONS,
))
register_variant(Variant(
    "dcgan64-pt", _g64pt, _d64pt, {"nz": 100, "ngf": 64, "ndf": 64, "channels": 3, "bn_eps": 1e-5}, 64,
    description="pytorch/examples dcgan: 4x4 kernels, no biases, z ~ N(0,1)^100",
    options=ARCH_OPTIONS,
))
register_variant(Variant(
    "dcgan-svhn32", _gsvhn, _dsvhn, {"nz": 100, "ngf": 64, "ndf": 64, "channels": 3, "bn_eps": 1e-5}, 32,
    description="authors' released SVHN model: 5x5 stride-2 convs 64-128-256, z ~ N(0,1)^100",
    options=ARCH_OPTIONS,
))
