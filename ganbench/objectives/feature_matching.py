"""Feature matching (Salimans et al. 2016, "Improved Techniques for Training GANs", sec. 3.1)."""

from __future__ import annotations

import torch
from torch import nn

from ganbench.objectives.base import Logs
from ganbench.objectives.classic import NonSaturating


def feature_matching_distance(real_feats: torch.Tensor, fake_feats: torch.Tensor) -> torch.Tensor:
    """Mean over feature units of (E f(x) - E f(G(z)))^2; the paper writes the squared L2 norm, its released code
    (openai/improved-gan) averages over units, which only rescales the gradient Adam normalises anyway."""
    return ((real_feats.flatten(1).float().mean(0) - fake_feats.flatten(1).float().mean(0)) ** 2).mean()


class FeatureMatching(NonSaturating):
    name = "feature-matching"
    paper = "Salimans et al. 2016 (feature matching; D keeps the BCE loss)"
    description = "G matches the mean of D's features on real and fake batches at one layer " \
                  "(layer: index into D.feature_maps, default -1, the last conv layer)"
    options = {"real_label": 1.0, "layer": -1}

    def g_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, Logs]:
        layer = int(self.settings["layer"])
        with torch.no_grad():
            real_feats = D.feature_maps(real)[layer]
        fake_feats = D.feature_maps(fake)[layer]
        dist = feature_matching_distance(real_feats, fake_feats)
        return dist, {"fm_distance": dist.detach()}
