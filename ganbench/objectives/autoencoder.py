"""Autoencoders on the GAN's own architecture, so a GAN and an autoencoder of the same networks, data and budget
differ only in their objective: the encoder is D's architecture (a copy with new weights, BiGAN's `Encoder`) with a
linear head to z, the decoder is G, and the probe reads the encoder's feature maps as it reads a GAN's D
(`--representation encoder`; compare: `probe_representation = "encoder"`).

- autoencoder: mean squared reconstruction error (Hinton & Salakhutdinov 2006, "Reducing the dimensionality of data
  with neural networks", with convolutional networks).
- denoising-autoencoder: the encoder sees the image with additive Gaussian noise, the decoder must give the clean
  image back (Vincent et al. 2008/2010, "Stacked denoising autoencoders", which study Gaussian noise among others).
- vae: the encoder gives the mean and log-variance of q(z|x), z = mu + sigma * eps (the reparametrisation), the
  loss is the negative ELBO with a Gaussian decoder of fixed variance sigma^2: sum of squared errors / (2 sigma^2)
  plus KL(q(z|x) || N(0, I)) per image (Kingma & Welling 2014, "Auto-encoding variational Bayes", appendix B).

None of them trains D: `adversarial = False` tells the Trainer to make every step one update of G's side (G and
the owned encoder, with G's optimizer settings); D keeps its initial weights and is saved as it is.
"""

from __future__ import annotations

import torch
from torch import nn

from ganbench.objectives.base import Logs, Objective, OwnedModule
from ganbench.objectives.bigan import Encoder


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per row, summed over dimensions (Kingma & Welling 2014, appendix B)."""
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1)


class Autoencoder(Objective):
    name = "autoencoder"
    paper = "Hinton & Salakhutdinov 2006 (autoencoder); encoder = D's architecture + linear to z, decoder = G"
    description = "mean squared error of G(E(x)) against x; owns the encoder E (G's side, a representation); D is " \
                  "not trained"
    adversarial = False
    takes_g = True
    representations = ("encoder",)

    def code_size(self, gen: nn.Module) -> int:
        return int(gen.nz)

    def build_modules(self, gen: nn.Module, disc: nn.Module) -> dict[str, OwnedModule]:
        return {"encoder": OwnedModule(Encoder(disc, self.code_size(gen)), "g")}

    def encoder_input(self, real: torch.Tensor) -> torch.Tensor:
        return real

    def g_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, G: nn.Module | None = None
               ) -> tuple[torch.Tensor, Logs]:
        recon = G(self.modules["encoder"](self.encoder_input(real)))
        mse = (recon.float() - real.float()).square().mean()
        return mse, {"recon_mse": mse.detach()}


class DenoisingAutoencoder(Autoencoder):
    name = "denoising-autoencoder"
    paper = "Vincent et al. 2008 (denoising autoencoder), additive Gaussian corruption"
    description = "the encoder sees x plus Gaussian noise (noise_std, images in [-1, 1]); G(E(x~)) must give x back"
    options = {"noise_std": 0.2}

    def encoder_input(self, real: torch.Tensor) -> torch.Tensor:
        return real + float(self.settings["noise_std"]) * torch.randn_like(real)


class Vae(Autoencoder):
    name = "vae"
    paper = "Kingma & Welling 2014 (variational autoencoder), Gaussian decoder of fixed variance"
    description = "negative ELBO: sum of squared errors / (2 sigma^2) + beta * KL(q(z|x) || N(0, I)) per image; the " \
                  "encoder's head gives mu and log-variance; sigma: the decoder's std in [-1, 1] units"
    options = {"sigma": 0.1, "beta": 1.0}

    def code_size(self, gen: nn.Module) -> int:
        return 2 * int(gen.nz)  # mu and log-variance

    def g_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, G: nn.Module | None = None
               ) -> tuple[torch.Tensor, Logs]:
        mu, logvar = self.modules["encoder"](real).float().chunk(2, dim=1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        recon = G(z.to(real.dtype)).float()
        sq = (recon - real.float()).square().flatten(1).sum(1)
        kl = gaussian_kl(mu, logvar)
        sigma, beta = float(self.settings["sigma"]), float(self.settings["beta"])
        loss = (sq / (2 * sigma**2) + beta * kl).mean()
        return loss, {"recon_mse": (sq / recon[0].numel()).mean().detach(), "kl": kl.mean().detach()}
