"""Time ganbench's L2-SVM (torch backend) against scikit-learn's LinearSVC on the same synthetic features.

The data are shaped like the DCGAN paper's protocols (28,672 discriminator features, 10 classes): non-negative
leaky-ReLU features with a mean as large as their spread, class structure in a low-dimensional subspace and
correlated noise with a decaying spectrum. They are written once per size as a float16 memmap; each solver then
runs in a fresh subprocess that reads it, so that its peak resident memory (VmHWM) is that solver's own (the
memmap pages it touches count too: the float16 matrix itself is part of every solver's footprint).

Each solver fits the whole C grid, as a protocol does: ganbench with ``fit_path`` (warm starts along C, one Gram
matrix), LinearSVC once per C (it has no warm start).

    python benchmarks/bench_svm.py --out results/benchmarks/svm.md     # 4,000 (CIFAR-10 400/class), 1,000 (SVHN-1000)
    python benchmarks/bench_svm.py --n 10000 --C 1e-3
    python benchmarks/bench_svm.py --full-cifar-shape --C 1e-4          # 50,000 x 28,672, torch only (memory)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FULL_N, FULL_D = 50_000, 28_672


def make_features(
    outputs: list[tuple[Path, int]], d: int, classes: int, seed: int, sep: float, chunk: int = 2048
) -> list[np.ndarray]:
    """Write synthetic float16 feature rows to each (path, rows) as raw memmaps; return their labels.

    All outputs share one distribution (class means, mixing matrices) and get fresh samples from it.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    q, r = 32, 256  # class subspace, correlated-noise rank
    means = torch.randn(classes, q, generator=g) * sep
    A = torch.randn(q, d, generator=g) / q**0.5
    B = torch.randn(r, d, generator=g) * (torch.arange(1, r + 1, dtype=torch.float32) ** -0.5)[:, None]
    all_labels = []
    for path, n in outputs:
        labels = torch.randint(0, classes, (n,), generator=g)
        X = np.memmap(path, dtype=np.float16, mode="w+", shape=(n, d))
        for a in range(0, n, chunk):
            y = labels[a : a + chunk]
            z = means[y] + torch.randn(len(y), q, generator=g)
            h = (
                z @ A
                + torch.randn(len(y), r, generator=g) @ B
                + 0.5 * torch.randn(len(y), d, generator=g)
                + 0.5
            )
            X[a : a + len(y)] = torch.nn.functional.leaky_relu(h, 0.2).numpy().astype(np.float16)
        X.flush()
        del X
        all_labels.append(labels.numpy())
    return all_labels


def child(args: argparse.Namespace) -> None:
    """Fit one solver on the memmapped data and print one JSON line."""
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(relativeCreated)8.0f ms %(message)s")
    X = np.memmap(args.data, dtype=np.float16, mode="r", shape=(args.n, args.d))
    y = np.load(args.data + ".y.npy")
    Xt = np.memmap(args.data + ".test", dtype=np.float16, mode="r", shape=(args.n_test, args.d))
    yt = np.load(args.data + ".test.y.npy")
    Cs = _floats(args.C)
    if args.solver == "sklearn":
        from sklearn.svm import LinearSVC

        t0 = time.perf_counter()
        models = [
            LinearSVC(
                C=C, loss="squared_hinge", dual=args.n < args.d, tol=args.sklearn_tol, max_iter=args.sklearn_max_iter
            ).fit(X, y)
            for C in Cs
        ]
        fit_s = time.perf_counter() - t0
        n_iter, extra = [int(m.n_iter_) for m in models], ""
    else:
        from ganbench.probe import fit_path

        t0 = time.perf_counter()
        models = fit_path(X, y, Cs, backend="torch", device=args.device, tol=args.tol)
        fit_s = time.perf_counter() - t0
        n_iter = [int(m.n_iter_) for m in models]
        extra = f"{models[0].solver_}, {sum(m.n_passes_ for m in models)} passes over X"
    acc = [float(np.mean(m.predict(Xt) == yt)) for m in models]
    rss = _peak_rss_bytes()
    print(
        json.dumps(
            {"solver": args.solver, "fit_s": fit_s, "rss": rss, "acc": acc, "n_iter": n_iter, "extra": extra}
        )
    )


def _peak_rss_bytes() -> int:
    """This process's peak resident memory. VmHWM belongs to the address space exec created, whereas Linux's
    ru_maxrss survives exec and would report the parent's peak (the data generator) for a small child."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _floats(text: str) -> list[float]:
    return [float(v) for v in str(text).split(",") if v.strip()]


def run_child(args: argparse.Namespace, solver: str, data: Path) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--solver",
        solver,
        "--data",
        str(data),
        "--n",
        str(args.n),
        "--d",
        str(args.d),
        "--n-test",
        str(args.n_test),
        "--C",
        str(args.C),
        "--tol",
        repr(args.tol),
        "--sklearn-tol",
        repr(args.sklearn_tol),
        "--sklearn-max-iter",
        str(args.sklearn_max_iter),
        "--device",
        args.device,
    ]
    if args.verbose:
        cmd.append("--verbose")
    # with --verbose the solver's progress goes straight to this process's stderr
    stderr = None if args.verbose else subprocess.PIPE
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True)
    if proc.returncode != 0:
        return {"solver": solver, "error": ((proc.stderr or "").strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", default="4000,1000", help="training rows, comma-separated (default: 400/class, SVHN-1000)")
    p.add_argument("--d", type=int, default=FULL_D, help="features")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--C", default="1e-4,1e-3,1e-2", help="comma-separated C grid, fitted in full by each solver")
    p.add_argument("--tol", type=float, default=1e-4, help="ganbench's tol (relative objective gap)")
    p.add_argument("--sklearn-tol", type=float, default=1e-4, help="LinearSVC's tol (its default)")
    p.add_argument("--sklearn-max-iter", type=int, default=1000, help="LinearSVC's max_iter (its default)")
    p.add_argument("--sep", type=float, default=0.35, help="class separation of the synthetic data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--solvers", default="torch,sklearn")
    p.add_argument(
        "--full-cifar-shape",
        action="store_true",
        help=f"{FULL_N} x {FULL_D} float16, ganbench only (LinearSVC cannot fit it in memory)",
    )
    p.add_argument("--workdir", default=None, help="where the memmaps go (default: a temporary directory)")
    p.add_argument("--out", default=None, help="also write the Markdown table to this file")
    p.add_argument("--verbose", action="store_true", help="log the solvers' Newton steps to stderr")
    # internal: one solver in a subprocess
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--solver", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.n = int(args.n)
        child(args)
        return

    solvers = args.solvers.split(",")
    if args.full_cifar_shape:
        sizes = [FULL_N]
        args.d = FULL_D
    else:
        sizes = [int(v) for v in str(args.n).split(",") if v.strip()]
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {_total_ram_gib():.0f} GiB RAM"
    )
    lines = [
        "# L2-SVM benchmark: ganbench's torch solver vs scikit-learn's LinearSVC",
        "",
        "Command: `python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]) + "`",
        "",
        f"Machine: {machine}, device {args.device}. Synthetic DCGAN-like features (see the script's docstring), "
        f"d={args.d}, {args.classes} classes, X a float16 memmap, {args.n_test} test rows; each solver fits the "
        f"C grid {_floats(args.C)} (ganbench: warm-started path; LinearSVC: one fit per C) in its own process.",
    ]
    for n in sizes:
        args.n = n
        lines += [""] + bench_size(args, solvers)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


def bench_size(args: argparse.Namespace, solvers: list[str]) -> list[str]:
    """Markdown lines for one training-set size."""
    notes = []
    if args.n * args.d * 24 > 0.9 * _total_ram_gib() * 2**30 and "sklearn" in solvers:
        solvers = [s for s in solvers if s != "sklearn"]
        f64, nodes = args.n * args.d * 8 / 2**30, args.n * args.d * 16 / 2**30
        notes.append(
            f"LinearSVC not run: liblinear copies X to float64 ({f64:.1f} GiB) and then into its sparse "
            f"feature_node format (16 bytes per value, {nodes:.1f} GiB): about {f64 + nodes:.0f} GiB, more "
            f"than this machine's {_total_ram_gib():.0f} GiB of RAM."
        )
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        data = Path(tmp) / "train.f16"
        t0 = time.perf_counter()
        test = Path(str(data) + ".test")
        y, yt = make_features([(data, args.n), (test, args.n_test)], args.d, args.classes, args.seed, args.sep)
        np.save(str(data) + ".y.npy", y)
        np.save(str(test) + ".y.npy", yt)
        gen_s = time.perf_counter() - t0
        results = []
        for solver in solvers:
            results.append(run_child(args, solver, data))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)  # progress, in case of a long run

    by = {r["solver"]: r for r in results}
    Cs = _floats(args.C)
    lines = [
        f"## n = {args.n} training rows ({args.n * args.d * 2 / 2**30:.2f} GiB as float16)",
        "",
        "| solver | fit s (all C) | peak RSS GiB | test acc per C | iterations per C | notes |",
        "|---|---:|---:|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['solver']} | failed | | | | {r['error']} |")
            continue
        name = "ganbench torch" if r["solver"] == "torch" else "sklearn LinearSVC"
        note = r["extra"] or f"tol={args.sklearn_tol}, max_iter={args.sklearn_max_iter}"
        accs = ", ".join(f"{a:.4f}" for a in r["acc"])
        iters = ", ".join(str(i) for i in r["n_iter"])
        lines.append(f"| {name} | {r['fit_s']:.1f} | {r['rss'] / 2**30:.2f} | {accs} | {iters} | {note} |")
    if "error" not in by.get("torch", {"error": 1}) and "error" not in by.get("sklearn", {"error": 1}):
        ratio = by["sklearn"]["fit_s"] / by["torch"]["fit_s"]
        gaps = [100 * (a - b) for a, b in zip(by["torch"]["acc"], by["sklearn"]["acc"])]
        worst = max(gaps, key=abs)
        lines += [
            "",
            f"Speed ratio (sklearn fit s / ganbench fit s): **{ratio:.2f}x**; test accuracy difference "
            f"(ganbench - sklearn) per C: {', '.join(f'{g:+.2f}' for g in gaps)} points (largest {worst:+.2f}; "
            f"C grid {Cs}).",
        ]
    lines += [""] + notes + [f"Data generation {gen_s:.0f} s (not timed above)."]
    return lines


def _total_ram_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


if __name__ == "__main__":
    main()
