"""WGAN-GP (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", algorithm 1)."""

from __future__ import annotations

import torch
from torch import nn

from ganbench.objectives.base import Logs, Objective


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[(||grad_x D(x_hat)||_2 - 1)^2] at x_hat = eps * real + (1 - eps) * fake, eps ~ U[0, 1] per sample."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    out = D(x_hat).float()
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


class WganGp(Objective):
    name = "wgan-gp"
    paper = "Gulrajani et al. 2017 (lambda 10, 5 critic steps, Adam 1e-4, betas (0, 0.9), no BatchNorm in the critic)"
    description = "Wasserstein critic with a gradient penalty on random interpolates; the critic's BatchNorm is " \
                  "replaced by layer norm (d_norm=layer) where the architecture allows"
    d_steps = 5
    output_kind = "critic"
    lr = 1e-4
    betas = (0.0, 0.9)
    model_defaults = {"d_norm": "layer"}
    options = {"gp_weight": 10.0}

    def d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, Logs]:
        real_out, fake_out = D(real).float(), D(fake).float()
        gp = gradient_penalty(D, real, fake)
        w = real_out.mean() - fake_out.mean()
        loss = -w + float(self.settings["gp_weight"]) * gp
        return loss, {**self.output_logs(real_out, fake_out), "gp": gp.detach(), "wasserstein": w.detach()}

    def g_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, Logs]:
        return -D(fake).float().mean(), {}
