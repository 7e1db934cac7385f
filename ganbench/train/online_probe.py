"""The online probe (--online-probe): a linear classifier trained during GAN training on D's features of the real
batches, a cheap curve of how linearly separable D's features are as training goes (as solo-learn does for
self-supervised learners; da Costa et al. 2022).

It reads the feature maps D computes anyway in its update on the real batch (forward hooks on the layers the
discriminator names in `feature_modules`; no extra forward pass), max-pools each to 4x4 and concatenates them as the
offline probe does (ganbench.features.pool_maps), detached, and takes one Adam step of a multinomial logistic
regression on them with the batch's labels. The labels reach only this head; D and G train exactly as without it (its
weights start at zero and draw no random numbers). Logged per D update, averaged over the log window:
probe_acc (the head's accuracy on the batch before it learns from it) and probe_loss (its cross-entropy).

It is a curve, not a table number: it sees D's features in training mode (batch statistics of the real batch), on
training images, through an unregularised head that never converges; the offline protocol (cifar10-400: frozen D,
L2-SVMs with a cross-validated C, test images) stays the measurement. The README gives one run of both.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ganbench import distributed
from ganbench.errors import ConfigError
from ganbench.features import pool_maps

LR = 1e-3  # Adam, betas (0.9, 0.999): the head's own optimizer, independent of the GAN's


class OnlineProbe:
    """Hooks on disc's feature layers and a linear head over their pooled maps; `arm` before D's update, `update`
    after it."""

    def __init__(self, disc: torch.nn.Module, n_classes: int, device: torch.device, world: int = 1):
        layers = disc.feature_modules() if hasattr(disc, "feature_modules") else None
        if not layers:
            raise ConfigError(f"--online-probe reads D's layers through {type(disc).__name__}.feature_modules(), "
                              "which this discriminator does not define; add it (the modules whose outputs "
                              "feature_maps returns) or train without --online-probe")
        self.world = world
        self.head = torch.nn.Linear(disc.feature_dim(grid=4), n_classes).to(device)
        with torch.no_grad():  # zeros: no draw from the random streams the run's training depends on
            self.head.weight.zero_()
            self.head.bias.zero_()
        self.opt = torch.optim.Adam(self.head.parameters(), lr=LR)
        self.maps: list[torch.Tensor] = []
        self.target: tuple[int, tuple[int, ...]] | None = None
        self.capturing = False
        disc.register_forward_pre_hook(self._enter)
        disc.register_forward_hook(self._leave)
        for module in layers:
            module.register_forward_hook(self._keep)

    def arm(self, real: torch.Tensor) -> None:
        """Capture the layers of D's next forward pass on exactly this batch (the real one of D's update)."""
        self.target, self.maps = (real.data_ptr(), tuple(real.shape)), []

    def _enter(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0] if args else None
        self.capturing = (self.target is not None and isinstance(x, torch.Tensor)
                          and (x.data_ptr(), tuple(x.shape)) == self.target)

    def _keep(self, module: torch.nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
        if self.capturing:
            with torch.no_grad():
                self.maps.append(pool_maps([out.detach().float()]))

    def _leave(self, module: torch.nn.Module, args: tuple[Any, ...], out: Any) -> None:
        if self.capturing:
            self.capturing, self.target = False, None

    def update(self, labels: torch.Tensor, objective: str) -> dict[str, torch.Tensor]:
        """One step of the head on the captured features; its accuracy (before the step) and loss."""
        if not self.maps:
            raise ConfigError(f"--online-probe: objective {objective} did not run D on the real batch as given, so "
                              "there are no features to probe; train without --online-probe")
        features = torch.cat(self.maps, 1)
        self.maps, self.target = [], None
        with torch.autocast(features.device.type, enabled=False):
            logits = self.head(features)
            loss = F.cross_entropy(logits, labels)
        acc = (logits.detach().argmax(1) == labels).float().mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.world > 1:  # the mean gradient over the ranks' slices: the step one process would take
            for p in self.head.parameters():
                distributed.all_reduce_(p.grad)
                p.grad /= self.world
        self.opt.step()
        return {"probe_acc": acc, "probe_loss": loss.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {"head": self.head.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.head.load_state_dict(state["head"])
        self.opt.load_state_dict(state["opt"])
