"""What one point of a probe curve along training costs: ganbench's curve point against the whole-split way.

    python benchmarks/bench_curve.py --data-root ../shared/data/cifar10-jpg.tar.gz --out results/benchmarks/curve.md
    python benchmarks/bench_curve.py --data-root ... --checkpoint runs/x/checkpoints/step_0001000.pt

`ganbench compare` probes the points before a run's last with `curve_trials` trials of the SPEC's protocol. Two
ways to do that, timed in the same process on the same discriminator (a width-32 dcgan32, randomly initialised
unless --checkpoint is given), in fresh feature caches, alternated over --repeats:

- whole split (what a one-trial `ganbench eval cifar10 --protocol 400 --trials 1` does): BN statistics over all
  50,000 training images, features of all 50,000 training and 10,000 test images, then the trial's C path.
- curve point (ganbench compare, curve_trials = 1): BN statistics over a seeded sample of 10,000 training images,
  features of the 14,000 training images the trial and the validation read and of the 10,000 test images only.

Both fit the same L2-SVMs (the protocol's default 9-value C grid unless --C-grid). The table gives each stage's
seconds, the total, the validation and test accuracy and the ratio of the totals. Goal (issue 28): one curve point
of a width-32 dcgan32 in at most 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def fail(msg: str) -> None:
    print(f"bench_curve.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def one_point(args: argparse.Namespace, curve: bool) -> dict:
    """One evaluation (in the fresh feature cache the caller set): its record's stage times and accuracies."""
    from ganbench.evaluate import evaluate_representation, load_discriminator

    if args.checkpoint:
        d = load_discriminator(args.checkpoint, device="cpu")
    else:
        d = load_discriminator(random_init="dcgan32", model_kwargs={"ngf": args.width, "ndf": args.width},
                               seed=0, device="cpu")
    extra = {"needed_rows_only": True, "calibration_images": args.calibration_images} if curve else {}
    t0 = time.perf_counter()
    record = evaluate_representation(args.protocol, d, args.data_root, trials=1, C_grid=args.C_grid,
                                     device="cpu", progress=False, **extra)
    total = time.perf_counter() - t0
    wall = record["wall_time_s"]
    return {"total": total, "data": wall["data"], "bn": wall.get("bn_statistics", 0.0),
            "features": wall["features"] - wall.get("bn_statistics", 0.0), "svm": wall["select_C"] + wall["test"],
            "rows": record["features"].get("train_rows_extracted", record["data"]["train"]["n"]),
            "calibration": record["features"].get("calibration_images", record["data"]["train"]["n"]),
            "validation": record["svm"]["validation_accuracy"][repr(record["svm"]["chosen_C"])],
            "test": record["results"]["test_accuracy_mean"], "dim": record["features"]["dim"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", required=True, help="CIFAR-10 (or the --protocol's dataset) root or archive.")
    p.add_argument("--protocol", default="cifar10-400", help="A few-label protocol that tests its subsets.")
    p.add_argument("--checkpoint", help="A ganbench checkpoint (default: a random-init dcgan32 of --width).")
    p.add_argument("--width", type=int, default=32, help="ngf = ndf of the random-init dcgan32.")
    p.add_argument("--calibration-images", type=int, default=10000)
    p.add_argument("--C-grid", help="Comma-separated C values (default: the protocol's grid).")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--out", help="Write the Markdown report here as well.")
    args = p.parse_args()
    if args.repeats < 1:
        fail("--repeats must be at least 1")
    if args.width < 1:
        fail("--width must be at least 1")
    if not Path(args.data_root).exists():
        fail(f"--data-root {args.data_root} does not exist; point it at the dataset (e.g. "
             "../shared/data/cifar10-jpg.tar.gz)")
    if args.checkpoint and not Path(args.checkpoint).is_file():
        fail(f"--checkpoint {args.checkpoint} does not exist")
    try:
        args.C_grid = [float(c) for c in args.C_grid.split(",")] if args.C_grid else None
    except ValueError:
        fail(f"--C-grid {args.C_grid!r} is not a comma-separated list of numbers")

    import torch

    from ganbench.data import cache_dir
    from ganbench.devices import machine, machine_label
    from ganbench.errors import GanbenchError

    saved = os.environ.get("GANBENCH_CACHE")
    stores = cache_dir() / "stores"
    stores.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict]] = {"whole split": [], "curve point": []}
    t_start = time.perf_counter()
    try:
        for _ in range(args.repeats):
            for name in runs:
                with tempfile.TemporaryDirectory() as tmp:
                    # a fresh cache for the features (the decoded images stay in the usual store cache)
                    os.environ["GANBENCH_CACHE"] = tmp
                    Path(tmp, "stores").symlink_to(stores)
                    try:
                        runs[name].append(one_point(args, name == "curve point"))
                    finally:
                        if saved is None:
                            os.environ.pop("GANBENCH_CACHE")
                        else:
                            os.environ["GANBENCH_CACHE"] = saved
    except GanbenchError as exc:
        fail(str(exc))

    def best(name: str) -> dict:
        return min(runs[name], key=lambda r: r["total"])

    whole, curve = best("whole split"), best("curve point")
    what = args.checkpoint or f"a random-init dcgan32 of width {args.width}"
    lines = [
        "# One point of a probe curve: ganbench's curve point against the whole split", "",
        f"Command: `python benchmarks/bench_curve.py {' '.join(sys.argv[1:])}`", "",
        f"Machine: {machine_label(machine())}; torch {torch.__version__}; Python {platform.python_version()}. "
        f"Discriminator: {what} ({whole['dim']} features). Protocol {args.protocol}, one trial, "
        f"best of {args.repeats} run(s) each (seconds).", "",
        "| way | training images extracted | BN statistics images | data s | BN statistics s | features s "
        "| C path and test s | total s | validation % | test % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in (("whole split", whole), ("curve point", curve)):
        lines.append(f"| {name} | {r['rows']} | {r['calibration']} | {r['data']:.1f} | {r['bn']:.1f} | "
                     f"{r['features']:.1f} | {r['svm']:.1f} | {r['total']:.1f} | {r['validation']:.2f} | "
                     f"{r['test']:.2f} |")
    lines += ["", f"Curve point: {whole['total'] / curve['total']:.2f}x faster than the whole split "
                  f"({curve['total']:.1f} s against {whole['total']:.1f} s). Total time: "
                  f"{time.perf_counter() - t_start:.0f} s."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
