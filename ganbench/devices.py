"""Which torch device a run uses, and in which arithmetic."""

from __future__ import annotations

import contextlib

import torch

from ganbench.errors import ConfigError


def pick_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu; cuda without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(name)


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of an amp mode ("off": float32 arithmetic, "bf16", "fp16") on device; the callers
    check the mode against the modes their command offers."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp])


def reference_cpu() -> bool:
    """Whether this CPU is of the kind ganbench's bit-exact references were made on (Intel with AMX):
    tests/data/objectives_reference.pt and results/compare/digits. Training on another CPU kind runs other kernels,
    whose rounding Adam amplifies, so those references hold bit for bit only here."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return False
    return "GenuineIntel" in info and "amx_bf16" in info
