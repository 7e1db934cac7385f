"""SS-GAN (Chen, Zhai, Ritter, Lucic, Houlsby 2019, "Self-Supervised GANs via Auxiliary Rotation Loss").

D also predicts which of four rotations (0, 90, 180, 270 degrees) an image was turned by, with a linear head on its
last conv features. The paper's losses (its eq. 1 with V the GAN value):

    L_D = -V(G, D) - beta  * E_{x ~ P_data} E_{r ~ R} [log Q_D(R = r | x^r)]
    L_G = +V(G, D) - alpha * E_{x ~ P_G}    E_{r ~ R} [log Q_D(R = r | x^r)]

so D learns the rotation task on real images and G is rewarded for fakes whose rotation D can tell; alpha = 0.2 and
beta = 1 as in the paper.

Which images estimate the expectation over r (option `rotate`):
- "quarter" (default): the authors' code (google/compare_gan, gans/ssgan.py, with its rotated_batch_size equal to the
  batch size): the last quarter of the batch, each image in all four rotations, so the rotation loss reads as many
  images as the batch holds. mimicry's SSGAN spends the same count (each image of the batch in one rotation). D's
  extra work per step is one batch on each side.
- "all": every image of the batch in all four rotations, the exact expectation over r for the batch; four batches of
  extra D work on each side. Measured at the zoo's settings (dcgan32 width 32, batch 64, CIFAR-10, 2-core Intel
  Xeon with AMX, start-up included): 200 steps take 56 s with "quarter", 125 s with "all", 47 s for plain ns.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.errors import ConfigError
from ganbench.models.base import init_dcgan_weights
from ganbench.objectives.base import Logs, Objective, OwnedModule, unwrap
from ganbench.objectives.classic import Hinge, NonSaturating

# the GAN losses SS-GAN adds its rotation loss to: the paper pairs it with the non-saturating loss and the hinge loss
BASES: dict[str, type[Objective]] = {"ns": NonSaturating, "hinge": Hinge}
ROTATIONS = 4
ROTATE = ("quarter", "all")  # the images whose four rotations enter the rotation loss: see the module docstring


def images_to_rotate(images: torch.Tensor, rotate: str) -> torch.Tensor:
    """The images whose four rotations enter the rotation loss: all of them, or the last quarter of the batch (at
    least one image), as compare_gan takes them."""
    if rotate == "all":
        return images
    return images[-max(1, images.shape[0] // ROTATIONS):]


def rotated_batch(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The images turned by 0, 90, 180 and 270 degrees (counter-clockwise), stacked in that order, and the rotation
    labels 0..3 of its rows."""
    turned = torch.cat([torch.rot90(images, k, dims=(2, 3)) for k in range(ROTATIONS)])
    labels = torch.arange(ROTATIONS, device=images.device).repeat_interleave(images.shape[0])
    return turned, labels


def rotation_head(disc: nn.Module) -> nn.Linear:
    """A linear 4-way classifier on D's last conv map, flattened; DCGAN initialisation."""
    c, h, w = disc.layer_shapes()[-1]
    head = nn.Linear(c * h * w, ROTATIONS)
    init_dcgan_weights(head)
    return head


class SsGan(Objective):
    name = "ss-gan"
    paper = "Chen, Zhai, Ritter, Lucic & Houlsby 2019 (self-supervised GAN: auxiliary rotation loss)"
    description = "base GAN loss (base: ns or hinge) + beta * rotation cross-entropy of real images for D, " \
                  "+ alpha * rotation cross-entropy of fakes for G (rotate: quarter of the batch in four rotations, " \
                  "as the authors' code, or all); owns a linear rotation head on D's last features"
    options = {"base": "ns", "alpha": 0.2, "beta": 1.0, "rotate": "quarter"}

    def __init__(self, **options):
        super().__init__(**options)
        base = self.settings["base"]
        if base not in BASES:
            raise ConfigError(f"objective 'ss-gan': base {base!r} is not one of {', '.join(BASES)}; "
                              "pass --objective-arg base=ns or base=hinge")
        if self.settings["rotate"] not in ROTATE:
            raise ConfigError(f"objective 'ss-gan': rotate {self.settings['rotate']!r} is not one of "
                              f"{', '.join(ROTATE)}; pass --objective-arg rotate=quarter (the authors' code) or "
                              "rotate=all (every image in four rotations)")
        self.base = BASES[base]()
        self.output_kind = self.base.output_kind  # D's GAN output is the base loss's

    def build_modules(self, gen: nn.Module, disc: nn.Module) -> dict[str, OwnedModule]:
        return {"rotation": OwnedModule(rotation_head(disc), "d")}

    def rotation_loss(self, D: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean cross-entropy of the rotation head over the images to rotate (see `rotate`) in all four rotations,
        and its accuracy."""
        turned, labels = rotated_batch(images_to_rotate(images, self.settings["rotate"]))
        logits = self.modules["rotation"](unwrap(D).feature_maps(turned)[-1].flatten(1)).float()
        accuracy = (logits.detach().argmax(1) == labels).float().mean()
        return F.cross_entropy(logits, labels), accuracy

    def d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, Logs]:
        loss, logs = self.base.d_loss(D, real, fake)  # D(x) through D itself first: DDP's reducer is armed
        rotation, accuracy = self.rotation_loss(D, real)
        total = loss + float(self.settings["beta"]) * rotation
        return total, {**logs, "rotation_real": rotation.detach(), "rotation_acc_real": accuracy}

    def g_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, Logs]:
        loss, logs = self.base.g_loss(D, real, fake)
        rotation, accuracy = self.rotation_loss(D, fake)
        total = loss + float(self.settings["alpha"]) * rotation
        return total, {**logs, "rotation_fake": rotation.detach(), "rotation_acc_fake": accuracy}
