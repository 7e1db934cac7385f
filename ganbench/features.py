"""Discriminator features as the DCGAN paper used them: every conv layer max-pooled to a 4x4 grid, flattened
channel-major and concatenated in layer order (paper, sec. 5.1), with a choice of BatchNorm statistics, streamed
to an on-disk cache."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ganbench import distributed
from ganbench.choices import BN_STATS, FEATURE_AMP
from ganbench.choices import FEATURE_DTYPES as FEATURE_DTYPE_NAMES
from ganbench.data import ImageStore, cache_dir
from ganbench.devices import amp_autocast
from ganbench.errors import ConfigError
from ganbench.files import atomic_path, atomic_write, reserved_memmap, scratch_memmap
from ganbench.models.base import Discriminator, batchnorms, channels_last_on_cpu, frozen_batchnorm, to_signed_unit
from ganbench.progress import progress_bar

BN_MODES = BN_STATS
FEATURE_DTYPES = {name: getattr(np, name) for name in FEATURE_DTYPE_NAMES}
FEATURES_VERSION = 1  # bump when the extraction changes, so old caches are not reused
BATCH_MODE_SEED = 0  # bn_stats="batch": the seeded order its batches are drawn in (batch_order)


def batch_order(n: int, bn_stats: str) -> np.ndarray | None:
    """The order of images in the extraction batches: None (store order) unless every image is normalised with
    its batch's own statistics ("batch"), whose features then depend on the batch-mates. Those batches are drawn
    from a seeded permutation: image folders are stored class by class (the CIFAR-10 JPEG copy, ImageFolder
    trees), so store-order batches would carry the class in their statistics, a label leak (a trained width-32
    dcgan32 scored 78.9% instead of 56.3% at 400 per class that way)."""
    return np.random.RandomState(BATCH_MODE_SEED).permutation(n) if bn_stats == "batch" else None


def parse_layers(spec: str | list[int] | None, n_layers: int) -> list[int]:
    """1-based layer numbers from "1-4", "1,3,5", a list, or None (all layers)."""
    if spec is None or spec == "" or spec == "all":
        return list(range(1, n_layers + 1))
    if isinstance(spec, str):
        layers: list[int] = []
        try:
            for part in spec.split(","):
                part = part.strip()
                if "-" in part:
                    lo, hi = (int(p) for p in part.split("-", 1))
                    layers.extend(range(lo, hi + 1))
                else:
                    layers.append(int(part))
        except ValueError:
            raise ConfigError(f"--layers {spec!r} is not a list like 1-4 or 1,3,5") from None
    else:
        layers = [int(v) for v in spec]
    bad = [v for v in layers if not 1 <= v <= n_layers]
    if bad or not layers or len(set(layers)) != len(layers):
        raise ConfigError(
            f"--layers {spec!r}: this discriminator has layers 1-{n_layers}; give distinct numbers in that range"
        )
    return sorted(layers)


def pool_maps(maps: list[torch.Tensor], grid: int = 4) -> torch.Tensor:
    """Max-pool each (N, C, H, W) map to grid x grid (non-overlapping windows when H divides), flatten, concat."""
    pooled = []
    for m in maps:
        if m.shape[-1] > grid or m.shape[-2] > grid:
            m = F.adaptive_max_pool2d(m, grid)
        pooled.append(m.flatten(1))
    return torch.cat(pooled, 1)


def to_input(images: np.ndarray, channels: int, device: torch.device, nhwc: bool = False) -> torch.Tensor:
    """uint8 images (N, C, H, W) as D's input: [-1, 1] floats on device, grey images repeated to `channels`,
    NHWC when asked (shared with memorization's feature pass)."""
    x = to_signed_unit(torch.from_numpy(np.array(images)).to(device))
    if x.shape[1] != channels:
        if x.shape[1] == 1:
            x = x.repeat(1, channels, 1, 1)
        else:
            raise ConfigError(f"images have {x.shape[1]} channels, the discriminator expects {channels}")
    return x.contiguous(memory_format=torch.channels_last) if nhwc else x


_MOMENT_ROWS = 2048  # rows of the (positions, channels) view converted to float64 at a time


def batch_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of a BatchNorm input (N, C, ...) in float64, over every other axis.

    Two passes over the (positions, channels) view (free for the channels_last activations of the CPU), each
    converting a block of rows to float64 at a time: the same float64 moments as x.double().mean / .var up to the
    last bits of the summation order, without a float64 copy of the whole activation (the statistics pass of the
    dcgan32 D 1.2-1.4x faster: results/benchmarks/protocols.md).
    """
    rows = x.movedim(1, -1).reshape(-1, x.shape[1])
    total = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    for block in rows.split(_MOMENT_ROWS):
        total += block.double().sum(0)
    mean = total / rows.shape[0]
    total = torch.zeros_like(mean)
    for block in rows.split(_MOMENT_ROWS):
        total += (block.double() - mean).square().sum(0)
    return mean, total / rows.shape[0]


@torch.no_grad()
def train_batch_statistics(disc: Discriminator, images: np.ndarray, batch_size: int = 128,
                           device: str | torch.device = "cpu", progress: bool = False,
                           amp: str = "off") -> list[tuple[Any, Any]]:
    """The authors' BN statistics: over images in batches of batch_size, each batch's mean and biased variance of
    every BN layer's input (the network normalising with batch statistics, as in training), averaged over batches.

    Returns one (mean, var) pair per BatchNorm module in module order. Under torchrun each rank passes its share
    of the batches and the per-batch statistics are summed in batch order on every rank: the same bits as one
    process. amp "bf16" runs the forward passes under bfloat16 autocast (see FeatureSpec.amp); the moments are
    still taken in float64.
    """
    bns = batchnorms(disc)
    sums = [[None, None] for _ in bns]
    hooks = []
    stack = contextlib.ExitStack()
    sharded = distributed.active()
    per_batch: list[list[tuple]] = []  # under torchrun: (BN index, mean, var) of this rank's batches, in order

    def make_hook(i: int):
        def hook(module, inputs):
            mean, var = batch_moments(inputs[0])
            if sharded:
                per_batch[-1].append((i, mean.cpu(), var.cpu()))
                return
            sums[i][0] = mean if sums[i][0] is None else sums[i][0] + mean
            sums[i][1] = var if sums[i][1] is None else sums[i][1] + var
        return hook

    for i, bn in enumerate(bns):
        hooks.append(bn.register_forward_pre_hook(make_hook(i)))
    try:
        stack.enter_context(frozen_batchnorm(disc, train=True))  # batch statistics, as the authors' Theano graph
        nhwc = stack.enter_context(channels_last_on_cpu(disc, torch.device(device)))
        stack.enter_context(feature_autocast(amp, torch.device(device)))
        n_batches = 0
        lo, hi = distributed.shard(len(images), batch_size) if sharded else (0, len(images))
        for start in _progress(range(lo, hi, batch_size), progress, "BN statistics", batch_size, hi - lo):
            chunk = images[start:start + batch_size]
            if len(chunk) < 2:
                continue  # a batch of one has no variance; the authors' loop never produced one
            per_batch.append([])
            disc.feature_maps(to_input(chunk, disc.channels, torch.device(device), nhwc))
            n_batches += 1
    finally:
        stack.close()
        for h in hooks:
            h.remove()
    if sharded:  # every rank's batches in rank (= batch) order, summed as one process sums them
        every = [b for part in distributed.all_gather_object(per_batch) for b in part]
        n_batches = len(every)
        for batch in every:
            for i, mean, var in batch:
                sums[i][0] = mean if sums[i][0] is None else sums[i][0] + mean
                sums[i][1] = var if sums[i][1] is None else sums[i][1] + var
        sums = [[m.to(device) if m is not None else m, v.to(device) if v is not None else v] for m, v in sums]
    if n_batches == 0:
        raise ConfigError("train-batches BN statistics need at least 2 training images")
    return [(m / n_batches, v / n_batches) for m, v in sums]


def set_bn_statistics(disc: Discriminator, stats: list[tuple[Any, Any]]) -> None:
    """Make every BN layer of disc normalise with the given (mean, var) pairs in eval mode."""
    for bn, (mean, var) in zip(batchnorms(disc), stats):
        bn.running_mean.copy_(mean.to(bn.running_mean))
        bn.running_var.copy_(var.to(bn.running_var))


def feature_autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of a feature pass: "off" (float32 arithmetic, the default) or "bf16"."""
    if amp not in FEATURE_AMP:
        raise ConfigError(f"unknown --amp {amp!r} for features; choose one of {', '.join(FEATURE_AMP)}")
    return amp_autocast(amp, device)


@dataclass
class FeatureSpec:
    """What a feature matrix is: which network, which layers, which BN statistics, which dtype, which arithmetic.

    amp "bf16": the convolutions of both passes (BN statistics and extraction) run under bfloat16 autocast, about
    2x faster on a CPU with native bfloat16 (and on GPUs); the features then differ from the float32 ones by
    up to about 1% of their scale (BN statistics about 0.3%), beyond float tolerance, so it is an option, not the
    default, and part of the key.
    """

    identity: str  # checkpoint sha256, or a description of a randomly initialised network
    layers: list[int]
    bn_stats: str = "train-batches"
    dtype: str = "float16"
    grid: int = 4
    calibration: str | None = None  # fingerprint of the images the train-batches statistics came from
    amp: str = "off"

    def key(self, store: ImageStore) -> str:
        payload = {
            "v": FEATURES_VERSION, "identity": self.identity, "layers": self.layers, "bn": self.bn_stats,
            "dtype": self.dtype, "grid": self.grid, "calibration": self.calibration,
            "data": store.meta.get("fingerprint"), "source": store.meta.get("source"),
            "split": store.meta.get("split"), "n": len(store),
        }
        if self.amp != "off":  # absent when off: the float32 features keep the keys of every existing cache
            payload["amp"] = self.amp
        if self.bn_stats == "batch":  # batches drawn from batch_order's permutation, no longer in store order
            payload["batch_order"] = f"permutation:{BATCH_MODE_SEED}"
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def feature_dim(disc: Discriminator, layers: list[int], grid: int = 4) -> int:
    """Length of the pooled vector for the chosen layers."""
    return disc.feature_dim(grid, layers)


@torch.no_grad()
def extract_features(
    disc: Discriminator, store: ImageStore, spec: FeatureSpec, *,
    bn_stats_values: list | Callable[[], list] | None = None,
    batch_size: int = 256, device: str | torch.device = "cpu", out: str | os.PathLike | None = None,
    progress: bool = True, use_cache: bool = True,
) -> np.ndarray:
    """Features of every image of store as an (N, dim) array, reused from or written to the on-disk cache.

    bn_stats_values: the (mean, var) pairs for bn_stats="train-batches" (see train_batch_statistics), or a function
        returning them, called only when the features are not already cached (the statistics cost a forward pass
        over the training images).
    out: write the matrix to this .npy path instead of the cache.
    use_cache=False (and no out): neither read nor written; the matrix lives in an unnamed scratch file in the
        cache folder that is gone once the array is released (features used once, such as a curve point's rows).

    Under torchrun the batches are shared out among the ranks (each rank the very batches one process would run)
    and gathered in order on rank 0, which writes the file and returns the matrix; the other ranks return None.
    """
    if spec.bn_stats not in BN_MODES:
        raise ConfigError(f"unknown --bn-stats {spec.bn_stats!r}; choose one of {', '.join(BN_MODES)}")
    if spec.dtype not in FEATURE_DTYPES:
        raise ConfigError(f"unknown --feature-dtype {spec.dtype!r}; choose float16 or float32")
    device = torch.device(device)
    autocast = feature_autocast(spec.amp, device)
    disc = disc.to(device)
    dim = feature_dim(disc, spec.layers, spec.grid)
    n = len(store)
    folder, path = _matrix_path(out, use_cache, store, lambda: spec.key(store)[:20])
    if out is None and use_cache:
        cached = distributed.on_main(lambda: _load_cached(path, (n, dim), spec.dtype))
        if distributed.broadcast_object(cached is not None):
            return cached
    distributed.on_main(lambda: folder.mkdir(parents=True, exist_ok=True))

    if spec.bn_stats == "train-batches" and batchnorms(disc):
        if callable(bn_stats_values):
            bn_stats_values = bn_stats_values()
        if bn_stats_values is None:
            raise ConfigError("bn_stats='train-batches' needs statistics from train_batch_statistics")
        set_bn_statistics(disc, bn_stats_values)
    main = distributed.is_main()  # the only process in a single one; under torchrun rank 0 writes the matrix
    if main and path is not None:  # the sidecar marks a finished matrix: gone until the new one is whole
        path.with_suffix(".json").unlink(missing_ok=True)
    lo, hi = distributed.shard(n, batch_size)  # this rank's batches: (0, n) in a single process
    order = batch_order(n, spec.bn_stats)
    # eval mode normalises with running (or just-installed train-batch) statistics; "batch" uses each batch's own
    with frozen_batchnorm(disc, train=spec.bn_stats == "batch"), channels_last_on_cpu(disc, device) as nhwc, \
            autocast, (atomic_path(path) if main and path is not None else contextlib.nullcontext()) as tmp:
        matrix = _new_matrix(tmp, folder, FEATURE_DTYPES[spec.dtype], (n, dim)) if main else None
        rows = matrix if not distributed.active() else np.empty((hi - lo, dim), FEATURE_DTYPES[spec.dtype])
        wanted = set(spec.layers)
        for start in _progress(range(lo, hi, batch_size), progress and main, "features", batch_size, hi - lo):
            if order is None:
                x = to_input(store.images[start:start + batch_size], disc.channels, device, nhwc)
            else:  # the batch's images in store order (sequential reads); their rows go back to their places
                idx = np.sort(order[start:start + batch_size])
                x = to_input(store.images[idx], disc.channels, device, nhwc)
            maps = [m for i, m in enumerate(disc.feature_maps(x), 1) if i in wanted]
            values = pool_maps(maps, spec.grid).float().cpu().numpy()
            if order is None or distributed.active():
                rows[start - lo:start - lo + len(x)] = values
            else:
                rows[idx] = values
        if distributed.active():  # every rank's rows, in rank order, into rank 0's matrix
            if order is None:
                distributed.gather_rows(rows, out=matrix)
            else:  # rows in permuted order: gathered, then put back in store order
                drawn = np.empty((n, dim), FEATURE_DTYPES[spec.dtype]) if main else None
                distributed.gather_rows(rows, out=drawn)
                if main:
                    for k in range(0, n, batch_size):
                        block = np.sort(order[k:k + batch_size])
                        matrix[block] = drawn[k:k + len(block)]
        if main and path is not None:
            matrix.flush()
            del matrix
    if not main:
        return None
    if path is None:
        return _read_only(matrix)
    return _finish(path, {"complete": True, "shape": [n, dim], "dtype": spec.dtype, "layers": spec.layers,
                          "bn_stats": spec.bn_stats, "identity": spec.identity, "grid": spec.grid, "amp": spec.amp,
                          "calibration": spec.calibration, "dataset": store.meta})


def representation_key(identity: str, settings: dict[str, Any], dtype: str, store: ImageStore) -> str:
    """The cache key of a fitted learner's features (identity: its checkpoint's sha256)."""
    payload = {"v": FEATURES_VERSION, "identity": identity, "representation": settings, "dtype": dtype,
               "data": store.meta.get("fingerprint"), "source": store.meta.get("source"),
               "split": store.meta.get("split"), "n": len(store)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@torch.no_grad()
def extract_representation(rep: Any, identity: str, store: ImageStore, *, dtype: str = "float16",
                           batch_size: int = 256, device: str | torch.device = "cpu", progress: bool = True,
                           use_cache: bool = True, out: str | os.PathLike | None = None) -> np.ndarray:
    """A fitted learner's features (ganbench.representations: k-means, pixels) of every image of store, (N, dim),
    reused from or written to the feature cache like a network's (a sidecar marks a finished matrix).

    Computed in one process (under torchrun every rank would compute the same matrix: refused).
    """
    if distributed.active():
        raise ConfigError(f"the {rep.name} representation is computed in one process; run this evaluation "
                          "without torchrun")
    if dtype not in FEATURE_DTYPES:
        raise ConfigError(f"unknown --feature-dtype {dtype!r}; choose float16 or float32")
    rep.check_images(store.images[:1])
    n, dim = len(store), int(rep.dim)
    key = representation_key(identity, {"name": rep.name, **rep.settings()}, dtype, store)
    folder, path = _matrix_path(out, use_cache, store, lambda: f"{rep.name}-{key[:20]}")
    if out is None and use_cache:
        if (cached := _load_cached(path, (n, dim), dtype)) is not None:
            return cached
    folder.mkdir(parents=True, exist_ok=True)
    if path is not None:
        path.with_suffix(".json").unlink(missing_ok=True)
    device = torch.device(device)
    with atomic_path(path) if path is not None else contextlib.nullcontext() as tmp:
        matrix = _new_matrix(tmp, folder, FEATURE_DTYPES[dtype], (n, dim))
        for start in _progress(range(0, n, batch_size), progress, f"{rep.name} features", batch_size, n):
            chunk = np.asarray(store.images[start:start + batch_size])
            matrix[start:start + len(chunk)] = rep.transform(chunk, device).float().cpu().numpy()
        if path is None:
            return _read_only(matrix)
        matrix.flush()
        del matrix
    return _finish(path, {"complete": True, "shape": [n, dim], "dtype": dtype, "representation": rep.name,
                          "settings": rep.settings(), "identity": identity, "dataset": store.meta})


def _matrix_path(out: str | os.PathLike | None, use_cache: bool, store: ImageStore,
                 key: Callable[[], str]) -> tuple[Path, Path | None]:
    """Where a feature matrix is written: (folder, path) with path out when given, else with use_cache the cache
    file of store's images named by key() (computed only then), else None: an unnamed scratch file in the cache
    folder, gone once released."""
    if out is not None:
        return Path(out).parent, Path(out)
    folder = cache_dir() / "features"
    if not use_cache:
        return folder, None
    return folder, folder / f"{store.meta.get('source')}-{store.meta.get('split')}-{key()}.npy"


def _finish(path: Path, meta: dict[str, Any]) -> np.ndarray:
    """Mark the whole matrix at path finished (its sidecar, written last) and map it read-only."""
    atomic_write(path.with_suffix(".json"), json.dumps(meta, indent=1, default=str))
    return np.load(path, mmap_mode="r")


def _new_matrix(tmp: Path | None, folder: Path, dtype: Any, shape: tuple[int, int]) -> np.ndarray:
    """The (n, dim) matrix features are written into: a .npy memory map at tmp (renamed into place when whole), or
    with tmp None an unnamed scratch memory map in folder; its disk space is allocated first either way, so a full
    disk ends in OSError ENOSPC (one line from the CLI) instead of a SIGBUS halfway through the writes."""
    return reserved_memmap(tmp, dtype, shape) if tmp is not None else scratch_memmap(folder, dtype, shape)


def _read_only(matrix: np.ndarray) -> np.ndarray:
    matrix.flags.writeable = False  # as the cached matrices are (mmap_mode="r")
    return matrix


def _load_cached(path: Path, shape: tuple[int, int], dtype: str) -> np.ndarray | None:
    sidecar = path.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text())
        if not meta.get("complete") or tuple(meta["shape"]) != shape or meta["dtype"] != dtype:
            raise ValueError
        matrix = np.load(path, mmap_mode="r")
        if matrix.shape != shape or matrix.dtype != FEATURE_DTYPES[dtype]:
            raise ValueError
        return matrix
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        # partial or corrupt: forget it, the caller rebuilds
        sidecar.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        return None


def _progress(iterable, enabled: bool, desc: str, batch: int, total: int):
    if not enabled:
        return iterable
    return _ImagesBar(iterable, progress_bar(total, desc, "img"), batch, total)


class _ImagesBar:
    """Iterate batch starts while advancing a bar counted in images (so the rate reads images per second)."""

    def __init__(self, iterable, bar, batch: int, total: int):
        self.iterable, self.bar, self.batch, self.total = iterable, bar, batch, total

    def __iter__(self):
        try:
            for start in self.iterable:
                yield start
                self.bar.update(min(self.batch, self.total - start))
        finally:
            self.bar.close()
