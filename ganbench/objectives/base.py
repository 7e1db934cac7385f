"""The objective contract: D's and G's losses from the discriminator module itself and the real and fake batches.

An objective may call `D.feature_maps`, take gradients with respect to D's input, or keep state; the training loop
knows no objective by name. It declares how many D steps it takes per G step, whether D's output is a logit (shown as
a probability) or a critic value (shown raw), and its paper's optimizer defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

Logs = dict[str, torch.Tensor]
OUTPUT_KINDS = ("logit", "critic")


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

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            from ganbench.errors import ConfigError

            accepted = ", ".join(f"{k} (default {v})" for k, v in self.options.items()) or "none"
            raise ConfigError(f"objective {self.name!r} takes no option {', '.join(unknown)}; it accepts {accepted}")
        self.settings = {**self.options, **options}

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
                "model_defaults": dict(cls.model_defaults), "options": dict(cls.options)}
