"""Fitting a learner that is not a GAN (k-means, pixels) into a run directory with the same shape as a GAN's:
config.toml, checkpoints/last.pt, a fit record and pictures, so that `ganbench eval ... --checkpoint` reads it."""

from __future__ import annotations

import json
import platform
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w
import torch

from ganbench import __version__
from ganbench.checkpoint import link_or_copy, save_checkpoint
from ganbench.data import load_images
from ganbench.data.store import SOURCES
from ganbench.devices import machine, pick_device
from ganbench.files import atomic_write
from ganbench.progress import progress_bar
from ganbench.representations import build_learner
from ganbench.train.artifacts import save_grid
from ganbench.train.rundir import hold_run_dir, prepare_run_dir

DEFAULT_IMAGE_SIZE = 32


@dataclass
class FitResult:
    run_dir: Path
    checkpoint: Path
    record: dict[str, Any]


def fit_learner(learner: str, options: dict[str, Any], out: str | Path, *, dataset: str, data_root: str | None,
                split: str = "train", download: bool = False, max_images: int | None = None, seed: int = 0,
                device: str = "auto", overwrite: bool = False, progress: bool = True) -> FitResult:
    """Fit `learner` with `options` on a dataset split and write its run directory.

    options may hold image_size (default: the dataset's native size, else 32); the rest are the learner's.
    """
    out = Path(out)
    options = dict(options)
    native = getattr(SOURCES.get(dataset), "native_size", None)
    image_size = int(options.pop("image_size", native or DEFAULT_IMAGE_SIZE))
    dev = pick_device(device)
    with hold_run_dir(out, resume=False):
        probe_rep = build_learner(learner, image_size, 3, options)  # refuse bad options before --overwrite deletes
        prepare_run_dir(out, resume=False, overwrite=overwrite)
        t0 = time.perf_counter()
        store = load_images(dataset, data_root, split, image_size=image_size, download=download,
                            max_images=max_images, progress=progress)
        channels = int(store.images.shape[1])
        rep = probe_rep if channels == 3 else build_learner(learner, image_size, channels, options)
        t_data = time.perf_counter()
        bars: dict[str, Any] = {}

        def show(stage: str, done: int, total: int) -> None:
            if not progress:
                return
            bar = bars.get(stage)
            if bar is None:
                bar = bars[stage] = progress_bar(total, stage, "it" if stage == "k-means" else "img")
            bar.update(done - bar.n)
            if done >= total:
                bar.close()

        torch.manual_seed(seed)
        info = rep.fit(np.asarray(store.images), seed=seed, device=dev, progress=show)
        t_fit = time.perf_counter()
        config = {"learner": learner, "options": rep.settings(), "dataset": dataset, "data_root": data_root,
                  "split": split, "max_images": max_images, "seed": seed, "device": str(dev)}
        record = {
            "kind": "fit", "learner": learner, "settings": rep.settings(), "fit": info, "dataset": store.meta,
            "features": rep.dim,
            "wall_time_s": {"data": round(t_data - t0, 2), "fit": round(t_fit - t_data, 2),
                            "total": round(t_fit - t0, 2)},
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "machine": machine(), "device": str(dev),
        }
        provenance = {"ganbench": __version__, "torch": str(torch.__version__), "python": platform.python_version(),
                      "device": str(dev), "dataset": store.meta}
        fit_info = {**info, "wall_time_s": record["wall_time_s"], "peak_rss_gib": record["peak_rss_gib"],
                    "machine": record["machine"]}
        payload = {"learner": {"name": learner, "settings": rep.settings()}, "state": rep.state_dict(),
                   "fit": fit_info, "config": config, "provenance": provenance}
        path = save_checkpoint(payload, out / "checkpoints" / "final.pt")
        link_or_copy(path, out / "checkpoints" / "last.pt")
        atomic_write(out / "config.toml", tomli_w.dumps({k: v for k, v in config.items() if v is not None}))
        atomic_write(out / "fit.json", json.dumps(record, indent=1, default=str))
        if getattr(rep, "centroids_", None) is not None:
            save_centroids(rep, out / "centroids.png")
    return FitResult(out, out / "checkpoints" / "last.pt", record)


def save_centroids(rep: Any, path: Path, n: int = 256) -> Path:
    """The first n centroids as image patches, each stretched to its own range (whitened patches have no
    common scale), in a grid: what the k-means filters look like (Coates et al. 2011, figure 1)."""
    c = rep.centroids_[:n].reshape(-1, rep.channels, rep.patch_size, rep.patch_size)
    lo = c.flatten(1).min(1).values[:, None, None, None]
    hi = c.flatten(1).max(1).values[:, None, None, None]
    return save_grid((c - lo) / (hi - lo).clamp_min(1e-8) * 2 - 1, path)
