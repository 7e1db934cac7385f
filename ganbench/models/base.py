"""The model contract every GAN variant implements (see ARCHITECTURE.md), and the Variant record that registers one."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ganbench.errors import ModelError

Z_DISTRIBUTIONS = ("uniform", "normal")


class Generator(nn.Module):
    """Maps z of shape (N, nz) to images in [-1, 1] of shape (N, channels, image_size, image_size)."""

    nz: int
    image_size: int
    channels: int
    z_dist: str = "normal"

    def sample_z(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Draw n latent vectors from this generator's prior (uniform in [-1, 1] or standard normal)."""
        if device is None:
            device = generator.device if generator is not None else next(self.parameters()).device
        if self.z_dist not in Z_DISTRIBUTIONS:
            raise ModelError(f"{type(self).__name__}.z_dist is {self.z_dist!r}; it must be one of "
                             f"{', '.join(Z_DISTRIBUTIONS)}")
        if self.z_dist == "uniform":
            return torch.rand(n, self.nz, generator=generator, device=device) * 2 - 1
        return torch.randn(n, self.nz, generator=generator, device=device)


class Discriminator(nn.Module):
    """Maps images to one real/fake logit each; `feature_maps` exposes every conv layer for probing."""

    image_size: int
    channels: int

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every conv layer's post-activation map, input side first."""
        raise NotImplementedError

    def feature_modules(self) -> list[nn.Module] | None:
        """The modules whose outputs are feature_maps' maps, in the same order, for readers that watch D's own
        forward pass (the online probe's hooks); None when the discriminator does not name them."""
        return None

    def layer_shapes(self) -> list[tuple[int, int, int]]:
        """(channels, height, width) of each feature map, from one blank image in eval mode."""
        device = next(self.parameters()).device
        x = torch.zeros(1, self.channels, self.image_size, self.image_size, device=device)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return [tuple(m.shape[1:]) for m in self.feature_maps(x)]
        finally:
            self.train(was_training)

    def feature_dim(self, grid: int = 4, layers: list[int] | None = None) -> int:
        """Length of the pooled feature vector: the maps of layers (1-based; default all) max-pooled to
        grid x grid and concatenated."""
        shapes = self.layer_shapes()
        chosen = layers if layers is not None else range(1, len(shapes) + 1)
        return sum(shapes[i - 1][0] * min(shapes[i - 1][1], grid) * min(shapes[i - 1][2], grid) for i in chosen)


def to_signed_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (0..255) as floats in [-1, 1], the range every generator and discriminator works in."""
    return images.float().div_(127.5).sub_(1.0)


def init_dcgan_weights(module: nn.Module) -> None:
    """The DCGAN paper's init: conv and linear weights N(0, 0.02), BN gains N(1, 0.02), biases 0. A weight under a
    parametrisation (spectral norm) is initialised in the tensor the parametrisation reads."""
    from torch.nn.utils import parametrize

    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight
            nn.init.normal_(weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _call_with_accepted(factory: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
    """Call factory with the subset of kwargs its signature names (all of them if it takes **kwargs)."""
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return factory(**kwargs)
    names = {p.name for p in params}
    return factory(**{k: v for k, v in kwargs.items() if k in names})


@dataclass(frozen=True)
class Variant:
    """A GAN variant: network factories, their default constructor arguments, loss, optimizer and schedule.

    generator / discriminator: callables receiving the constructor arguments they name (nz, ngf, ndf, ...).
    defaults: every constructor argument the variant accepts, with its default; overrides must be among them.
    options: further constructor arguments (architecture options such as d_norm), recorded in a checkpoint only
      when set to something other than their default, so adding an option never changes existing records.
      Every variant also accepts spectral_norm (True: spectral normalisation of every conv and linear weight of D).
    schedule: "simultaneous" (D then G on every batch) or "alternating" (D and G on alternate batches).
    """

    name: str
    generator: Callable[..., Generator]
    discriminator: Callable[..., Discriminator]
    defaults: Mapping[str, Any]
    image_size: int
    loss: str = "ns"  # the default objective (registry name; historical field name)
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    schedule: str = "simultaneous"
    description: str = ""
    origin: Mapping[str, str] = field(default_factory=lambda: {"kind": "builtin"})
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def objective(self) -> str:
        """The default objective's registry name (`loss` is its historical field name; "bce" is "ns")."""
        return self.loss

    def accepts(self, name: str) -> bool:
        """Whether the constructor takes argument name."""
        return name in self.defaults or name in self.options or name == "spectral_norm"

    def model_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Defaults merged with overrides; unknown names are refused with the accepted ones listed."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(k for k in overrides if not self.accepts(k))
        if unknown:
            accepted = sorted({*self.defaults, *self.options, "spectral_norm"})
            raise ModelError(
                f"model {self.name!r} takes no argument {', '.join(unknown)}; it accepts {', '.join(accepted)}"
            )
        optional = {**self.options, "spectral_norm": False}
        return {**self.defaults, **{k: v for k, v in overrides.items() if k not in optional or v != optional[k]}}

    def build(self, **overrides: Any) -> tuple[Generator, Discriminator]:
        """Construct (G, D); the networks initialise themselves."""
        kwargs = self.model_kwargs(**overrides)
        spectral = bool(kwargs.pop("spectral_norm", False))
        try:
            gen = _call_with_accepted(self.generator, kwargs)
            disc = _call_with_accepted(self.discriminator, kwargs)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"model {self.name!r} rejected arguments {kwargs}: {exc}") from None
        for net, kind in ((gen, Generator), (disc, Discriminator)):
            if not isinstance(net, kind):
                raise ModelError(
                    f"model {self.name!r}: factory returned {type(net).__name__}, "
                    f"expected a ganbench.models.base.{kind.__name__} subclass"
                )
        if spectral:
            from ganbench.models.parts import apply_spectral_norm

            apply_spectral_norm(disc)
        return gen, disc


def batchnorms(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm module of net, in module order."""
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextlib.contextmanager
def frozen_batchnorm(net: nn.Module, train: bool) -> Iterator[list[nn.modules.batchnorm._BatchNorm]]:
    """Run net in train mode (each batch normalised by its own statistics) or eval mode (running statistics)
    while leaving its BatchNorm state exactly as it was: momentum 0 inside the block, and on leaving it the running
    mean, variance, counter, momentum and the module's mode restored. Yields the BatchNorm modules."""
    bns = batchnorms(net)
    was_training = net.training
    saved = [(m.momentum, *(None if t is None else t.clone()
                            for t in (m.running_mean, m.running_var, m.num_batches_tracked))) for m in bns]
    try:
        net.train(train)
        for m in bns:
            m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
        yield bns
    finally:
        for m, (momentum, *tensors) in zip(bns, saved):
            m.momentum = momentum
            for live, kept in zip((m.running_mean, m.running_var, m.num_batches_tracked), tensors):
                if kept is not None:
                    live.copy_(kept)
        net.train(was_training)


@contextlib.contextmanager
def channels_last_on_cpu(net: nn.Module, device: torch.device) -> Iterator[bool]:
    """On the CPU, run net's 4-D weights in NHWC (channels_last) layout inside the block and restore the layout on
    leaving; yields whether inputs should be made channels_last too. oneDNN's NHWC fp32 convolutions are 1.2-1.5x
    faster on the CPU for the paper's discriminators (results/benchmarks/protocols.md) with the same values up to
    float rounding; on a GPU nothing changes. A net already in channels_last (trained with --channels-last) is
    left as it is."""
    if torch.device(device).type != "cpu":
        yield False
        return
    if any(p.dim() == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last)
           for p in net.parameters()):
        yield True
        return
    net.to(memory_format=torch.channels_last)
    try:
        yield True
    finally:
        net.to(memory_format=torch.contiguous_format)


def generate(gen: nn.Module, z: torch.Tensor, bn: str = "batch") -> torch.Tensor:
    """G(z) without touching G's state: batch statistics (as in training) with running stats frozen, or
    the running statistics (bn="running")."""
    with frozen_batchnorm(gen, train=bn == "batch"), torch.no_grad():
        return gen(z).float()
