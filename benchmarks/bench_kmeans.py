"""Why `ganbench train --learner kmeans` fits with scikit-learn: its KMeans against a torch loop, same patches.

    python benchmarks/bench_kmeans.py --data-root ../shared/data/cifar10-jpg.tar.gz --out results/benchmarks/kmeans.md
    python benchmarks/bench_kmeans.py            # random uint8 images instead of CIFAR-10 (no data needed)

Both run Lloyd's algorithm from the same starting centroids (--patches whitened 6x6 patches of the images, as the
learner's fit makes them) for --iterations iterations: ganbench's (ganbench.representations.kmeans.kmeans, which is
scikit-learn's KMeans(algorithm="lloyd", n_init=1, tol=0) in float32 on its own OpenMP threads) and a torch loop
written here (a float32 product per block of patches for the assignment, a one-hot product for the sums: the
straightforward torch way). The table gives each one's seconds and the mean squared distance of a patch to its
nearest final centroid, and the ratio of the times (issue 30: "scikit-learn's k-means or a torch implementation if
faster; measure").
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path


def fail(msg: str) -> None:
    print(f"bench_kmeans.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def torch_lloyd(x, start, iterations: int, block: int = 8192):
    """Lloyd's algorithm in torch: argmax(x.c - |c|^2/2) per block, cluster sums by a one-hot product."""
    import torch

    c = start.clone()
    k = len(c)
    for _ in range(iterations):
        sums = torch.zeros(k, x.shape[1], dtype=torch.float64)
        counts = torch.zeros(k, dtype=torch.float64)
        half = 0.5 * c.square().sum(1)
        for lo in range(0, len(x), block):
            rows = x[lo:lo + block]
            labels = (rows @ c.T - half).argmax(1)
            onehot = torch.zeros(len(rows), k)
            onehot[torch.arange(len(rows)), labels] = 1
            sums += (onehot.T @ rows).double()
            counts += onehot.sum(0).double()
        empty = counts == 0
        c = torch.where(empty[:, None], c, (sums / counts.clamp_min(1)[:, None]).float())
    return c


def mean_sq_distance(x, c, block: int = 8192) -> float:
    import torch

    total = 0.0
    for lo in range(0, len(x), block):
        rows = x[lo:lo + block]
        total += float(torch.cdist(rows, c).min(1).values.square().sum())
    return total / len(x)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", help="CIFAR-10 root or archive (default: random images).")
    p.add_argument("--patches", type=int, default=100_000)
    p.add_argument("--centroids", type=int, default=1600)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--out", help="Write the Markdown report here as well.")
    args = p.parse_args()
    for name in ("patches", "centroids", "iterations", "repeats"):
        if getattr(args, name) < 1:
            fail(f"--{name} must be at least 1")
    if args.centroids > args.patches:
        fail(f"--centroids {args.centroids} exceeds --patches {args.patches}; k-means needs a patch per centroid")
    if args.data_root and not Path(args.data_root).exists():
        fail(f"--data-root {args.data_root} does not exist; point it at CIFAR-10 (e.g. "
             "../shared/data/cifar10-jpg.tar.gz) or leave it out for random images")

    import numpy as np
    import sklearn
    import torch

    from ganbench.devices import machine, machine_label
    from ganbench.errors import GanbenchError
    from ganbench.representations.kmeans import kmeans, normalize_patches, random_patches, zca_fit

    try:
        if args.data_root:
            from ganbench.data import load_images

            images = np.asarray(load_images("cifar10", args.data_root, "train", image_size=32, progress=False).images)
            source = "CIFAR-10 training images"
        else:
            images = np.random.default_rng(0).integers(0, 256, (5000, 3, 32, 32), dtype=np.uint8)
            source = "random uint8 images"
    except GanbenchError as exc:
        fail(str(exc))
    normed = normalize_patches(random_patches(images, args.patches, 6, np.random.default_rng(0)))
    mean, zca = zca_fit(normed)
    white = ((normed - mean) @ zca).contiguous()
    start = white[np.random.default_rng(0).choice(len(white), args.centroids, replace=False)]
    times: dict[str, list[float]] = {"ganbench (scikit-learn)": [], "torch loop": []}
    inertia: dict[str, float] = {}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        fit = kmeans(white, args.centroids, args.iterations, seed=0)
        times["ganbench (scikit-learn)"].append(time.perf_counter() - t0)
        inertia["ganbench (scikit-learn)"] = mean_sq_distance(white, fit.centroids)
        t0 = time.perf_counter()
        cents = torch_lloyd(white, start, fit.iterations)  # as many iterations as scikit-learn ran
        times["torch loop"].append(time.perf_counter() - t0)
        inertia["torch loop"] = mean_sq_distance(white, cents)
    best = {k: min(v) for k, v in times.items()}
    lines = [
        "# k-means fit: scikit-learn (what ganbench uses) against a torch loop", "",
        f"Command: `python benchmarks/bench_kmeans.py {' '.join(sys.argv[1:])}`", "",
        f"Machine: {machine_label(machine())}; torch {torch.__version__}; scikit-learn {sklearn.__version__}; "
        f"Python {platform.python_version()}. {args.patches} whitened 6x6 patches of {source}, {args.centroids} "
        f"centroids, {args.iterations} Lloyd iterations from the same start, best of {args.repeats} run(s).", "",
        "| implementation | seconds | mean squared distance to the nearest centroid |", "|---|---:|---:|",
    ]
    for name in times:
        lines.append(f"| {name} | {best[name]:.3f} | {inertia[name]:.4f} |")
    ours, loop = best["ganbench (scikit-learn)"], best["torch loop"]
    lines += ["", f"ganbench (scikit-learn): {loop / ours:.2f}x the speed of the torch loop "
                  f"({ours:.1f} s against {loop:.1f} s)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
