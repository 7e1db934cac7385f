"""The CIFAR-10 protocols' speed: what each stage of `ganbench eval cifar10 --protocol both` costs, before and after.

    python benchmarks/bench_protocols.py --features 2048                   # conv layout A/B on the dcgan32 D
    python benchmarks/bench_protocols.py --svm-features X.npy --svm-labels y.npy --C 1e-3
                                                                           # Hessian precision A/B on one fit
    python benchmarks/bench_protocols.py --path-features X.npy --path-labels y.npy --path-rows 10000
                                                                           # C path A/B: block products, predictor
    python benchmarks/bench_protocols.py --before results/records/cifar10-full.jsonl \\
        results/records/cifar10-400.jsonl --after runs/after.jsonl --label "authors' weights" \\
        --out results/benchmarks/protocols.md                              # the per-stage table from records

Sections (each optional, in this order):

1. --features N: images/s of feature extraction (train-batch BN statistics, then the pooled features of all six
   layers) of a randomly initialised dcgan32 D on N random 32x32 images, with the convolutions in the default
   NCHW layout and in channels_last (what ganbench now uses on the CPU), interleaved over --repeats, with the
   largest difference between the two feature matrices.
1b. --bn-moments N: images/s of the train-batch BN statistics pass of a randomly initialised dcgan32 D on N random
   images, each batch's float64 moments taken from a float64 copy of the whole activation (before) or by
   features.batch_moments (now), with the number of float32 statistics that differ.
2. --svm-features X.npy --svm-labels y.npy: one L2-SVM fit at --C on the first --svm-rows rows of a feature
   matrix (a ganbench feature cache file), with the conjugate-gradient Hessian products in float32 (ganbench's
   previous solver) and in bfloat16 (its default on a CPU with native bfloat16), in fresh processes: seconds,
   passes over X, objective and training accuracy of each.
3. --path-features X.npy --path-labels y.npy: the primal solver's whole C path (fit_path over --path-Cs, warm
   starts) on the first --path-rows rows, in fresh processes, with the bfloat16 Hessian products as two
   whole-matrix products (as before) or block-wise, and with or without the path predictor: seconds, passes and
   Newton steps per C.
4. --before / --after records: the wall time of each stage of each protocol (data, features, C selection,
   refit or test), the total, the peak RSS, the chosen C and the test accuracy, before and after, matched by
   protocol and feature dimension, with the ratio of the totals.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def fail(msg: str) -> None:
    print(f"bench_protocols.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


# --------------------------------------------------------------------------------------------------- features


def _random_dcgan32(n: int):
    """A randomly initialised dcgan32 D (seed 0) and n random 32x32 uint8 images."""
    from ganbench.registry import get_variant

    torch.manual_seed(0)
    _, disc = get_variant("dcgan32").build()
    return disc, np.random.default_rng(0).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)


class _Store:
    """The two attributes extract_features reads of an image store."""

    def __init__(self, images):
        self.images = images
        self.meta = {"fingerprint": "bench", "source": "bench", "split": "train"}

    def __len__(self):
        return len(self.images)


def _time_feature_arms(n: int, repeats: int, arms: dict) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """The BN statistics pass plus extraction (2 forward passes per image) of n random images by a random dcgan32,
    for each arm (name -> (FeatureSpec, prepare), prepare() called before each of its runs), interleaved.
    Returns name -> median images/s and name -> the features."""
    from ganbench.features import extract_features, train_batch_statistics

    disc, images = _random_dcgan32(n)
    store = _Store(images)
    rates: dict[str, list[float]] = {name: [] for name in arms}
    outputs = {}
    with tempfile.TemporaryDirectory() as tmp:  # the matrices are written, as extraction writes them, then dropped
        for _ in range(repeats):
            for name, (spec, prepare) in arms.items():
                prepare()
                t = time.perf_counter()
                stats = train_batch_statistics(disc, images, 128, amp=spec.amp)
                X = extract_features(disc, store, spec, bn_stats_values=stats, use_cache=False, progress=False,
                                     out=Path(tmp) / f"bench-features-{name}.npy")
                rates[name].append(2 * n / (time.perf_counter() - t))
                outputs[name] = np.array(X)
                del X
    return {name: statistics.median(r) for name, r in rates.items()}, outputs


def _feature_ab(n: int, repeats: int, heading: str, what: str, arms: dict, labels: tuple[str, str],
                verdict: Callable[[float, np.ndarray, float], str]) -> list[str]:
    """A two-arm feature A/B as a Markdown section: arms as for _time_feature_arms (before first), the rows labelled
    labels; verdict(ratio after / before, |after - before| of the features, largest |feature|) ends it."""
    rates, outputs = _time_feature_arms(n, repeats, arms)
    (x, a), (y, b) = rates.items()
    intro = (f"dcgan32 D (28,672 features), {n} random images, BN statistics pass plus extraction (2 forward passes "
             f"per image), median of {repeats} interleaved repeats, {torch.get_num_threads()} threads.")
    diff = np.abs(outputs[y] - outputs[x])
    return _ab_section(heading, intro, what, (labels[0], a), (labels[1], b),
                       verdict(b / a, diff, float(np.abs(outputs[x]).max())))


def bench_features(n: int, repeats: int) -> list[str]:
    import contextlib

    import ganbench.features as feat
    from ganbench.features import FeatureSpec

    spec = FeatureSpec("bench", [1, 2, 3, 4, 5, 6], "train-batches", "float32")
    original = feat.channels_last_on_cpu

    def nchw(net, device):  # the layout ganbench used before
        return contextlib.nullcontext(False)

    def use(ctx):
        def prepare():
            feat.channels_last_on_cpu = ctx
        return prepare

    try:
        return _feature_ab(
            n, repeats, "Feature extraction: convolution layout", "layout",
            {"NCHW": (spec, use(nchw)), "channels_last": (spec, use(original))},
            ("NCHW (before)", "channels_last (now, CPU)"),
            lambda r, diff, scale: f"Ratio channels_last / NCHW: **{r:.2f}x**; largest feature difference "
                                   f"{float(diff.max()):.2e} (largest feature {scale:.3g}: float rounding).")
    finally:
        feat.channels_last_on_cpu = original


def bench_feature_amp(n: int, repeats: int) -> list[str]:
    """Both feature passes (BN statistics and extraction) in float32 (the default) and under bf16 autocast
    (`eval --amp bf16`), with the difference of the features."""
    from ganbench.features import FeatureSpec

    return _feature_ab(
        n, repeats, "Feature extraction: float32 or bf16 autocast (`--amp bf16`)", "arithmetic",
        {amp: (FeatureSpec("bench", [1, 2, 3, 4, 5, 6], "train-batches", "float32", amp=amp), lambda: None)
         for amp in ("off", "bf16")},
        ("float32 (default)", "bf16 autocast (`--amp bf16`)"),
        lambda r, diff, scale: f"Ratio bf16 / float32: **{r:.2f}x**; feature difference largest "
                               f"{float(diff.max()):.3g}, mean {float(diff.mean()):.3g} (largest feature {scale:.3g}): "
                               "bfloat16 rounding, not float rounding.")


def _ab_section(heading: str, intro: str, what: str, before: tuple[str, float], after: tuple[str, float],
                verdict: str) -> list[str]:
    """A Markdown section: heading, one paragraph, the two arms' images/s, the verdict line."""
    return [f"## {heading}", "", intro, "", f"| {what} | images/s |", "|---|---:|",
            f"| {before[0]} | {before[1]:.0f} |", f"| {after[0]} | {after[1]:.0f} |", "", verdict, ""]


def bench_bn_moments(n: int, repeats: int) -> list[str]:
    """The train-batch BN statistics pass with each batch's float64 moments taken the previous way (a float64 copy
    of the whole activation, then its mean and variance) and the current way (features.batch_moments)."""
    import ganbench.features as feat

    disc, images = _random_dcgan32(n)
    current = feat.batch_moments

    def whole_copy(x):  # ganbench before: the float64 copy of the whole BN input
        x = x.double()
        dims = [0] + list(range(2, x.dim()))
        return x.mean(dims), x.var(dims, unbiased=False)

    rates: dict[str, list[float]] = {"float64 copy": [], "batch_moments": []}
    stats = {}
    try:
        for _ in range(repeats):
            for name, fn in (("float64 copy", whole_copy), ("batch_moments", current)):
                feat.batch_moments = fn
                t = time.perf_counter()
                stats[name] = feat.train_batch_statistics(disc, images, 128)
                rates[name].append(n / (time.perf_counter() - t))
    finally:
        feat.batch_moments = current
    # the statistics as the BN layers receive them (float32 buffers): how many differ at all
    pairs = [(a.float(), b.float()) for sa, sb in zip(stats["float64 copy"], stats["batch_moments"])
             for a, b in zip(sa, sb)]
    differ = sum(int((a != b).sum()) for a, b in pairs)
    total = sum(a.numel() for a, _ in pairs)
    a, b = statistics.median(rates["float64 copy"]), statistics.median(rates["batch_moments"])
    return _ab_section(
        "Train-batch BN statistics: the float64 moments of each batch",
        f"dcgan32 D, {n} random images in batches of 128, the statistics pass alone, median of {repeats} "
        f"interleaved repeats, {torch.get_num_threads()} threads.",
        "moments", ("float64 copy of the whole BN input (before)", a), ("`batch_moments`, blocks of rows (now)", b),
        f"Ratio: **{b / a:.2f}x**; {differ} of {total} float32 statistics differ.")


# --------------------------------------------------------------------------------------------------------- svm


def svm_child(args: argparse.Namespace) -> None:
    import resource

    from ganbench.probe.l2svm import L2SVM, squared_hinge_objective

    X = np.load(args.svm_features, mmap_mode="r")[: args.svm_rows]
    y = np.load(args.svm_labels)[: args.svm_rows]
    t = time.perf_counter()
    m = L2SVM(C=args.C, hessian_dtype=args.hessian, solver="primal").fit(np.asarray(X), y)
    fit = time.perf_counter() - t
    obj = float(squared_hinge_objective(m.coef_, m.intercept_, np.asarray(X, dtype=np.float32), y, args.C).sum())
    print(json.dumps({"fit_s": fit, "passes": m.n_passes_, "newton": m.n_iter_, "objective": obj,
                      "train_acc": float(m.score(X, y)),
                      "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))


def bench_svm(args: argparse.Namespace) -> list[str]:
    rows = {}
    for hessian in ("float32", "bfloat16"):
        cmd = [sys.executable, __file__, "--svm-child", "--svm-features", args.svm_features, "--svm-labels",
               args.svm_labels, "--svm-rows", str(args.svm_rows), "--C", str(args.C), "--hessian", hessian]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            fail(f"the {hessian} fit failed: {out.stderr.strip().splitlines()[-1:]}")
        rows[hessian] = json.loads(out.stdout.strip().splitlines()[-1])
    a, b = rows["float32"], rows["bfloat16"]
    X = np.load(args.svm_features, mmap_mode="r")
    lines = [
        "## One L2-SVM fit: precision of the CG's Hessian products",
        "",
        f"`{Path(args.svm_features).name}`: the first {min(args.svm_rows, X.shape[0])} rows x {X.shape[1]} "
        f"features, C = {args.C}, cold start, primal solver, tol 1e-4, each in its own process.",
        "",
        "| Hessian products | fit s | passes over X | Newton steps | objective (sum over classes) | train acc |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in (("float32 (before)", a), ("bfloat16 (now, CPU)", b)):
        lines.append(f"| {name} | {r['fit_s']:.1f} | {r['passes']} | {r['newton']} | {r['objective']:.8g} | "
                     f"{r['train_acc']:.4f} |")
    rel = abs(a["objective"] - b["objective"]) / abs(a["objective"])
    lines += ["", f"Ratio float32 / bfloat16 fit time: **{a['fit_s'] / b['fit_s']:.2f}x**; objectives differ by "
              f"{rel:.1e} relative (the tolerance is 1e-4).", ""]
    return lines


# ------------------------------------------------------------------------------------------------------ C path


PATH_LEVERS = {  # name: (fused block-wise Hessian products, path predictor)
    "whole-matrix products, no predictor": (False, False),
    "block-wise products, no predictor": (True, False),
    "block-wise products + path predictor (now)": (True, True),
}


def path_child(args: argparse.Namespace) -> None:
    import ganbench.probe.primal as primal
    from ganbench.probe.l2svm import fit_path

    fused, predictor = json.loads(args.levers)
    if not fused:
        primal.LOWP_BLOCK = 1 << 40  # one block: the whole copy, as the two products ran before
    if not predictor:
        primal.path_predictor = lambda prob, C, V0, T: V0.to(prob.dtype)  # start from the previous C's solution
    X = np.asarray(np.load(args.path_features, mmap_mode="r")[: args.path_rows])
    y = np.load(args.path_labels)[: args.path_rows]
    fits = []
    last = [time.perf_counter()]

    def on_fit(m):
        now = time.perf_counter()
        fits.append({"C": m.C, "s": now - last[0], "passes": m.n_passes_, "newton": m.n_iter_,
                     "objective": float(m.objective_.sum())})
        last[0] = now

    fit_path(X, y, [float(c) for c in args.path_Cs.split(",")], solver="primal", on_fit=on_fit)
    print(json.dumps(fits))


def bench_path(args: argparse.Namespace) -> list[str]:
    runs = {}
    for name, levers in PATH_LEVERS.items():
        cmd = [sys.executable, __file__, "--path-child", "--path-features", args.path_features, "--path-labels",
               args.path_labels, "--path-rows", str(args.path_rows), "--path-Cs", args.path_Cs,
               "--levers", json.dumps(levers)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            fail(f"the path run '{name}' failed: {out.stderr.strip().splitlines()[-1:]}")
        runs[name] = json.loads(out.stdout.strip().splitlines()[-1])
    X = np.load(args.path_features, mmap_mode="r")
    names = list(runs)
    lines = [
        "## The primal solver's C path: block-wise Hessian products and the path predictor",
        "",
        f"`{Path(args.path_features).name}`: the first {min(args.path_rows, X.shape[0])} rows x {X.shape[1]} "
        f"features, `fit_path` over C = {args.path_Cs} (warm starts, bfloat16 Hessian products, tol 1e-4), each "
        "configuration in its own process. Per C: seconds / passes over X / Newton steps.",
        "",
        "| C | " + " | ".join(names) + " |",
        "|---:|" + "---:|" * len(names),
    ]
    for i, fit in enumerate(runs[names[0]]):
        cells = [f"{runs[n][i]['s']:.1f} / {runs[n][i]['passes']} / {runs[n][i]['newton']}" for n in names]
        lines.append(f"| {fit['C']:g} | " + " | ".join(cells) + " |")
    tot = {n: sum(f["s"] for f in runs[n]) for n in names}
    passes = {n: sum(f["passes"] for f in runs[n]) for n in names}
    lines.append("| all | " + " | ".join(f"**{tot[n]:.0f}** / {passes[n]}" for n in names) + " |")
    worst = max(abs(a["objective"] - b["objective"]) / abs(a["objective"])
                for n in names[1:] for a, b in zip(runs[names[0]], runs[n]))
    lines += ["", f"Whole path: **{tot[names[0]] / tot[names[-1]]:.2f}x** faster with both levers than with neither "
              f"({tot[names[0]] / tot[names[1]]:.2f}x from the block-wise products alone); the objectives of every C "
              f"agree to {worst:.1e} relative (the tolerance is 1e-4). (The preconditioner changes of the same commit, "
              f"float32 application and a bfloat16 X~U^T pass, are in all three columns.)", ""]
    return lines


# ----------------------------------------------------------------------------------------------------- records


def _records(paths: list[str]) -> list[dict]:
    out = []
    for p in paths:
        for line in Path(p).read_text().splitlines():
            if line.strip():
                out.append(json.loads(line))
    return out


def _key(r: dict) -> tuple:
    return r["protocol"], r["features"]["dim"], r.get("checkpoint", {}) and r["checkpoint"].get("sha256")


def bench_records(before: list[str], after: list[str], label: str | None) -> list[str]:
    old = {_key(r): r for r in _records(before)}
    new = [r for r in _records(after)]
    if not new:
        fail("--after holds no records")
    lines = [
        f"## `eval cifar10 --protocol both`{': ' + label if label else ''}",
        "",
        "Wall time per stage in seconds, from the records' `wall_time_s` (data: loading the image stores; "
        "features: train-batch BN statistics (also shown alone where the record has them) and extraction, or "
        "reading the cache; select_C: fits on the C grid and validation; refit/test: the final model and its test "
        "score). Test accuracy in percent, to the record's precision.",
        "",
        "| protocol | features | run | C grid | data | BN stats | features | select_C | refit/test | total | "
        "peak RSS GiB | chosen C | test accuracy |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    totals = {"before": 0.0, "after": 0.0}
    timed: list[tuple[str, dict]] = []  # (run, record) of the records that say where their fitting time went
    for r in new:
        o = old.get(_key(r))
        for name, rec in (("before", o), ("after" if old else "this run", r)):
            if rec is None:
                continue
            w = rec["wall_time_s"]
            last = w.get("refit_and_test", w.get("test", 0.0))
            acc = rec["results"].get("test_accuracy_mean", rec["results"].get("test_error_mean"))
            rss = rec.get("peak_rss_gib")
            bn = w.get("bn_statistics")
            lines.append(
                f"| {rec['protocol']} | {rec['features']['dim']:,} | {name} | {_grid(rec)} | {w.get('data', 0):.0f} | "
                f"{'-' if bn is None else f'{bn:.0f}'} | {w.get('features', 0):.0f} | {w.get('select_C', 0):.0f} | "
                f"{last:.0f} | {w['total']:.0f} | {'-' if rss is None else f'{rss:.2f}'} | "
                f"{rec['svm']['chosen_C']:g} | {acc:g} |")
            if o is not None:
                totals[name] += w["total"]
            if "fit_seconds" in rec["svm"]:
                timed.append((name, rec))
    if totals["before"]:
        matched = sorted({r["protocol"] for r in new if _key(r) in old})
        what = "Both protocols" if len(matched) == 2 else ", ".join(matched)
        lines += ["", f"{what}: {totals['before'] / 60:.1f} min before, {totals['after'] / 60:.1f} min "
                  f"after: **{totals['before'] / totals['after']:.2f}x** faster.", ""]
    return lines + _fit_seconds_table(timed)


def _grid(rec: dict) -> str:
    grid = rec["svm"].get("C_grid")
    return f"{min(grid):g}..{max(grid):g} ({len(grid)})" if grid else "-"


def _fit_seconds_table(records: list[tuple[str, dict]]) -> list[str]:
    """Where C selection's time goes: the records' svm.fit_seconds (per C, summed over a protocol's trials; the
    first C of a path also carries the problem's setup) next to the validation accuracy at that C, one row per
    (run, record)."""
    if not records:
        return []
    grid = sorted({float(c) for _, r in records for c in r["svm"]["fit_seconds"]})
    lines = ["", "Fitting time per C in seconds (summed over trials; the smallest C of each path also carries the "
             "problem's setup: centring, the bfloat16 copy and the preconditioner, or the Gram matrix), and the "
             "validation accuracy at that C (mean over trials):", "",
             "| protocol | features | run | C grid | " + " | ".join(f"{c:g}" for c in grid) + " | all |",
             "|---|---:|---|---|" + "---:|" * (len(grid) + 1)]
    for name, r in records:
        secs, val = r["svm"]["fit_seconds"], r["svm"]["validation_accuracy"]
        cells = [f"{secs[repr(c)]:.0f} ({val[repr(c)]:.2f})" if repr(c) in secs else "-" for c in grid]
        lines.append(f"| {r['protocol']} | {r['features']['dim']:,} | {name} | {_grid(r)} | " + " | ".join(cells)
                     + f" | {sum(secs.values()):.0f} |")
    return lines + [""]


# -------------------------------------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--features", type=int, default=0, help="images for the convolution-layout A/B (0: skip)")
    p.add_argument("--bn-moments", type=int, default=0, help="images for the BN-statistics moments A/B (0: skip)")
    p.add_argument("--feature-amp", type=int, default=0, help="images for the float32 / bf16 features A/B (0: skip)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--svm-features", help="a feature matrix .npy (float16 cache file) for the Hessian A/B")
    p.add_argument("--svm-labels", help="its labels .npy")
    p.add_argument("--svm-rows", type=int, default=40000)
    p.add_argument("--C", type=float, default=1e-3)
    p.add_argument("--path-features", help="a feature matrix .npy for the C-path A/B of the primal solver")
    p.add_argument("--path-labels", help="its labels .npy")
    p.add_argument("--path-rows", type=int, default=40000)
    p.add_argument("--path-Cs", default="1e-5,3e-5,1e-4,3e-4,1e-3,3e-3,1e-2,3e-2,1e-1")
    p.add_argument("--before", nargs="*", default=[], help="JSONL records of the previous runs")
    p.add_argument("--after", nargs="*", default=[], help="JSONL records of the new runs")
    p.add_argument("--label", help="what the records are of (a heading)")
    p.add_argument("--out", help="also write the Markdown to this file")
    p.add_argument("--svm-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--hessian", help=argparse.SUPPRESS)
    p.add_argument("--path-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--levers", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.svm_child:
        svm_child(args)
        return
    if args.path_child:
        path_child(args)
        return
    if bool(args.svm_features) != bool(args.svm_labels):
        fail("--svm-features and --svm-labels go together")
    if bool(args.path_features) != bool(args.path_labels):
        fail("--path-features and --path-labels go together")
    try:
        if any(float(c) <= 0 for c in args.path_Cs.split(",")):
            raise ValueError
    except ValueError:
        fail(f"--path-Cs must be comma-separated positive numbers, got {args.path_Cs!r}")
    for f in [args.svm_features, args.svm_labels, args.path_features, args.path_labels, *args.before, *args.after]:
        if f and not Path(f).is_file():
            fail(f"{f} does not exist")
    if (args.features < 0 or args.bn_moments < 0 or args.feature_amp < 0 or args.repeats < 1 or args.svm_rows < 2
            or not args.C > 0):
        fail("--features >= 0, --bn-moments >= 0, --feature-amp >= 0, --repeats >= 1, --svm-rows >= 2 and --C > 0, "
             "please")
    cpu = platform.processor() or platform.machine()
    lines = ["# CIFAR-10 protocols: time per stage", "",
             f"Command: `python benchmarks/bench_protocols.py {shlex.join(sys.argv[1:])}`", "",
             f"Machine: {cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}.", ""]
    if args.features:
        lines += bench_features(args.features, args.repeats)
    if args.bn_moments:
        lines += bench_bn_moments(args.bn_moments, args.repeats)
    if args.feature_amp:
        lines += bench_feature_amp(args.feature_amp, args.repeats)
    if args.svm_features:
        lines += bench_svm(args)
    if args.path_features:
        lines += bench_path(args)
    if args.after:
        lines += bench_records(args.before, args.after, args.label)
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
