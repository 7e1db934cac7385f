"""Does a generator copy its training data? Nearest training neighbours and the data-copying test.

The DCGAN paper argues (sec. 6.1) that its model does not memorise training images. This module measures it:

* the nearest training images of generated samples in a feature space (Inception pool3 when its weights are on the
  machine, else the checkpoint's own discriminator features, every layer max-pooled to 4x4 as for the probes, else
  pixels), drawn as a PNG of samples beside their 3 nearest training images;
* the distribution of sample-to-train nearest-neighbour distances beside held-out test-to-train distances (PNG);
* the data-copying test statistic C_T of Meehan, Chaudhuri & Dasgupta (2020, "A non-parametric test to detect
  data-copying in generative models", AISTATS, https://arxiv.org/abs/2004.05675), implemented here from the
  paper's definition:

  - partition the feature space into k cells with k-means on the training set T (cells pi);
  - in each cell, L(x) is the distance from x to its nearest training point of that cell; P_n is the held-out
    test sample, Q_m the generated one;
  - per cell, the Mann-Whitney U statistic U = #{(p, q) : L(q) > L(p)} (ties count 1/2) between the test points'
    and the generated points' distances, Z-scored under the null: Z = (U - n m / 2) / sqrt(n m (n + m + 1) / 12);
  - C_T = sum over the kept cells of w(pi) Z(pi) / sum of w(pi), w(pi) the share of test points in the cell; a cell
    is kept when it holds at least ``min_cell_samples`` generated points (the paper's threshold tau, as a count)
    and at least one test point.

  Sign convention (the paper's): C_T << 0 (e.g. below -3) means data-copying: generated samples lie closer to the
  training set than unseen data does. C_T >> 0 means the model under-fits (samples farther from the training data
  than unseen data); C_T near 0 is what a model that neither copies nor under-fits gives.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganbench.errors import ConfigError
from ganbench.files import atomic_path
from ganbench.progress import progress_bar

SIGN_CONVENTION = ("C_T < 0: generated samples are closer to the training set than held-out data is "
                   "(C_T << 0, e.g. < -3: data-copying); C_T > 0: farther (under-fitting); about 0: neither "
                   "(Meehan, Chaudhuri & Dasgupta 2020)")
FEATURE_SPACES = ("auto", "inception", "discriminator", "pixels")
N_NEIGHBOURS = 3


# ------------------------------------------------------------------------------------------ the statistic


def nearest_distances(query: np.ndarray, ref: np.ndarray, k: int = 1, chunk_mb: float = 256.0,
                      device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances (float64) and indices of each query row's k nearest rows of ref, in chunks."""
    if len(ref) < k:
        raise ConfigError(f"{k} nearest neighbours need at least {k} reference points, got {len(ref)}")
    r = torch.from_numpy(np.ascontiguousarray(ref, dtype=np.float64)).to(device)
    r_sq = (r * r).sum(1)
    rows = max(1, int(chunk_mb * 2**20 // (8 * max(len(ref), 1))))
    dists, idx = [], []
    for lo in range(0, len(query), rows):
        q = torch.from_numpy(np.ascontiguousarray(query[lo:lo + rows], dtype=np.float64)).to(device)
        d2 = ((q * q).sum(1)[:, None] + r_sq[None, :] - 2.0 * (q @ r.T)).clamp_(min=0.0)
        values, where = torch.topk(d2, k, dim=1, largest=False, sorted=True)
        dists.append(values.sqrt().cpu().numpy())
        idx.append(where.cpu().numpy())
    if not dists:
        return np.empty((0, k)), np.empty((0, k), dtype=np.int64)
    return np.concatenate(dists), np.concatenate(idx)


def mann_whitney_z(test_dist: np.ndarray, gen_dist: np.ndarray) -> float:
    """Z-scored U = #{(p, q): L(q) > L(p)} + ties / 2 (n test, m generated values); negative: generated closer."""
    from scipy.stats import rankdata

    n, m = len(test_dist), len(gen_dist)
    ranks = rankdata(np.concatenate([gen_dist, test_dist]))  # average ranks for ties
    u = ranks[:m].sum() - m * (m + 1) / 2.0  # pairs where a generated distance exceeds a test distance
    return float((u - n * m / 2.0) / np.sqrt(n * m * (n + m + 1) / 12.0))


def data_copying_test(train: np.ndarray, test: np.ndarray, generated: np.ndarray, cells: int = 10,
                      min_cell_samples: int = 20, seed: int = 0) -> dict[str, Any]:
    """C_T of Meehan et al. 2020 (see the module doc) from (N, D) features of the three sets.

    Returns C_T, the per-cell table (training/test/generated counts, weight, Z, kept) and the counts.
    """
    from sklearn.cluster import KMeans

    for name, arr in (("training", train), ("test", test), ("generated", generated)):
        if arr.ndim != 2 or len(arr) < 2:
            raise ConfigError(f"the data-copying test needs at least 2 {name} feature rows, got shape {arr.shape}")
    if not 1 <= cells <= len(train):
        raise ConfigError(f"--cells must lie in 1..{len(train)} (the training images), got {cells}")
    km = KMeans(n_clusters=cells, n_init=10, random_state=seed).fit(train.astype(np.float64))
    cell_train = km.labels_
    cell_test = km.predict(test.astype(np.float64))
    cell_gen = km.predict(generated.astype(np.float64))
    rows, num, den = [], 0.0, 0.0
    for c in range(cells):
        t, p, q = train[cell_train == c], test[cell_test == c], generated[cell_gen == c]
        weight = len(p) / len(test)
        kept = len(q) >= min_cell_samples and len(p) >= 1 and len(t) >= 1
        z = None
        if kept:
            z = mann_whitney_z(nearest_distances(p, t)[0][:, 0], nearest_distances(q, t)[0][:, 0])
            num += weight * z
            den += weight
        rows.append({"cell": c, "n_train": int(len(t)), "n_test": int(len(p)), "n_generated": int(len(q)),
                     "weight": weight, "z": z, "kept": kept})
    if den == 0:
        raise ConfigError(
            f"no k-means cell holds {min_cell_samples} generated samples and a test point; generate more samples "
            "(--n), use fewer --cells or a smaller --min-cell-samples"
        )
    return {"C_T": num / den, "cells": rows, "cells_kept": sum(r["kept"] for r in rows), "n_cells": cells,
            "test_weight_kept": den, "min_cell_samples": min_cell_samples, "sign_convention": SIGN_CONVENTION}


def default_cells(n_test: int) -> int:
    """About 50 test points per cell, between 1 and 50 cells."""
    return int(min(50, max(1, n_test // 50)))


# ------------------------------------------------------------------------------------------ features


def pixel_features(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def discriminator_features(disc, images: np.ndarray, train_images: np.ndarray, device: torch.device,
                           batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """D's probe features (every layer max-pooled to 4x4, concatenated), BatchNorm with the authors'
    train-batch statistics from the training images (as `ganbench eval` does by default)."""
    from ganbench.features import pool_maps, set_bn_statistics, to_input, train_batch_statistics

    disc = disc.to(device)
    stats = train_batch_statistics(disc, train_images, 128, device)
    set_bn_statistics(disc, stats)
    disc.eval()
    out = []
    with torch.no_grad(), progress_bar(len(images), "D features", "img", enabled=progress) as bar:
        for lo in range(0, len(images), batch_size):
            x = to_input(images[lo:lo + batch_size], disc.channels, device)
            out.append(pool_maps(disc.feature_maps(x)).float().cpu().numpy())
            bar.update(len(x))
    return np.concatenate(out)


def _inception_available(weights: str | None) -> bool:
    from ganbench.metrics.errors import InceptionWeightsError
    from ganbench.metrics.inception import locate_inception_weights

    try:
        locate_inception_weights(weights, allow_download=False)
    except InceptionWeightsError:
        if weights is not None:
            raise
        return False
    return True


# ------------------------------------------------------------------------------------------ data


def train_test_images(dataset: str, data_root: str | None, image_size: int, train_split: str = "train",
                      test_split: str = "test", progress: bool = False) -> tuple[np.ndarray, np.ndarray, str]:
    """(training images, held-out images, description). digits has one set of images: its stratified 80/20
    split (seed 0, the shipped digits classifier's) stands in for train and test."""
    from ganbench.data import load_images
    from ganbench.data.store import SOURCES

    reader = SOURCES.get(dataset)
    if dataset == "digits":
        from ganbench.metrics.digits_classifier import split_indices

        store = load_images("digits", None, "all", image_size=image_size, progress=progress)
        images = np.asarray(store.images)
        tr, te = split_indices(np.asarray(store.labels), seed=0)
        return images[tr], images[te], "digits: stratified 80/20 split of the 1,797 images (seed 0) as train/test"
    if reader is not None and test_split not in getattr(reader, "splits", (test_split,)):
        raise ConfigError(
            f"{dataset} has no split {test_split!r} for held-out images (splits: {', '.join(reader.splits)}); "
            "pass --test-split with one the generator never saw"
        )
    train = np.asarray(load_images(dataset, data_root, train_split, image_size=image_size, progress=progress).images)
    test = np.asarray(load_images(dataset, data_root, test_split, image_size=image_size, progress=progress).images)
    return train, test, f"{dataset}: {train_split} as training set, {test_split} as held-out set"


def _heldout_note(dataset: str, config: dict[str, Any] | None, test_split: str) -> str | None:
    """Say when the held-out images were part of G's training data (then copies of them go unnoticed)."""
    if not config:
        return None
    trained_on, split = config.get("dataset"), config.get("split")
    if trained_on != dataset:
        return None
    if dataset == "digits" and split in ("all", "train"):
        return ("G was trained on all 1,797 digits, the 20% held-out part included: copies of those would count "
                "as unseen data, so C_T understates copying by up to that share")
    if split == test_split:
        return f"G was trained on the {test_split!r} split itself: the test is void, choose another --test-split"
    return None


# ------------------------------------------------------------------------------------------ pictures


def _tiles(images: np.ndarray, cell: int = 64) -> list[np.ndarray]:
    x = images if images.shape[1] == 3 else np.repeat(images, 3, axis=1)
    factor = max(1, cell // x.shape[-1])
    x = x.repeat(factor, axis=2).repeat(factor, axis=3)
    return [np.ascontiguousarray(t.transpose(1, 2, 0)) for t in x]


def draw_neighbours(generated: np.ndarray, train: np.ndarray, rows: list[tuple[str, int]], nn_idx: np.ndarray,
                    nn_dist: np.ndarray, path: str | os.PathLike) -> Path:
    """Rows of [generated sample | its 3 nearest training images], each captioned with its distance."""
    from PIL import Image, ImageDraw

    from ganbench.arithmetic import label_font

    size = _tiles(generated[:1])[0].shape[0]
    pad, band, head = 4, 14, 18
    width = pad + (1 + N_NEIGHBOURS) * (size + pad) + 8
    canvas = Image.new("RGB", (width, head + len(rows) * (size + band + pad) + pad), "white")
    draw, font = ImageDraw.Draw(canvas), label_font()
    draw.text((pad, 2), "sample", fill="black", font=font)
    draw.text((pad + size + pad + 8, 2), f"its {N_NEIGHBOURS} nearest training images", fill="black", font=font)
    for r, (why, i) in enumerate(rows):
        y = head + r * (size + band + pad)
        draw.text((pad, y), f"{why} #{i}", fill="black", font=font)
        canvas.paste(Image.fromarray(_tiles(generated[i:i + 1])[0]), (pad, y + band))
        for j in range(N_NEIGHBOURS):
            x = pad + (j + 1) * (size + pad) + 8
            draw.text((x, y), f"d={nn_dist[i, j]:.3g}", fill="black", font=font)
            canvas.paste(Image.fromarray(_tiles(train[nn_idx[i, j]:nn_idx[i, j] + 1])[0]), (x, y + band))
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        canvas.save(tmp, format="PNG")
    return path


def draw_distances(gen_nn: np.ndarray, test_nn: np.ndarray, c_t: float, features: str,
                   path: str | os.PathLike) -> Path:
    """Histograms of sample-to-train and held-out-to-train nearest distances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0, max(gen_nn.max(), test_nn.max()) * 1.02 + 1e-12, 50)
    ax.hist(test_nn, bins=bins, density=True, alpha=0.55, label=f"held-out test -> train (n={len(test_nn)})")
    ax.hist(gen_nn, bins=bins, density=True, alpha=0.55, label=f"generated -> train (n={len(gen_nn)})")
    ax.axvline(np.median(test_nn), color="C0", ls="--")
    ax.axvline(np.median(gen_nn), color="C1", ls="--")
    ax.set_xlabel("distance to the nearest training image\n" + features, fontsize=9)
    ax.set_ylabel("density")
    ax.set_title(f"data-copying test C_T = {c_t:.2f}\n(< 0: samples closer to the training set than unseen data; "
                 "<< 0: copying)", fontsize=10)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(path)


# ------------------------------------------------------------------------------------------ the evaluation


def default_out(checkpoint: str | os.PathLike) -> Path:
    """<run>/memorization for <run>/checkpoints/x.pt, else memorization/ beside the checkpoint."""
    parent = Path(checkpoint).resolve().parent
    return (parent.parent if parent.name == "checkpoints" else parent) / "memorization"


def evaluate_memorization(
    *, dataset: str, checkpoint: str | None = None, fake_images: np.ndarray | None = None,
    data_root: str | None = None, n: int = 10000, features: str = "auto", cells: int | None = None,
    min_cell_samples: int = 20, train_split: str = "train", test_split: str = "test", out: str | None = None,
    inception_weights: str | None = None, seed: int = 0, device: str = "auto", variant_file: str | None = None,
    label: str | None = None, progress: bool = True,
) -> dict[str, Any]:
    """Nearest neighbours, distance histograms and C_T of a checkpoint's samples (or given uint8 images).

    Writes ``neighbours.png`` and ``distances.png`` into ``out`` and returns the record (kind "memorization").
    """
    from ganbench.devices import pick_device
    from ganbench.report.records import environment_versions

    if (checkpoint is None) == (fake_images is None):
        raise ConfigError("give a generator checkpoint or generated images (exactly one)")
    if features not in FEATURE_SPACES:
        raise ConfigError(f"--features must be one of {', '.join(FEATURE_SPACES)}, got {features!r}")
    if n < 2 or min_cell_samples < 1:
        raise ConfigError("--n must be at least 2 and --min-cell-samples at least 1")
    t0 = time.perf_counter()
    dev = pick_device(device)
    model = ckpt_info = training = disc = config = None
    if checkpoint is not None:
        from ganbench.checkpoint import build_from_checkpoint, file_sha256, load_checkpoint, training_provenance
        from ganbench.quality import generator_images

        ckpt = load_checkpoint(checkpoint)
        _, disc, _ = build_from_checkpoint(ckpt, variant_file, device=dev)
        model, training, config = ckpt["model"], training_provenance(ckpt), ckpt.get("config") or {}
        ckpt_info = {"path": str(Path(checkpoint).resolve()), "sha256": file_sha256(checkpoint)}
        fake = generator_images(ckpt, n, seed, dev, variant_file=variant_file)
        fake_desc = f"{n} samples of {checkpoint} (seed {seed})"
    else:
        fake = np.asarray(fake_images)
        if fake.dtype != np.uint8 or fake.ndim != 4:
            raise ConfigError("generated images must be uint8 (N, C, H, W)")
        fake_desc = f"{len(fake)} given images"
    image_size = int(fake.shape[-1])
    train, test, split_desc = train_test_images(dataset, data_root, image_size, train_split, test_split, progress)
    if train.shape[2:] != fake.shape[2:] or (train.shape[1] != fake.shape[1] and 1 not in (train.shape[1],
                                                                                           fake.shape[1])):
        raise ConfigError(f"generated images {fake.shape[1:]} and {dataset} images {train.shape[1:]} differ in shape")
    if train.shape[1] != fake.shape[1]:  # grey beside colour: repeat the grey channel, as PIL's convert("RGB")
        train, test, fake = (np.repeat(x, 3, axis=1) if x.shape[1] == 1 else x for x in (train, test, fake))

    space = features
    if space == "auto":
        space = "inception" if _inception_available(inception_weights) else ("discriminator" if disc else "pixels")
    if space == "discriminator" and disc is None:
        raise ConfigError("--features discriminator needs a checkpoint (its D); use pixels or inception")
    if space == "inception":
        from ganbench.metrics.inception import InceptionFeatures, extract

        net = InceptionFeatures(inception_weights, device=dev, allow_download=False, progress=progress)
        feats = [extract(x, model=net, progress=progress)["pool3"] for x in (train, test, fake)]
        space_desc = "inception-pool3 (pytorch-fid input)"
    elif space == "discriminator":
        feats = [discriminator_features(disc, x, train, dev, progress=progress) for x in (train, test, fake)]
        space_desc = f"discriminator features ({feats[0].shape[1]} dims: every layer max-pooled to 4x4)"
    else:
        feats = [pixel_features(x) for x in (train, test, fake)]
        space_desc = f"pixels ({feats[0].shape[1]} values in [0, 1])"
    f_train, f_test, f_fake = feats

    k = cells or default_cells(len(f_test))
    test_result = data_copying_test(f_train, f_test, f_fake, cells=k, min_cell_samples=min_cell_samples, seed=seed)
    gen_dist, gen_idx = nearest_distances(f_fake, f_train, N_NEIGHBOURS, device=dev)
    test_nn = nearest_distances(f_test, f_train, 1, device=dev)[0][:, 0]
    gen_nn = gen_dist[:, 0]

    folder = Path(out) if out else (default_out(checkpoint) if checkpoint else Path("memorization"))
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    closest = [("closest", int(i)) for i in np.argsort(gen_nn, kind="stable")[:8]]
    shown = {i for _, i in closest}
    pool = np.array([i for i in range(len(f_fake)) if i not in shown])
    random_rows = [("random", int(i)) for i in rng.choice(pool, size=min(8, len(pool)), replace=False)]
    neighbours_png = draw_neighbours(fake, train, closest + random_rows, gen_idx, gen_dist, folder / "neighbours.png")
    distances_png = draw_distances(gen_nn, test_nn, test_result["C_T"], space_desc, folder / "distances.png")

    threshold = float(np.quantile(test_nn, 0.01))
    note = _heldout_note(dataset, config, test_split)
    results = {
        "C_T": test_result["C_T"], "cells_kept": test_result["cells_kept"], "n_cells": k,
        "test_weight_kept": test_result["test_weight_kept"],
        "gen_nn_median": float(np.median(gen_nn)), "test_nn_median": float(np.median(test_nn)),
        "gen_nn_min": float(gen_nn.min()), "test_nn_min": float(test_nn.min()),
        "share_below_test_p1": float((gen_nn < threshold).mean()),
        # a copy up to the round-off of |a|^2 + |b|^2 - 2ab in float64 (~1e-7 of the distances' scale)
        "exact_copies": int((gen_nn <= 1e-4 * float(np.median(test_nn))).sum()),
        "n_generated": int(len(f_fake)), "n_train": int(len(f_train)), "n_test": int(len(f_test)),
        "cells": test_result["cells"],
    }
    return {
        "kind": "memorization",
        "label": label or (f"{model['name']} ({fake_desc})" if model else fake_desc),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": model, "checkpoint": ckpt_info, "training": training, "fake": fake_desc,
        "dataset": dataset, "data": split_desc, "features": space_desc, "feature_space": space,
        "heldout_note": note, "notes": [note] if note else [],
        "test": "data-copying test C_T, Meehan, Chaudhuri & Dasgupta 2020 (arXiv:2004.05675)",
        "sign_convention": SIGN_CONVENTION,
        "settings": {"n": n if checkpoint else None, "cells": k, "min_cell_samples": min_cell_samples,
                     "seed": seed, "train_split": train_split, "test_split": test_split, "features": features},
        "results": results,
        "outputs": {"neighbours": str(neighbours_png), "distances": str(distances_png)},
        "versions": environment_versions(), "device": str(dev),
        "wall_time_s": {"total": round(time.perf_counter() - t0, 2)},
    }
