"""GAN losses as pure functions of the discriminator's logits: (real_logits, fake_logits) -> loss tensors."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ganbench.errors import ConfigError


def bce_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))), written with softplus so large logits do not overflow."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def bce_g(fake: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss of Goodfellow et al. (2014): -log D(G(z))."""
    return F.softplus(-fake).mean()


def hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Hinge loss of Lim & Ye (2017) / Miyato et al. (2018)."""
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_g(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def lsgan_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN (Mao et al. 2017), targets 1 for real and 0 for fake, halved as in the paper."""
    return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()


def lsgan_g(fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((fake - 1) ** 2).mean()


LOSSES: dict[str, tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]] = {
    "bce": (bce_d, bce_g),
    "hinge": (hinge_d, hinge_g),
    "lsgan": (lsgan_d, lsgan_g),
}


def get_loss(name: str) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
    """(d_loss, g_loss) for a loss name."""
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]
