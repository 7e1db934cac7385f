"""Optional parts of D and G that the GAN literature added to DCGAN: minibatch discrimination and virtual batch
normalisation (Salimans et al. 2016), layer norm in a critic (Gulrajani et al. 2017), spectral norm
(Miyato et al. 2018).
"""

from __future__ import annotations

import torch
from torch import nn

D_NORMS = ("batch", "layer", "none")
G_NORMS = ("batch", "vbn")


def d_norm_layer(kind: str, channels: int, eps: float) -> nn.Module | None:
    """The normalisation after a D conv: BatchNorm (DCGAN), layer norm over (C, H, W) with per-channel gain and bias
    (WGAN-GP's critic: its gradient penalty is per sample, so no batch coupling), or none."""
    if kind == "batch":
        return nn.BatchNorm2d(channels, eps=eps)
    if kind == "layer":
        return nn.GroupNorm(1, channels, eps=eps)
    if kind == "none":
        return None
    raise ValueError(f"unknown d_norm {kind!r}; choose one of {', '.join(D_NORMS)}")


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016, sec. 3.2: M = f T (N x B x C); o(x_i)_b = sum_j exp(-||M_ib - M_jb||_1), j over the batch
    (i included, as in the paper's sum); returns o (N x B), which D concatenates to f before its last layer."""

    def __init__(self, in_features: int, kernels: int = 100, kernel_dims: int = 5):
        super().__init__()
        self.kernels, self.kernel_dims = kernels, kernel_dims
        self.T = nn.Parameter(torch.randn(in_features, kernels * kernel_dims) * 0.05)  # the released code's init

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        m = (f @ self.T).view(-1, self.kernels, self.kernel_dims)
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(3)  # (N, N, B): ||M_ib - M_jb||_1
        return torch.exp(-l1).sum(0)


class VirtualBatchNorm(nn.Module):
    """Virtual batch normalisation (Salimans et al. 2016, sec. 3.4) for a batch whose first n_ref rows are a fixed
    reference batch: those rows are normalised with the reference statistics, every other row with the statistics of
    the reference batch together with itself ((n_ref * ref + own) / (n_ref + 1)), so a sample's output depends on the
    reference batch and on itself only, never on the rest of its batch."""

    def __init__(self, num_features: int, n_ref: int, eps: float = 1e-5):
        super().__init__()
        self.n_ref, self.eps = n_ref, eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = tuple(range(2, x.dim()))
        ref, rest = x[: self.n_ref], x[self.n_ref:]
        ref_mean = ref.mean(dim=(0, *spatial), keepdim=True)
        ref_sq = (ref * ref).mean(dim=(0, *spatial), keepdim=True)
        own_mean = rest.mean(dim=spatial, keepdim=True) if spatial else rest
        own_sq = (rest * rest).mean(dim=spatial, keepdim=True) if spatial else rest * rest
        w = 1.0 / (self.n_ref + 1)
        n_ref = len(ref)
        mean = torch.cat([ref_mean.expand(n_ref, *ref_mean.shape[1:]), (1 - w) * ref_mean + w * own_mean])
        sq = torch.cat([ref_sq.expand(n_ref, *ref_sq.shape[1:]), (1 - w) * ref_sq + w * own_sq])
        var = (sq - mean * mean).clamp_min(0)
        shape = (1, -1) + (1,) * len(spatial)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight.view(shape) + self.bias.view(shape)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every conv and linear weight in module, in place, with
    torch.nn.utils.parametrizations.spectral_norm (one power iteration per forward in training, as in the paper)."""
    from torch.nn.utils.parametrizations import spectral_norm

    for sub in list(module.modules()):
        if isinstance(sub, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
            spectral_norm(sub)
    return module
