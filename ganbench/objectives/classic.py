"""Objectives that are functions of D's outputs alone: ns (the DCGAN paper's), minimax, lsgan, hinge."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.objectives.base import Logs, Objective


class OutputObjective(Objective):
    """D(real) then D(fake) in that order (BatchNorm sees them as two batches, as in the paper); losses of outputs."""

    def d_from_outputs(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_from_output(self, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, Logs]:
        real_out, fake_out = D(real), D(fake)
        return self.d_from_outputs(real_out.float(), fake_out.float()), self.output_logs(real_out, fake_out)

    def g_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, Logs]:
        return self.g_from_output(D(fake).float()), {}


class NonSaturating(OutputObjective):
    name = "ns"
    paper = "Goodfellow et al. 2014 (non-saturating G loss); Radford et al. 2015 (DCGAN)"
    description = "BCE on D's logits, G maximises log D(G(z)); real_label < 1 is one-sided label smoothing " \
                  "(Salimans et al. 2016 use 0.9)"
    options = {"real_label": 1.0}

    def d_from_outputs(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        # -log D(x) - log(1 - D(G(z))) in softplus form, so large logits cannot overflow
        t = float(self.settings["real_label"])
        if t == 1.0:
            return F.softplus(-real).mean() + F.softplus(fake).mean()
        # one-sided smoothing: the real target is t, the fake target stays 0
        return (t * F.softplus(-real) + (1 - t) * F.softplus(real)).mean() + F.softplus(fake).mean()

    def g_from_output(self, fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake).mean()


class Minimax(NonSaturating):
    name = "minimax"
    paper = "Goodfellow et al. 2014 (the saturating minimax G loss)"
    description = "BCE on D's logits, G minimises log(1 - D(G(z)))"

    def g_from_output(self, fake: torch.Tensor) -> torch.Tensor:
        return -F.softplus(fake).mean()  # log(1 - sigmoid(f)) = -softplus(f)


class LeastSquares(OutputObjective):
    name = "lsgan"
    paper = "Mao et al. 2017 (least-squares GAN)"
    description = "targets 1 for real and 0 for fake, halved as in the paper; G's target 1"
    output_kind = "critic"  # a raw score with targets 0 and 1, not a logit: shown raw

    def d_from_outputs(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()

    def g_from_output(self, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((fake - 1) ** 2).mean()


class Hinge(OutputObjective):
    name = "hinge"
    paper = "Lim & Ye 2017; Miyato et al. 2018 (with spectral normalisation: --spectral-norm)"
    description = "D: relu(1 - D(x)) + relu(1 + D(G(z))); G: -D(G(z))"
    output_kind = "critic"

    def d_from_outputs(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()

    def g_from_output(self, fake: torch.Tensor) -> torch.Tensor:
        return -fake.mean()
