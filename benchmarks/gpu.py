"""One command that measures ganbench on a GPU (sized for under 8 minutes on one modern GPU) and writes gpu.md.

    python benchmarks/gpu.py --peer-examples ../shared/peers/pytorch-examples     # on a GPU machine
    python benchmarks/gpu.py --device cpu --quick --out /tmp/gpu.md                # the CPU check (tiny sizes)

Sections (each written to the report as soon as it is measured, so a run cut short keeps what it measured):

1. Training images/s of dcgan32 and dcgan64 at batch 128 (--quick: 8, width 16) in fp32, in bf16 (`amp="bf16"`)
   and in bf16 + channels_last + torch.compile, from ganbench's own log window (the second of two windows; the
   first warms up and compiles; the loop's log point synchronises the device, so the window is complete work).
   In --quick mode torch.compile runs with backend="eager" (graph capture only) so the check stays short.
2. pytorch/examples' dcgan (`--dataset fake`, `--accel` on a GPU) against `ganbench train` on the same network
   (dcgan64-pt), batch 128, about the same number of images, both subprocesses timed from start to exit.
3. Feature extraction images/s: `ganbench.features.extract_features` of dcgan32's discriminator (all six layers,
   28,672 features at the default width) on a store of synthetic images (`load_images("fake", ...)`).
4. The full-CIFAR-size L2-SVM fit: `L2SVM(C, backend="torch", device=...)` on 50,000 x 28,672 float16
   DCGAN-like synthetic features (benchmarks/bench_svm.py's generator; --quick: 2,000 x 512), its time and
   peak memory (torch.cuda.max_memory_allocated on a GPU; the process's peak RSS on the CPU, X included).
5. Inception images/s (ganbench.metrics.inception, 32x32 uint8 images resized to 299): the real FID-Inception
   weights when they are found locally, else random weights of the same architecture (said which).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from unittest import mock

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
FULL = {"batch": 128, "width": None, "steps": 20, "peer_epochs": 20, "feat_n": 10_000, "feat_batch": 500,
        "svm_n": 50_000, "svm_d": 28_672, "inc_n": 5_000, "inc_batch": 250}
QUICK = {"batch": 8, "width": 8, "steps": 1, "peer_epochs": None, "feat_n": 128, "feat_batch": 64,
         "svm_n": 2_000, "svm_d": 512, "inc_n": 8, "inc_batch": 4}


def fail(msg: str) -> None:
    print(f"gpu.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU: {line.split(':', 1)[1].strip()} ({os.cpu_count()} cores, {torch.get_num_threads()} " \
                       f"torch threads)"
    except OSError:
        pass
    return f"CPU: {platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


class Report:
    """The Markdown report, rewritten whole after every section."""

    def __init__(self, path: Path, head: str):
        self.path, self.parts = path, [head]
        self.write()

    def add(self, title: str, lines: list[str]) -> None:
        self.parts.append(f"## {title}\n\n" + "\n".join(lines))
        print(self.parts[-1] + "\n", flush=True)
        self.write()

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("\n\n".join(self.parts) + "\n")
        tmp.replace(self.path)


# ------------------------------------------------------------------------------------------------- training


MODES = (("fp32", {}), ("bf16", {"amp": "bf16"}),
         ("bf16 + channels_last + compile", {"amp": "bf16", "channels_last": True, "compile": True}))


def train_rate(model: str, size: dict, device: str, quick: bool, work: Path, **options) -> float:
    from ganbench.config import TrainConfig
    from ganbench.train.loop import train

    batch, steps = size["batch"], size["steps"]
    cfg = TrainConfig(model=model, dataset="fake", max_images=4 * batch, batch_size=batch, steps=2 * steps,
                      device=device, log_every=steps, sample_every=10**9, checkpoint_every=10**9,
                      ngf=size["width"], ndf=size["width"], **options)
    eager = mock.patch.object(torch, "compile", partial(torch.compile, backend="eager")) if quick \
        else contextlib.nullcontext()
    with eager, tempfile.TemporaryDirectory(dir=work) as tmp:
        return train(cfg, Path(tmp) / "run", progress=False).images_per_second


def section_training(args, size: dict, work: Path) -> list[str]:
    names = [name for name, _ in MODES]
    width = "default widths" if size["width"] is None else f"ngf = ndf = {size['width']}"
    rows = [f"Batch {size['batch']}, {width}, `dataset=fake`, schedule simultaneous (one D and one G update per "
            f"batch); images/s of the second of two {size['steps']}-step log windows."
            + (" --quick: torch.compile with backend='eager' (graph capture, no code generation)." if args.quick
               else " torch.compile: the default inductor backend; the first window compiles."),
            "", "| model | " + " | ".join(f"{n} images/s" for n in names) + " |",
            "|---|" + "---:|" * len(names)]
    for model in ("dcgan32", "dcgan64"):
        rates = [train_rate(model, size, args.device, args.quick, work, **opts) for _, opts in MODES]
        rows.append(f"| {model} | " + " | ".join(f"{r:.1f}" for r in rates) + " |")
    return rows


# ------------------------------------------------------------------------------------------------- the peer


def timed(cmd: list[str], cwd: Path, env: dict[str, str], what: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"{what} exited with {proc.returncode}: {last}")
    return elapsed


def section_peer(args, size: dict, work: Path) -> list[str]:
    if not args.peer_examples:
        return ["skipped: pass --peer-examples DIR (a checkout of pytorch/examples holding dcgan/main.py)"]
    main_py = (Path(args.peer_examples) / "dcgan" / "main.py").resolve()
    env = {**os.environ, "MPLBACKEND": "Agg", "GANBENCH_CACHE": str(work / "cache")}
    batch = size["batch"]
    peer_cmd = [sys.executable, str(main_py), "--dataset", "fake", "--batchSize", str(batch), "--manualSeed", "0",
                "--outf", str(work / "peer")]
    gb_cmd = [sys.executable, "-m", "ganbench", "train", "--model", "dcgan64-pt", "--dataset", "fake",
              "--batch-size", str(batch), "--device", args.device, "--out", str(work / "gb"), "--quiet",
              "--overwrite"]
    if args.quick:  # one step of a narrow net: checks the commands, not the speed
        n_peer = n_gb = batch
        peer_cmd += ["--dry-run", "--ngf", "8", "--ndf", "8", "--workers", "0"]
        gb_cmd += ["--ngf", "8", "--ndf", "8", "--max-images", str(batch), "--steps", "1"]
    else:
        n_peer = 1000 * size["peer_epochs"]  # torchvision FakeData: 1,000 images an epoch
        steps = math.ceil(n_peer / batch)
        n_gb = steps * batch
        peer_cmd += ["--niter", str(size["peer_epochs"])]
        gb_cmd += ["--max-images", "1000", "--steps", str(steps), "--log-every", str(steps), "--sample-every",
                   str(steps), "--checkpoint-every", str(steps)]
    if args.device != "cpu":
        text = main_py.read_text()
        peer_cmd.append("--accel" if "'--accel'" in text or '"--accel"' in text else "--cuda")
    peer_s = timed(peer_cmd, work, env, "pytorch/examples dcgan")
    gb_s = timed(gb_cmd, work, env, "ganbench train")
    flags = " ".join(peer_cmd[2:]).replace(str(work), "TMP")
    return [f"dcgan64-pt (the examples' network), batch {batch}, wall clock from process start to exit (start-up, "
            f"data, checkpoints included). Peer: `main.py {flags}`.", "",
            "| run | images | wall s | images/s | ganbench / peer (images/s) |", "|---|---:|---:|---:|---:|",
            f"| pytorch/examples dcgan | {n_peer} | {peer_s:.3f} | {n_peer / peer_s:.3f} | 1.00 |",
            f"| ganbench train | {n_gb} | {gb_s:.3f} | {n_gb / gb_s:.3f} | {(n_gb / gb_s) / (n_peer / peer_s):.2f} |"]


# ------------------------------------------------------------------------------------------------- features


def section_features(args, size: dict, work: Path) -> list[str]:
    from ganbench.data import load_images
    from ganbench.features import FeatureSpec, extract_features, feature_dim
    from ganbench.registry import get_variant

    device = torch.device(args.device)
    variant = get_variant("dcgan32")
    torch.manual_seed(0)
    _, disc = variant.build(**variant.model_kwargs(ndf=size["width"]))
    store = load_images("fake", None, image_size=32, max_images=size["feat_n"], progress=False)
    spec = FeatureSpec(identity="random dcgan32 D (gpu.py)", layers=list(range(1, 7)), bn_stats="batch")
    kw = {"batch_size": size["feat_batch"], "device": device, "progress": False, "use_cache": False}
    head = store.images[: size["feat_batch"]]
    small = type(store)(head, store.labels[: len(head)], store.classes, dict(store.meta))
    extract_features(disc, small, spec, out=work / "warm.npy", **kw)  # warm-up (kernels, allocator)
    sync(device)
    t0 = time.perf_counter()
    feats = extract_features(disc, store, spec, out=work / "features.npy", **kw)
    sync(device)
    seconds = time.perf_counter() - t0
    dim = feature_dim(disc, spec.layers)
    if feats.shape != (len(store), dim) or not np.isfinite(np.asarray(feats[:64], dtype=np.float32)).all():
        raise RuntimeError(f"feature matrix has shape {feats.shape} (expected {(len(store), dim)}) or non-finite rows")
    width = "default width" if size["width"] is None else f"ndf = {size['width']}"
    return [f"dcgan32 discriminator ({width}, random weights, batch statistics), all six layers max-pooled to "
            f"4x4: {dim:,} float16 features per image, written to a .npy memmap; 32x32 synthetic images.", "",
            "| images | batch | features | seconds | images/s |", "|---:|---:|---:|---:|---:|",
            f"| {len(store)} | {size['feat_batch']} | {dim} | {seconds:.3f} | {len(store) / seconds:.2f} |"]


# ------------------------------------------------------------------------------------------------- L2-SVM


def _bench_svm_module():
    spec = importlib.util.spec_from_file_location("bench_svm", HERE / "bench_svm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def section_svm(args, size: dict, work: Path) -> list[str]:
    from ganbench.probe.l2svm import L2SVM

    n, d = size["svm_n"], size["svm_d"]
    t0 = time.perf_counter()
    path = work / "svm_X.f16"
    (y,) = _bench_svm_module().make_features([(path, n)], d, classes=10, seed=0, sep=1.0)
    X = np.memmap(path, dtype=np.float16, mode="r", shape=(n, d))
    gen_s = time.perf_counter() - t0
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        reset = _reset_peak_rss()
    svm = L2SVM(C=args.C, backend="torch", device=str(device))
    sync(device)
    t0 = time.perf_counter()
    svm.fit(X, y)
    sync(device)
    fit_s = time.perf_counter() - t0
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - base
        memory = "peak GPU memory allocated during the fit (torch.cuda.max_memory_allocated)"
    else:
        peak = _peak_rss_bytes()
        memory = ("peak RSS of the process during the fit (VmHWM reset before it; the float16 X pages it reads "
                  "count)" if reset else "peak RSS of the process (whole run: VmHWM could not be reset)")
    acc = float((svm.predict(X[: min(n, 5000)]) == y[: min(n, 5000)]).mean())
    if not 0 < acc <= 1:
        raise RuntimeError(f"the SVM's training accuracy is {acc}")
    return [f"`L2SVM(C={args.C:g}, backend='torch', device='{device}')` on {n:,} x {d:,} float16 DCGAN-like synthetic "
            f"features, 10 classes (benchmarks/bench_svm.py's generator, {gen_s:.1f} s, not timed); memory: "
            f"{memory}.", "",
            "| n | d | X GiB (float16) | fit s | peak memory GiB | training accuracy |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {n} | {d} | {n * d * 2 / 2**30:.3f} | {fit_s:.2f} | {peak / 2**30:.3f} | {acc:.4f} |"]


# ------------------------------------------------------------------------------------------------- Inception


def section_inception(args, size: dict, work: Path) -> list[str]:
    from ganbench.metrics.inception import (
        WEIGHTS_FILENAME,
        InceptionFeatures,
        locate_inception_weights,
        write_random_inception_weights,
    )

    try:
        weights, source = locate_inception_weights(allow_download=False, progress=False)
        which = f"the real FID-Inception weights ({source}: {weights})"
    except Exception:  # not found locally: the same architecture with seeded random weights
        weights = write_random_inception_weights(work / WEIGHTS_FILENAME)
        which = "RANDOM weights of the FID-Inception architecture (the real file was not found locally)"
    device = torch.device(args.device)
    net = InceptionFeatures(weights, device=device, allow_download=False, progress=False)
    n, batch = size["inc_n"], size["inc_batch"]
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8))
    net(images[:batch])  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        out = net(images[start:start + batch])
        out["pool3"].cpu()
    sync(device)
    seconds = time.perf_counter() - t0
    return [f"Weights: {which}. {n} uint8 32x32 images resized to 299x299 (bilinear, as pytorch-fid), pool3 and "
            f"logits, fp32 without TF32.", "", "| images | batch | seconds | images/s |", "|---:|---:|---:|---:|",
            f"| {n} | {batch} | {seconds:.3f} | {n / seconds:.2f} |"]


# ------------------------------------------------------------------------------------------------- main


SECTIONS = (("Training throughput", section_training),
            ("pytorch/examples dcgan vs ganbench train (same network)", section_peer),
            ("Feature extraction", section_features),
            ("L2-SVM fit, full CIFAR-10 size", section_svm),
            ("Inception throughput", section_inception))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto (cuda when available) [auto]")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script in well under a minute")
    parser.add_argument("--peer-examples", help="a checkout of pytorch/examples (holds dcgan/main.py)")
    parser.add_argument("--C", type=float, default=0.01, help="the SVM's C [0.01]")
    parser.add_argument("--out", default="results/benchmarks/gpu.md", help="the report [results/benchmarks/gpu.md]")
    args = parser.parse_args()
    if args.device not in ("auto", "cpu", "cuda") and not args.device.startswith("cuda:"):
        fail(f"unknown --device {args.device!r}; choose cuda, cpu or auto")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        fail(f"--device {args.device} was asked for but no CUDA GPU is visible; use --device cpu (with --quick)")
    if not (math.isfinite(args.C) and args.C > 0):
        fail(f"--C must be a positive finite number, got {args.C}")
    if args.peer_examples and not (Path(args.peer_examples) / "dcgan" / "main.py").is_file():
        fail(f"{Path(args.peer_examples) / 'dcgan' / 'main.py'} not found; pass a checkout of pytorch/examples")
    out = Path(args.out)
    if out.is_dir():
        fail(f"--out {out} is a folder; give a file name such as {out / 'gpu.md'}")
    size = QUICK if args.quick else FULL
    device = torch.device(args.device)
    cuda = torch.version.cuda if device.type == "cuda" else None
    command = "python benchmarks/gpu.py " + " ".join(sys.argv[1:])
    head = (f"# ganbench on {'a GPU' if device.type == 'cuda' else 'the CPU'}"
            f"{' (--quick: tiny sizes, a check of the script, not a measurement)' if args.quick else ''}\n\n"
            f"Command: `{command}`\n\n"
            f"Device: {device_name(device)}; torch {torch.__version__}{f', CUDA {cuda}' if cuda else ''}; python "
            f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
            f"{os.getloadavg()[0]:.1f}.")
    report = Report(out, head)
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["GANBENCH_CACHE"] = str(work / "cache")  # stores and features go away with the run
        for title, section in SECTIONS:
            t0 = time.perf_counter()
            lines = section(args, size, work)
            report.add(title, [*lines, "", f"(section time {time.perf_counter() - t0:.1f} s)"])
    report.parts.append(f"Total time: {time.perf_counter() - t_all:.0f} s.")
    report.write()


if __name__ == "__main__":
    main()
