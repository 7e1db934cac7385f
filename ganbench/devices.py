"""Which torch device a run uses, and in which arithmetic."""

from __future__ import annotations

import contextlib
import functools
import os
import sys

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


def available_bytes(device: torch.device) -> int:
    """Memory free for new tensors on device: the GPU's free memory, or the host's MemAvailable (8 GiB assumed
    where neither /proc/meminfo nor sysconf tells)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def amp_autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of an amp mode ("off": float32 arithmetic, "bf16", "fp16") on device; the callers
    check the mode against the modes their command offers. bf16 on a CPU without native bfloat16 says so once."""
    if amp == "off":
        return contextlib.nullcontext()
    if amp == "bf16" and device.type == "cpu":
        warn_emulated_bf16()
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp])


NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_warned: set[str] = set()


def native_cpu_bf16() -> bool | None:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); None where its flags cannot be read."""
    flags = _cpu_flags()
    return None if not flags else any(f in flags for f in NATIVE_BF16_FLAGS)


def warn_emulated_bf16() -> None:
    """One line on stderr, once per process, when --amp bf16 runs on a CPU that emulates bfloat16: an AMD EPYC
    with AVX2 only trained a width-32 dcgan32 at 8.5 images/s in bf16 against about 85 in float32."""
    if native_cpu_bf16() is False and "bf16" not in _warned:
        _warned.add("bf16")
        sys.stderr.write("ganbench: warning: --amp bf16 on this CPU (no AVX512-BF16 or AMX) runs emulated bfloat16, "
                         "about 10x slower than float32; use --amp off\n")


@functools.cache
def _cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


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


def machine(device: str | torch.device = "cpu") -> dict[str, object]:
    """What a timing was measured on, for records: the CPU model and its kind of vector unit, torch's thread
    count, and the GPU's name when the work ran on one. Wall times of different machines are not comparable."""
    cpu = None
    flags = _cpu_flags()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    cpu = value.strip()
                    break
    except OSError:
        pass
    if cpu is None:
        import platform

        cpu = platform.processor() or platform.machine() or "unknown CPU"
    kind = next((k for k in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if k in flags), None)
    out: dict[str, object] = {"cpu": cpu, "cpu_kind": kind, "threads": torch.get_num_threads()}
    device = pick_device(device) if device == "auto" else torch.device(device)
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


def machine_label(info: dict) -> str:
    """One line naming a machine record: 'AMD EPYC (avx512_bf16), 2 threads' or the GPU's name."""
    if info.get("gpu"):
        return str(info["gpu"])
    kind = f" ({info['cpu_kind']})" if info.get("cpu_kind") else ""
    return f"{info.get('cpu', 'unknown CPU')}{kind}, {info.get('threads', '?')} threads"
