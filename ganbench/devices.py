"""Which torch device a run uses."""

from __future__ import annotations

import torch

from ganbench.errors import ConfigError


def pick_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu; cuda without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(name)
