"""Sample quality end to end: images (generator, folder, .npz, split) -> one Inception pass -> metrics."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganbench import distributed
from ganbench.checkpoint import build_from_checkpoint, file_sha256, load_checkpoint, training_provenance
from ganbench.choices import FID_DIMS
from ganbench.errors import ConfigError
from ganbench.metrics.compute import check_metrics, compute_all
from ganbench.metrics.fid import check_same_input_mode, feature_statistics, load_statistics, save_statistics
from ganbench.metrics.inception import (
    INPUT_MODES,
    InceptionFeatures,
    check_input_mode,
    extract,
    iter_image_folder,
    list_image_files,
)
from ganbench.models.base import generate, to_signed_unit

# The seeds and subset draws each input mode's IS and KID use: ganbench's own (the evaluation's --seed,
# numpy Generator), or in tf1 mode torch-fidelity's (RandomState(2020), its rng_seed default), so that a tf1
# number equals torch-fidelity's on the same images and weights.
TF1_METRIC_SEED = 2020


def metric_sampling(input_mode: str, seed: int) -> tuple[str, int]:
    """(sampling convention, seed) of IS splits and KID subsets for an Inception input mode."""
    return ("torch-fidelity", TF1_METRIC_SEED) if input_mode == "tf1" else ("ganbench", seed)


def generator_images(checkpoint: str | dict, n: int, seed: int, device: torch.device, batch_size: int = 250,
                     variant_file: str | None = None) -> np.ndarray:
    """n samples of a checkpoint's generator (a path or a loaded checkpoint) as uint8 (N, C, H, W), batch
    statistics per batch as in training."""
    ckpt = load_checkpoint(checkpoint) if not isinstance(checkpoint, dict) else checkpoint
    gen, _, _ = build_from_checkpoint(ckpt, variant_file, device=device)
    rng = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, batch_size):
        z = gen.sample_z(min(batch_size, n - start), generator=rng, device="cpu").to(device)
        x = generate(gen, z, bn="batch" if len(z) > 1 else "running")
        out.append(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy())
    return np.concatenate(out)


DIGITS_FEATURES = "ganbench digits classifier (not Inception)"


def digits_quality(checkpoint: str, n: int, seed: int = 0, device: str = "cpu") -> dict[str, Any]:
    """The sample-quality record of a generator on the digits: digits-FID and digits-IS of n samples (as uint8
    images, from generator_images) against all 1,797 real digits, in ganbench's digits classifier's features, not
    Inception's (not comparable with published FID/IS)."""
    from ganbench.metrics.digits_classifier import digits_images, digits_metrics
    from ganbench.report.records import environment_versions

    t0 = time.perf_counter()
    fake = to_signed_unit(torch.from_numpy(generator_images(checkpoint, n, seed, torch.device(device))))
    values = digits_metrics(digits_images()[0], fake)
    return {"kind": "quality", "label": f"digits metrics of {checkpoint}",
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "features": DIGITS_FEATURES, "results": values,
            "settings": {"n": n, "seed": seed}, "versions": environment_versions(),
            "wall_time_s": {"total": round(time.perf_counter() - t0, 2)}}


def resolve_images(source: str, *, data_root: str | None = None, image_size: int = 32,
                   max_images: int | None = None) -> tuple[Any, str]:
    """A folder, an .npz of uint8 images, or `dataset:split` -> something `extract` reads, and a description."""
    path = Path(source)
    if path.is_dir():
        return str(path), f"folder {path.resolve()}"
    if path.suffix == ".npz" and path.is_file():
        with np.load(path) as data:
            key = "images" if "images" in data else data.files[0]
            arr = data[key]
        if arr.dtype != np.uint8 or arr.ndim != 4:
            raise ConfigError(f"{path}: expected uint8 images (N, C, H, W) or (N, H, W, C) under 'images'")
        if arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
            arr = arr.transpose(0, 3, 1, 2)
        return arr, f"npz {path.resolve()}"
    if ":" in source and not path.exists():
        from ganbench.data import load_images

        name, split = source.split(":", 1)
        store = distributed.main_first(  # rank 0 decodes the store once, the other ranks then map it
            lambda: load_images(name, data_root, split, image_size=image_size, max_images=max_images))
        return np.asarray(store.images), f"dataset {name}:{split} ({store.meta.get('fingerprint', '')[:12]})"
    raise ConfigError(f"{source!r} is not a folder, an .npz of images or dataset:split (e.g. cifar10:train)")


def sharded_extract(images: Any, *, batch_size: int, net: InceptionFeatures, dims: tuple[int, ...],
                    progress: bool) -> dict[str, Any] | None:
    """Inception features of images (an array or a folder) as `extract` returns them.

    Under torchrun each rank runs its share of the batches (cut where one process cuts them) and rank 0 gathers
    the rows in order; the other ranks return None. Other inputs (iterables) are not shared out.
    """
    if not distributed.active() or not isinstance(images, (str, os.PathLike, np.ndarray)):
        feats = extract(images, batch_size=batch_size, model=net, dims=dims, progress=progress)
        return feats if distributed.is_main() else None
    if isinstance(images, np.ndarray):
        lo, hi = distributed.shard(len(images), batch_size)
        part: Any = images[lo:hi]
    else:
        files = list_image_files(images)
        lo, hi = distributed.shard(len(files), batch_size)
        part = iter_image_folder(images, files[lo:hi])
    empty = np.empty((0,), np.float32)
    feats = extract(part, batch_size=batch_size, model=net, dims=dims, progress=progress) if hi > lo else \
        {"pool3": empty, "logits": empty, "dims": {d: empty for d in dims}}
    pool3 = distributed.gather_rows(feats["pool3"])
    logits = distributed.gather_rows(feats["logits"])
    lower = {d: distributed.gather_rows(feats["dims"][d]) for d in dims}
    if not distributed.is_main():
        return None
    return {"pool3": pool3, "logits": logits, "dims": lower, "n": len(pool3), "info": dict(net.info)}


def evaluate_quality(
    *, checkpoint: str | None = None, samples: str | None = None, ref: str | None, n: int = 50000,
    metrics: tuple[str, ...] = ("fid", "is", "kid", "pr", "dc"), inception_weights: str | None = None,
    fid_dims: int = 2048, is_splits: int = 10, batch_size: int = 50, device: str = "auto", seed: int = 0,
    data_root: str | None = None, variant_file: str | None = None, label: str | None = None,
    progress: bool = True, inception_input: str = "pytorch-fid",
) -> dict[str, Any] | None:
    """Score generated images (from a checkpoint or a folder/.npz) against a reference; return the record.

    ``inception_input``: ``pytorch-fid`` (default) or ``tf1`` (the original TF code's resize and scaling, as
    torch-fidelity; IS splits and KID subsets then follow torch-fidelity's seed 2020 too).
    Under torchrun the Inception passes are shared out among the ranks; rank 0 computes the metrics and returns
    the record, the other ranks None.
    """
    check_input_mode(inception_input)
    if (checkpoint is None) == (samples is None):
        raise ConfigError("give a generator checkpoint or a folder of samples (exactly one)")
    if fid_dims not in FID_DIMS:
        raise ConfigError(f"--fid-dims must be one of {', '.join(map(str, FID_DIMS))}, got {fid_dims}")
    check_metrics(metrics)  # before any generation or Inception pass, not after them in compute_all
    needing_ref = [m for m in metrics if m in REFERENCE_METRICS]
    if ref is None and needing_ref:
        raise ConfigError(f"--metrics {','.join(needing_ref)} compare the samples with a reference: pass --ref "
                          "dataset:split (e.g. cifar10:train), a folder or a stats .npz, or ask for --metrics is only")
    # checked before any generation or Inception pass: readable, this --fid-dims, this input mode
    real_stats = _reference_statistics(ref, metrics, inception_input) if ref is not None else None
    if real_stats is not None and int(real_stats[0].shape[0]) != fid_dims:
        raise ConfigError(f"--ref {ref} holds {real_stats[0].shape[0]}-dim statistics but --fid-dims is {fid_dims}; "
                          f"pass --fid-dims {real_stats[0].shape[0]} or statistics made with --fid-dims {fid_dims}")
    dev = distributed.setup(device)
    t0 = time.perf_counter()
    # the cheap checks of the inputs (checkpoint readable, samples present) come before the Inception weights
    ckpt = load_checkpoint(checkpoint) if checkpoint is not None else None  # read once: weights, record, provenance
    if ckpt is None:
        fake_images, fake_desc = resolve_images(samples, data_root=data_root)
    # rank 0 fetches the weights if they must be downloaded; the others then read the cached file
    net = distributed.main_first(lambda: InceptionFeatures(inception_weights, device=dev, progress=progress,
                                                           input_mode=inception_input))
    dims = () if fid_dims == 2048 else (fid_dims,)
    model, training, ckpt_info = None, None, None
    if ckpt is not None:
        fake_images = generator_images(ckpt, n, seed, dev, variant_file=variant_file)
        fake_desc = f"{n} samples of {checkpoint}"
        model = ckpt["model"]
        training = training_provenance(ckpt)
        ckpt_info = {"path": str(Path(checkpoint).resolve()), "sha256": file_sha256(checkpoint)}
        image_size = int(fake_images.shape[-1])
    else:
        image_size = 32
    fake = sharded_extract(fake_images, batch_size=batch_size, net=net, dims=dims, progress=progress)
    real = None
    if real_stats is None and ref is not None:
        ref_images, _ = resolve_images(ref, data_root=data_root, image_size=image_size)
        real = sharded_extract(ref_images, batch_size=batch_size, net=net, dims=dims, progress=progress)
    if not distributed.is_main():
        return None
    pick = (lambda f: {"pool3": f["dims"][fid_dims], "logits": f["logits"]}) if dims else (lambda f: f)
    sampling, metric_seed = metric_sampling(inception_input, seed)
    values = compute_all(pick(real) if real else None, pick(fake), metrics, real_stats=real_stats,
                         is_splits=is_splits, is_seed=metric_seed, kid_seed=metric_seed, device=str(dev),
                         sampling=sampling)
    from ganbench.report.records import environment_versions

    return {
        "kind": "quality",
        "label": label or (f"{model['name']} ({fake_desc})" if model else fake_desc),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": model, "checkpoint": ckpt_info, "training": training,
        "fake": fake_desc, "reference": ref, "features": f"inception-pool3 (dims {fid_dims})",
        "inception": net.info, "inception_input": inception_input,
        "preprocessing": f"{INPUT_MODES[inception_input]}; float32, TF32 off; stats float64",
        "settings": {"metrics": list(metrics), "n": n if checkpoint else None, "is_splits": is_splits,
                     "seed": seed, "fid_dims": fid_dims, "batch_size": batch_size,
                     "inception_input": inception_input, "metric_sampling": sampling, "metric_seed": metric_seed},
        "results": values, "versions": environment_versions(), "device": str(dev),
        "wall_time_s": {"total": round(time.perf_counter() - t0, 2)},
    }


REFERENCE_METRICS = ("fid", "kid", "pr", "dc")  # every metric but the Inception Score reads reference images


def _reference_statistics(ref: str, metrics: tuple[str, ...],
                          inception_input: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(mu, sigma) when ref is a statistics .npz (checked whole: arrays, shapes, finiteness), else None (images)."""
    ref_path = Path(ref)
    if ref_path.suffix != ".npz" or not ref_path.is_file():
        return None
    try:
        with np.load(ref_path, allow_pickle=False) as data:
            is_stats = "mu" in data.files and "sigma" in data.files
    except Exception as exc:
        raise ConfigError(f"--ref {ref} is not a readable .npz ({type(exc).__name__}); pass statistics written by "
                          f"`ganbench stats` or pytorch-fid --save-stats, or an .npz of images") from None
    if not is_stats:
        return None
    mu, sigma, meta = load_statistics(ref_path)
    check_same_input_mode(meta, inception_input, f"--ref {ref}")  # another mode's statistics are refused
    needing = [m for m in metrics if m in ("kid", "pr", "dc")]
    if needing:
        raise ConfigError(f"--ref {ref} holds statistics only; {needing} need reference images")
    return mu, sigma


def write_reference_statistics(source: str, out: str, *, inception_weights: str | None = None,
                               data_root: str | None = None, fid_dims: int = 2048, batch_size: int = 50,
                               device: str = "auto", progress: bool = True,
                               inception_input: str = "pytorch-fid", max_images: int | None = None) -> Path | None:
    """pytorch-fid-compatible mu/sigma of a folder, .npz or dataset split, with a provenance sidecar; the
    Inception input mode goes into the npz (array ``inception_input``) and the sidecar.

    Under torchrun the Inception pass is shared out among the ranks; rank 0 writes the file and returns its path,
    the other ranks None.
    """
    check_input_mode(inception_input)
    dev = distributed.setup(device)
    images, desc = resolve_images(source, data_root=data_root, max_images=max_images)
    net = distributed.main_first(lambda: InceptionFeatures(inception_weights, device=dev, progress=progress,
                                                           input_mode=inception_input))
    dims = () if fid_dims == 2048 else (fid_dims,)
    feats = sharded_extract(images, batch_size=batch_size, net=net, dims=dims, progress=progress)
    if feats is None:
        return None
    mu, sigma = feature_statistics(feats["dims"][fid_dims] if dims else feats["pool3"])
    return save_statistics(out, mu, sigma, {"source": desc, "count": feats["n"], "network": "pytorch-fid InceptionV3",
                                            "weights_sha256": net.info.get("weights_sha256"), "dims": fid_dims},
                           inception_input=inception_input)
