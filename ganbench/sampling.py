"""Sample grids and latent walks from a trained generator."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ganbench.checkpoint import build_from_checkpoint, load_checkpoint
from ganbench.devices import pick_device
from ganbench.errors import ConfigError
from ganbench.models.base import generate
from ganbench.train.artifacts import save_grid


def latent_walks(gen, n_walks: int, walk_steps: int, generator: torch.Generator) -> torch.Tensor:
    """n_walks rows of walk_steps points on straight lines between pairs of random z (paper, figure 4)."""
    start = gen.sample_z(n_walks, generator=generator, device="cpu")
    end = gen.sample_z(n_walks, generator=generator, device="cpu")
    t = torch.linspace(0, 1, walk_steps).view(1, walk_steps, 1)
    return (start[:, None] * (1 - t) + end[:, None] * t).reshape(n_walks * walk_steps, -1)


def sample_grid(checkpoint: str | os.PathLike, out: str | os.PathLike, *, n: int = 64, interpolate: bool = False,
                walk_steps: int = 10, seed: int = 0, bn: str = "batch", variant_file: str | None = None,
                device: str = "auto", save_z: str | os.PathLike | None = None) -> Path:
    """Generate n images (or n walks) from a checkpoint's G and save them as one PNG grid.

    ``save_z``: also write the latent vectors (N, nz) as .npy and print each image's index on the grid, for
    ``ganbench arithmetic`` (see ganbench/arithmetic.py)."""
    if n < 1 or walk_steps < 2:
        raise ConfigError("--n must be at least 1 and --walk-steps at least 2")
    dev = pick_device(device)
    gen, _, _ = build_from_checkpoint(load_checkpoint(checkpoint), variant_file, device=dev)
    rng = torch.Generator().manual_seed(seed)
    if interpolate:
        z, nrow = latent_walks(gen, n, walk_steps, rng), walk_steps
    else:
        z, nrow = gen.sample_z(n, generator=rng, device="cpu"), None
    if bn == "batch" and len(z) < 2:
        raise ConfigError("--bn batch needs at least 2 images; use --bn running for one")
    images = generate(gen, z.to(dev), bn=bn)
    if save_z is None:
        return save_grid(images, out, nrow=nrow)
    from ganbench.arithmetic import save_numbered_grid
    from ganbench.arithmetic import save_z as write_z

    write_z(z, save_z)
    return save_numbered_grid(images, out, nrow=nrow)
