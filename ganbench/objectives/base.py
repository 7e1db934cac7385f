"""The objective contract: D's and G's losses from the discriminator module itself and the real and fake batches.

An objective may call `D.feature_maps`, take gradients with respect to D's input, or keep state; the training loop
knows no objective by name. It declares how many D steps it takes per G step, whether D's output is a logit (shown as
a probability) or a critic value (shown raw), and its paper's optimizer defaults.

An objective may also own modules (a rotation head, an encoder), built from the architecture it is given and each
assigned to D's or G's side: the Trainer optimizes an owned module with its side's optimizer, in its side's update,
and saves and restores it with the checkpoint. The losses reach them as `self.modules[name]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

Logs = dict[str, torch.Tensor]
OUTPUT_KINDS = ("logit", "critic")
SIDES = ("d", "g")


@dataclass(frozen=True)
class OwnedModule:
    """A module an objective owns and the side that trains it: "d" (D's optimizer settings, updated in D's step)
    or "g" (G's, in G's step)."""

    module: nn.Module
    side: str


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside DDP and torch.compile wrappers, for calls other than forward (`D.feature_maps`).

    Under torchrun the gradients of such a call still reach the wrapped parameters and are averaged over the ranks,
    provided a forward through the wrapper ran in the same update (it arms DDP's reducer): call D(x) first.
    """
    while True:
        if isinstance(module, nn.parallel.DistributedDataParallel):
            module = module.module
        elif isinstance(getattr(module, "_orig_mod", None), nn.Module):  # torch.compile's OptimizedModule
            module = module._orig_mod
        else:
            return module


class Objective:
    """Base class of every objective; subclasses set the class attributes and implement d_loss and g_loss.

    Class attributes:
      name, paper        registry name and the citation `ganbench objectives` prints
      d_steps            D updates per G update (n_critic)
      output_kind        "logit" (D(x) shown as sigmoid) or "critic" (shown raw)
      lr, betas          the paper's Adam settings, or None to keep the architecture's defaults
      model_defaults     constructor arguments the objective needs from the architecture (e.g. no BatchNorm in a
                         WGAN-GP critic); applied when the architecture accepts them and the user did not set them
      options            the keyword options the constructor takes, with their defaults (shown and validated)
      representations    names of owned modules that are representations a probe may read: each implements the
                         Discriminator feature contract (feature_maps, channels, layer_shapes, feature_dim)
      takes_z            whether d_loss and g_loss take the latent batch of the fake batch as keyword z (BiGAN's
                         pair discriminator scores (G(z), z))
      takes_g            whether g_loss takes G itself as keyword G (as trained: its DDP wrapper under torchrun),
                         for losses of G on other inputs than the prior's z (an autoencoder's G(E(x)))
      adversarial        False for a learner without a D update (autoencoders): every step is then one update of
                         G's side on a real batch, d_loss is never called and D keeps its initial weights

    Owned modules: `build_modules(gen, disc)` returns them; the Trainer hands them to the losses through
    `use_modules` before each update, so that `self.modules[name]` is, in d_loss, a D-side module as trained (its
    DDP wrapper under torchrun) and a G-side module as a plain module whose outputs need no gradient (detach them
    or use torch.no_grad), and in g_loss the reverse. Outside the Trainer `own_modules` builds and attaches them.
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    description: ClassVar[str] = ""
    d_steps: ClassVar[int] = 1
    output_kind: ClassVar[str] = "logit"
    lr: ClassVar[float | None] = None
    betas: ClassVar[tuple[float, float] | None] = None
    model_defaults: ClassVar[Mapping[str, Any]] = {}
    options: ClassVar[Mapping[str, Any]] = {}
    representations: ClassVar[tuple[str, ...]] = ()
    takes_z: ClassVar[bool] = False
    takes_g: ClassVar[bool] = False
    adversarial: ClassVar[bool] = True

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            from ganbench.errors import ConfigError

            accepted = ", ".join(f"{k} (default {v})" for k, v in self.options.items()) or "none"
            raise ConfigError(f"objective {self.name!r} takes no option {', '.join(unknown)}; it accepts {accepted}")
        self.settings = {**self.options, **options}
        self.modules: dict[str, nn.Module] = {}

    def build_modules(self, gen: nn.Module, disc: nn.Module) -> dict[str, OwnedModule]:
        """New modules this objective owns, shaped from the architecture (D.layer_shapes(), gen.nz, D.channels,
        D.image_size), freshly initialised; none by default. Called once per run, on the CPU, after G and D are
        built (so under the run's seed), and again by checkpoint.build_owned_module to rebuild them."""
        return {}

    def own_modules(self, gen: nn.Module, disc: nn.Module) -> dict[str, OwnedModule]:
        """build_modules, checked (sides, representations), and attached as plain modules for the losses."""
        from ganbench.errors import ModelError
        from ganbench.models.base import Discriminator

        owned = self.build_modules(gen, disc)
        for name, item in owned.items():
            if not (isinstance(item, OwnedModule) and isinstance(item.module, nn.Module) and item.side in SIDES):
                raise ModelError(f"objective {self.name!r}: build_modules must map names to OwnedModule(module, side) "
                                 f"with side 'd' or 'g'; {name!r} is {item!r:.80}")
        for name in self.representations:
            if not isinstance(getattr(owned.get(name), "module", None), Discriminator):
                raise ModelError(f"objective {self.name!r}: representation {name!r} must be an owned "
                                 "ganbench.models.base.Discriminator subclass (the feature contract)")
        self.use_modules({name: item.module for name, item in owned.items()})
        return owned

    def use_modules(self, modules: Mapping[str, nn.Module]) -> None:
        """The owned modules the next loss calls see (the Trainer's views: see the class docstring)."""
        self.modules = dict(modules)

    def d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, Logs]:
        """D's loss on a real batch and a (detached) fake batch, and scalars to log (device tensors)."""
        raise NotImplementedError

    def g_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, Logs]:
        """G's loss given the fake batch (with its graph to G) and the real batch D last saw."""
        raise NotImplementedError

    def output_logs(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> Logs:
        """d_real and d_fake as shown: mean sigmoid of logits, or the mean raw critic value."""
        real_out, fake_out = real_out.detach().float(), fake_out.detach().float()
        if self.output_kind == "logit":
            return {"d_real": torch.sigmoid(real_out).mean(), "d_fake": torch.sigmoid(fake_out).mean()}
        return {"d_real": real_out.mean(), "d_fake": fake_out.mean()}

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (stateless objectives: nothing)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what state_dict returned."""

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """A plain description for listings and records."""
        return {"name": cls.name, "paper": cls.paper, "description": cls.description, "d_steps": cls.d_steps,
                "output_kind": cls.output_kind, "lr": cls.lr, "betas": list(cls.betas) if cls.betas else None,
                "model_defaults": dict(cls.model_defaults), "options": dict(cls.options),
                "representations": list(cls.representations), "adversarial": cls.adversarial}
