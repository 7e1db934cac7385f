"""BiGAN (Donahue, Kraehenbuehl & Darrell 2016, "Adversarial Feature Learning"; Dumoulin et al. 2016, ALI).

An encoder E: x -> z learns to invert G: the discriminator sees pairs, (x, E(x)) for real images and (G(z), z) for
fakes, and at the optimum E and G are inverses. E is the representation: a probe reads its conv features.

Here the pair discriminator is D's logit of x plus a joint term: D's last conv features of x joined with an MLP
embedding of z. D's own logit keeps every D parameter in the loss (DDP averages gradients only of parameters that
got one) and is a function of the pair like any other; the joint term is what lets D tell a mismatched pair.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.models.base import Discriminator, init_dcgan_weights
from ganbench.objectives.base import Logs, Objective, OwnedModule, unwrap


class Encoder(Discriminator):
    """E: images -> z. D's conv stack (a copy, spectral norm included when D has it, with new weights) and a
    linear map of its last map, flattened, to nz. It keeps the Discriminator feature contract (feature_maps,
    channels, layer_shapes, feature_dim), so the probes read it as they read D. The copy's output layer stays unused.
    """

    def __init__(self, disc: Discriminator, nz: int):
        super().__init__()
        # a copy, not a new instance: D's constructor arguments are not known here (any variant's D works).
        # Spectral norm stays: removing a parametrisation from a copy edits the class it shares with D
        self.trunk = copy.deepcopy(disc)
        init_dcgan_weights(self.trunk)
        self.channels, self.image_size = disc.channels, disc.image_size
        c, h, w = disc.layer_shapes()[-1]
        self.to_z = nn.Linear(c * h * w, nz)
        init_dcgan_weights(self.to_z)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.trunk.feature_maps(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_z(self.feature_maps(x)[-1].flatten(1))


class JointHead(nn.Module):
    """The joint term of the pair discriminator: [D's last conv features of x, MLP(z)] -> hidden -> one logit."""

    def __init__(self, feature_dim: int, nz: int, hidden: int):
        super().__init__()
        self.embed_z = nn.Sequential(nn.Linear(nz, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                     nn.LeakyReLU(0.2))
        self.joint = nn.Sequential(nn.Linear(feature_dim + hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))
        init_dcgan_weights(self)

    def forward(self, features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.joint(torch.cat([features.flatten(1), self.embed_z(z)], 1)).view(-1)


class BiGan(Objective):
    name = "bigan"
    paper = "Donahue, Kraehenbuehl & Darrell 2016 (BiGAN); Dumoulin et al. 2016 (ALI)"
    description = "D scores pairs (x, E(x)) as real and (G(z), z) as fake (BCE); G and E take the inverse labels. " \
                  "Owns the encoder E (G's side, a representation: D's conv stack, new weights, linear to nz) and " \
                  "the joint head of the pair discriminator (D's side; hidden: its width)"
    options = {"hidden": 256}
    representations = ("encoder",)
    takes_z = True

    def build_modules(self, gen: nn.Module, disc: nn.Module) -> dict[str, OwnedModule]:
        c, h, w = disc.layer_shapes()[-1]
        return {"encoder": OwnedModule(Encoder(disc, gen.nz), "g"),
                "joint": OwnedModule(JointHead(c * h * w, gen.nz, int(self.settings["hidden"])), "d")}

    def pair_score(self, D: nn.Module, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The pair discriminator's logit of (x, z): D(x) plus the joint term of D's last features and z.

        One pass through D where D names its layers (`feature_modules`) and is not compiled: a hook on the last
        layer keeps the map D(x) computes anyway. Otherwise a second pass, `feature_maps(x)`, as any D allows:
        the same values and gradients (BatchNorm sees the same batch), at about twice D's cost.
        """
        inner = unwrap(D)
        layers = inner.feature_modules() if hasattr(inner, "feature_modules") else None
        kept: list[torch.Tensor] = []
        handle = None
        if layers and not hasattr(D, "_orig_mod"):  # hooks added and removed per call would recompile a compiled D
            handle = layers[-1].register_forward_hook(lambda module, args, output: kept.append(output))
        try:
            out = D(x).float()  # through D itself first: under torchrun it arms DDP's reducer
        finally:
            if handle is not None:
                handle.remove()
        last = kept[-1] if kept else inner.feature_maps(x)[-1]
        return out + self.modules["joint"](last, z.to(x.dtype)).float()

    def d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, z: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, Logs]:
        with torch.no_grad():  # E is trained in G's step; D's update needs no gradient from it
            encoded = self.modules["encoder"](real)
        real_out, fake_out = self.pair_score(D, real, encoded), self.pair_score(D, fake, z)
        loss = F.softplus(-real_out).mean() + F.softplus(fake_out).mean()
        return loss, self.output_logs(real_out, fake_out)

    def g_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, z: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, Logs]:
        # the inverse labels, non-saturating: G wants (G(z), z) called real, E wants (x, E(x)) called fake
        real_out = self.pair_score(D, real, self.modules["encoder"](real))
        fake_out = self.pair_score(D, fake, z)
        g_part, e_part = F.softplus(-fake_out).mean(), F.softplus(real_out).mean()
        return g_part + e_part, {"loss_e": e_part.detach()}
