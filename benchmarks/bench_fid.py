"""Benchmark ganbench's metrics against pytorch-fid and torch-fidelity on this machine.

1. Frechet distance at d=2048 on random SPD statistics: ganbench's symmetric route (Cholesky / eigh +
   eigvalsh) vs ``pytorch_fid.fid_score.calculate_frechet_distance`` (scipy.linalg.sqrtm), interleaved
   repeats in one process; median times, ratio and the relative difference of the values.
2. All metrics from ONE Inception pass per image set (FID, IS, KID, precision/recall, density/coverage)
   vs running pytorch-fid (FID) and torch-fidelity (IS, KID, precision/recall) separately on the same PNG
   folders. Uses the real FID-Inception weights when they are available locally, else a seeded
   random-weights file of the same architecture (said so in the output: timings are the same, values
   are not Inception numbers).

    python benchmarks/bench_fid.py --out results/benchmarks/fid.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch


def random_spd_stats(d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((d, d)) / np.sqrt(d)
    sigma = a @ a.T + 0.01 * np.eye(d)
    return rng.standard_normal(d) * 0.1, sigma


def bench_frechet(d: int, repeats: int) -> dict:
    from pytorch_fid.fid_score import calculate_frechet_distance

    from ganbench.metrics.fid import frechet_distance

    mu1, s1 = random_spd_stats(d, 1)
    mu2, s2 = random_spd_stats(d, 2)
    ours_t, theirs_t = [], []
    ours_v = theirs_v = float("nan")
    for _ in range(repeats):  # interleaved, so both see the same machine load
        t0 = time.perf_counter()
        ours_v = frechet_distance(mu1, s1, mu2, s2)
        ours_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # scipy's sqrtm(disp=...)
            theirs_v = float(calculate_frechet_distance(mu1, s1, mu2, s2))
        theirs_t.append(time.perf_counter() - t0)
    return {
        "d": d,
        "repeats": repeats,
        "ours_s": statistics.median(ours_t),
        "theirs_s": statistics.median(theirs_t),
        "ours_all": ours_t,
        "theirs_all": theirs_t,
        "ours_value": ours_v,
        "theirs_value": theirs_v,
        "rel_diff": abs(ours_v - theirs_v) / abs(theirs_v),
    }


def write_images(folder: Path, n: int, seed: int, kind: str) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        if kind == "smooth":
            coarse = torch.from_numpy(rng.random((1, 3, 4, 4))).float()
            img = torch.nn.functional.interpolate(coarse, size=32, mode="bilinear", align_corners=False)[0]
            arr = img.permute(1, 2, 0).numpy()
        else:
            t = np.linspace(0, 1, 32)
            wave = np.sin(2 * np.pi * rng.uniform(1, 6) * (t[:, None] * rng.uniform(-1, 1) + t[None, :]))
            arr = 0.5 + 0.4 * wave[..., None] * rng.random(3) + 0.05 * rng.standard_normal((32, 32, 3))
        Image.fromarray((arr.clip(0, 1) * 255).astype(np.uint8)).save(folder / f"{i:05d}.png")


def bench_pipeline(n: int, work: Path, batch_size: int) -> dict:
    from ganbench.metrics import compute_all
    from ganbench.metrics.inception import (
        WEIGHTS_FILENAME,
        InceptionFeatures,
        extract,
        locate_inception_weights,
        write_random_inception_weights,
    )

    try:
        weights, source = locate_inception_weights(allow_download=False)
        real_weights = True
    except Exception:
        weights = write_random_inception_weights(
            work / "torch_home" / "hub" / "checkpoints" / WEIGHTS_FILENAME
        )
        source, real_weights = "random (seed 0)", False
    # pytorch-fid only reads the torch hub cache: point TORCH_HOME at a folder holding this very file.
    hub = work / "torch_home" / "hub" / "checkpoints" / WEIGHTS_FILENAME
    if not hub.exists():
        hub.parent.mkdir(parents=True, exist_ok=True)
        hub.symlink_to(Path(weights).resolve())
    os.environ["TORCH_HOME"] = str(work / "torch_home")
    real_dir, fake_dir = work / "real", work / "fake"
    write_images(real_dir, n, 0, "smooth")
    write_images(fake_dir, n, 1, "stripes")
    kid_size = min(1000, n)

    t0 = time.perf_counter()
    model = InceptionFeatures(weights, allow_download=False)
    real = extract(real_dir, batch_size=batch_size, model=model, progress=False)
    fake = extract(fake_dir, batch_size=batch_size, model=model, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # fewer samples than dims
        ours = compute_all(real, fake, kid_subset_size=kid_size)
    ours_s = time.perf_counter() - t0

    # the same in --inception-input tf1 mode: torch-fidelity's input pipeline and seed-2020 subsets
    t0 = time.perf_counter()
    model_tf1 = InceptionFeatures(weights, allow_download=False, input_mode="tf1")
    real_tf1 = extract(real_dir, batch_size=batch_size, model=model_tf1, progress=False)
    fake_tf1 = extract(fake_dir, batch_size=batch_size, model=model_tf1, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ours_tf1 = compute_all(real_tf1, fake_tf1, ("fid", "is", "kid", "pr"), kid_subset_size=kid_size,
                               is_seed=2020, kid_seed=2020, sampling="torch-fidelity")
    ours_tf1_s = time.perf_counter() - t0

    from pytorch_fid.fid_score import calculate_fid_given_paths

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pf_fid = float(calculate_fid_given_paths([str(real_dir), str(fake_dir)], batch_size, "cpu", 2048, 0))
    pf_s = time.perf_counter() - t0

    import torch_fidelity

    t0 = time.perf_counter()
    tf = torch_fidelity.calculate_metrics(
        input1=str(fake_dir),
        input2=str(real_dir),
        isc=True,
        fid=True,
        kid=True,
        prc=True,
        cuda=False,
        cache=False,
        verbose=False,
        feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=str(weights),
        kid_subset_size=kid_size,
        samples_find_ext="png",
        batch_size=batch_size,
    )
    tf_s = time.perf_counter() - t0
    return {
        "n": n,
        "weights": str(weights),
        "weights_source": source,
        "real_weights": real_weights,
        "ours_s": ours_s,
        "pytorch_fid_s": pf_s,
        "torch_fidelity_s": tf_s,
        "ours": ours,
        "ours_tf1": ours_tf1,
        "ours_tf1_s": ours_tf1_s,
        "pytorch_fid": {"fid": pf_fid},
        "torch_fidelity": {
            "fid": tf["frechet_inception_distance"],
            "is_mean": tf["inception_score_mean"],
            "kid_mean": tf["kernel_inception_distance_mean"],
            "precision": tf["precision"],
            "recall": tf["recall"],
        },
    }


def machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), numpy {np.__version__}, load average {load[0]:.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, default=2048, help="statistics dimension for part 1 [2048]")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats for part 1 [3]")
    parser.add_argument("--n", type=int, default=100, help="images per side for part 2 [100]")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch and BLAS threads (default: library defaults)"
    )
    parser.add_argument("--skip-pipeline", action="store_true", help="only part 1")
    parser.add_argument("--out", type=Path, default=None, help="write a Markdown report here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(args.threads)
        except ImportError:
            print("threadpoolctl missing: numpy/scipy keep their own thread count", file=sys.stderr)

    command = "python benchmarks/bench_fid.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = ["# FID / metrics benchmark", "", f"Command: `{command}`", "", f"Machine: {machine()}", ""]
    print(machine(), flush=True)

    fr = bench_frechet(args.dim, args.repeats)
    ratio = fr["theirs_s"] / fr["ours_s"]
    print(
        f"Frechet distance d={fr['d']}: ganbench {fr['ours_s']:.2f} s, pytorch-fid {fr['theirs_s']:.2f} s "
        f"(median of {fr['repeats']}), {ratio:.1f}x faster; values {fr['ours_value']:.6f} vs "
        f"{fr['theirs_value']:.6f} (rel. diff {fr['rel_diff']:.1e})",
        flush=True,
    )
    lines += [
        f"## Frechet distance, d = {fr['d']}, random SPD statistics",
        "",
        "| implementation | median time (s) | all runs (s) | value |",
        "|---|---|---|---|",
        f"| ganbench `frechet_distance` (Cholesky/eigh + eigvalsh) | {fr['ours_s']:.2f} | "
        f"{', '.join(f'{t:.2f}' for t in fr['ours_all'])} | {fr['ours_value']:.6f} |",
        f"| pytorch-fid `calculate_frechet_distance` (scipy sqrtm) | {fr['theirs_s']:.2f} | "
        f"{', '.join(f'{t:.2f}' for t in fr['theirs_all'])} | {fr['theirs_value']:.6f} |",
        "",
        f"Speed-up: **{ratio:.1f}x**; relative difference of the values: {fr['rel_diff']:.1e}.",
        "",
    ]

    if not args.skip_pipeline:
        with tempfile.TemporaryDirectory(prefix="bench_fid_") as tmp:
            pl = bench_pipeline(args.n, Path(tmp), args.batch_size)
        peers = pl["pytorch_fid_s"] + pl["torch_fidelity_s"]
        note = (
            "real FID-Inception weights"
            if pl["real_weights"]
            else "RANDOM-weights FID-Inception (the real file was not found locally): "
            "timings are representative, "
            "metric values are not Inception numbers"
        )
        print(f"weights: {note} ({pl['weights_source']})")
        print(
            f"all metrics, {pl['n']} + {pl['n']} images: ganbench {pl['ours_s']:.1f} s; pytorch-fid (FID) "
            f"{pl['pytorch_fid_s']:.1f} s + torch-fidelity (FID, IS, KID, P/R) {pl['torch_fidelity_s']:.1f} s "
            f"= {peers:.1f} s; {peers / pl['ours_s']:.1f}x",
            flush=True,
        )
        o, pf, tf = pl["ours"], pl["pytorch_fid"], pl["torch_fidelity"]
        print(
            f"values: FID {o['fid']:.5g} (pytorch-fid {pf['fid']:.5g}); "
            f"IS {o['is_mean']:.4f} (torch-fidelity "
            f"{tf['is_mean']:.4f}); KID {o['kid_mean']:.5g} ({tf['kid_mean']:.5g}); precision "
            f"{o['precision']:.3f} ({tf['precision']:.3f}); recall {o['recall']:.3f} ({tf['recall']:.3f})"
        )
        lines += [
            f"## All metrics on {pl['n']} real + {pl['n']} generated 32x32 PNGs",
            "",
            f"Weights: {note} (`{pl['weights_source']}`).",
            "",
            "| run | metrics | time (s) |",
            "|---|---|---|",
            "| ganbench: one Inception pass per set + `compute_all` | FID, IS, KID, P/R, D/C | "
            f"{pl['ours_s']:.1f} |",
            f"| pytorch-fid `calculate_fid_given_paths` | FID | {pl['pytorch_fid_s']:.1f} |",
            f"| torch-fidelity `calculate_metrics` | FID, IS, KID, P/R | {pl['torch_fidelity_s']:.1f} |",
            f"| pytorch-fid + torch-fidelity | | {peers:.1f} (**{peers / pl['ours_s']:.1f}x** ganbench) |",
            "",
            "| metric | ganbench | peer |",
            "|---|---|---|",
            f"| FID | {o['fid']:.6g} | {pf['fid']:.6g} (pytorch-fid) |",
            f"| IS (10 splits) | {o['is_mean']:.4f} | "
            f"{tf['is_mean']:.4f} (torch-fidelity, TF1-style resize) |",
            f"| KID | {o['kid_mean']:.5g} | {tf['kid_mean']:.5g} (torch-fidelity, other subsets) |",
            f"| precision | {o['precision']:.3f} | {tf['precision']:.3f} (torch-fidelity) |",
            f"| recall | {o['recall']:.3f} | {tf['recall']:.3f} (torch-fidelity) |",
            f"| density / coverage | {o['density']:.3f} / {o['coverage']:.3f} | n/a |",
            "",
            f"The same images with `--inception-input tf1` (torch-fidelity's input pipeline: TF1 bilinear resize on "
            f"0..255, (x - 128) / 128; IS splits and KID subsets drawn as torch-fidelity draws them, seed 2020), "
            f"one more Inception pass per set, {pl['ours_tf1_s']:.1f} s:",
            "",
            "| metric | ganbench tf1 | torch-fidelity | relative difference |",
            "|---|---|---|---|",
        ]
        t1 = pl["ours_tf1"]
        for name, key in (("FID", "fid"), ("IS (10 splits)", "is_mean"), ("KID", "kid_mean"),
                          ("precision", "precision"), ("recall", "recall")):
            rel = abs(t1[key] / tf[key] - 1) if tf[key] else abs(t1[key])
            lines.append(f"| {name} | {t1[key]:.9g} | {tf[key]:.9g} | {rel:.1e} |")
            print(f"tf1 mode {name}: {t1[key]:.9g} vs torch-fidelity {tf[key]:.9g} ({rel:.1e})")
        lines.append("")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
