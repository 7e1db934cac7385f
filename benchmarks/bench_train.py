"""Training throughput of ganbench, and of pytorch/examples' dcgan on identical networks, in the same run.

    python benchmarks/bench_train.py                       # ganbench dcgan32 and dcgan64 images/s on this machine
    python benchmarks/bench_train.py --peer-examples ../shared/peers/pytorch-examples \\
        --real-images ../shared/data/imagenet-1k-samples-80px.tar.gz --options --profile \\
        --out results/benchmarks/train.md                   # everything results/benchmarks/train.md holds

Sections:

1. ganbench's step rate of the registered DCGANs (in-process, the second of two log windows).
2. --peer-examples DIR (DIR holds dcgan/main.py): pytorch/examples' dcgan and `ganbench train` on the identical
   network (`dcgan64-pt`: ngf = ndf = 64, 4x4 kernels) at each --batches size, on (a) random images
   (`--dataset fake` on both sides) and, with --real-images (a folder of class folders, or a .tar/.tar.gz of one),
   (b) real images: the peer reads them with its own ImageFolder loader (`--dataset folder --dataroot`), ganbench
   with `--dataset folder --data-root`, both resizing to 64 px and centre-cropping. Both are subprocesses timed
   from start to exit, one epoch of the images (the peer: ceil(N / batch) batches, the last one partial;
   ganbench: as many full batches, so it trains up to batch - 1 images more), ganbench with an empty cache, so
   it decodes the images too. Arms run interleaved (peer, ganbench, ganbench-bf16, peer, ...) so machine load
   hits every arm alike; the tables give medians and the median of the per-repeat ratios of images/s.
3. --options: ganbench images/s of dcgan64-pt and dcgan32 under each speed option (default, channels_last,
   amp=bf16, both, compile, 1 vs 2 torch threads), interleaved, and a standalone step that fuses D's real and
   fake forward passes into one batch (which changes BatchNorm's batch statistics, so it is only measured).
4. --profile: torch.profiler's top operators (self CPU time) of one ganbench training step.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

PEER_FAKE_IMAGES = 1000  # torchvision FakeData's default size: the peer's --dataset fake epoch


def fail(msg: str) -> None:
    print(f"bench_train.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


# ---------------------------------------------------------------------------------------------- in-process rates


def ganbench_step_rate(model: str, batch: int, steps: int, device: str, width: int | None = None,
                       **options) -> float:
    """Images per second of ganbench's training step (data already decoded, as in real runs)."""
    from ganbench.config import TrainConfig
    from ganbench.train.loop import train

    with tempfile.TemporaryDirectory() as tmp:
        # two log windows of `steps` steps: the first warms up (and compiles), the second is the measured rate
        cfg = TrainConfig(model=model, dataset="fake", max_images=max(4 * batch, 256), batch_size=batch,
                          steps=2 * steps, device=device, log_every=steps, sample_every=10**9,
                          checkpoint_every=10**9, ngf=width, ndf=width, **options)
        return train(cfg, Path(tmp) / "run", progress=False).images_per_second


def standalone_rate(model: str, batch: int, steps: int, fused: bool) -> float:
    """Images/s of a bare DCGAN step (ns loss, Adam) outside the loop, with D's real and fake passes either
    separate (two BatchNorm batches, as the paper and ganbench) or fused into one D call on 2 x batch images."""
    import torch.nn.functional as F

    from ganbench.registry import get_variant

    torch.manual_seed(0)
    variant = get_variant(model)
    gen, disc = variant.build(**variant.model_kwargs())
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    x = torch.rand(batch, 3, variant.image_size, variant.image_size) * 2 - 1

    def step() -> None:
        fake = gen(gen.sample_z(batch, device="cpu"))
        if fused:
            out = disc(torch.cat([x, fake.detach()]))
            real_out, fake_out = out[:batch], out[batch:]
        else:
            real_out, fake_out = disc(x), disc(fake.detach())
        loss_d = F.softplus(-real_out).mean() + F.softplus(fake_out).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        disc.requires_grad_(False)
        loss_g = F.softplus(-disc(fake)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        disc.requires_grad_(True)

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def fused_bn_effect(model: str, batch: int) -> float:
    """Largest |D(real) logit| difference, at initialisation, between separate and fused (real + fake) D calls:
    the fused call normalises with the statistics of both halves, so it computes a different function."""
    from ganbench.registry import get_variant

    torch.manual_seed(0)
    variant = get_variant(model)
    gen, disc = variant.build(**variant.model_kwargs())
    x = torch.rand(batch, 3, variant.image_size, variant.image_size) * 2 - 1
    with torch.no_grad():
        fake = gen(gen.sample_z(batch, device="cpu"))
        return float((disc(x) - disc(torch.cat([x, fake]))[:batch]).abs().max())


@contextlib.contextmanager
def torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------- the peer


def run_timed(cmd: list[str], cwd: str, env: dict[str, str], what: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        fail(f"{what} exited with {proc.returncode}: {last}")
    return elapsed


def image_folder(path: Path, work: Path) -> tuple[Path, int]:
    """A folder of class folders (extracted when `path` is an archive) and its number of images."""
    if path.is_file():
        if not tarfile.is_tarfile(path):
            fail(f"--real-images {path} is a file but not a tar archive; pass a folder of class folders or a .tar.gz")
        with tarfile.open(path) as tar:
            tar.extractall(work / "real", filter="data")
        path = work / "real"
    elif not path.is_dir():
        fail(f"--real-images {path} does not exist; pass a folder of class folders or a .tar.gz of one")
    # descend through folders that hold nothing but one folder (the archive's top level)
    while len(entries := list(path.iterdir())) == 1 and entries[0].is_dir() and any(
            p.is_dir() for p in entries[0].iterdir()):
        path = entries[0]
    n = sum(1 for p in path.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp"))
    if n == 0:
        fail(f"--real-images: no images in class folders under {path}")
    return path, n


def peer_comparison(args, main_py: Path, work: Path) -> list[str]:
    """Interleaved subprocess timings of the peer and ganbench on fake and real images; Markdown rows."""
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": str(args.threads)}
    datasets = [("fake", None, PEER_FAKE_IMAGES)]
    if args.real_images:
        folder, n_real = image_folder(Path(args.real_images), work)
        datasets.append(("folder", folder, n_real))
    arms = [("pytorch/examples dcgan", "peer"), ("ganbench train", "gb"),
            ("ganbench train --amp bf16 --channels-last", "gbfast")]
    rows = [
        f"Threads: OMP_NUM_THREADS={args.threads} for every process; the peer with `--workers 0` (no loader "
        f"processes: two cores), its defaults otherwise; ganbench with its defaults (fp32) and, as a third arm, "
        f"with `--amp bf16 --channels-last`. {args.repeats} interleaved repeats; wall seconds from process start "
        f"to exit; images/s = images trained / wall s; ratio = ganbench images/s / peer images/s, the median of "
        f"the per-repeat ratios.",
        "",
        "| data | batch | arm | images | wall s (median) | wall s (all) | images/s | ratio vs peer (per repeat) |",
        "|---|---:|---|---:|---:|---|---:|---|",
    ]
    for dataset, folder, n in datasets:
        for batch in args.batches:
            steps = math.ceil(n / batch)
            times: dict[str, list[float]] = {key: [] for _, key in arms}
            images = {"peer": n, "gb": steps * batch, "gbfast": steps * batch}
            for rep in range(args.repeats):
                for _, key in arms:
                    run = work / f"{dataset}-{batch}-{key}-{rep}"
                    run.mkdir()
                    if key == "peer":
                        data = ["--dataset", "fake"] if folder is None else ["--dataset", "folder", "--dataroot",
                                                                             str(folder)]
                        cmd = [sys.executable, str(main_py), *data, "--niter", "1", "--batchSize", str(batch),
                               "--workers", "0", "--outf", str(run), "--manualSeed", "0"]
                        if args.device != "cpu":
                            cmd.append("--accel")
                        run_env = env
                    else:
                        data = ["--dataset", "fake"] if folder is None else ["--dataset", "folder", "--data-root",
                                                                             str(folder)]
                        cmd = [sys.executable, "-m", "ganbench", "train", "--model", "dcgan64-pt", *data,
                               "--max-images", str(n), "--batch-size", str(batch), "--steps", str(steps),
                               "--device", args.device, "--out", str(run / "gb"), "--quiet",
                               "--sample-every", str(steps), "--checkpoint-every", str(steps),
                               "--log-every", str(steps)]
                        if key == "gbfast":
                            cmd += ["--amp", "bf16", "--channels-last"]
                        run_env = {**env, "GANBENCH_CACHE": str(run / "cache")}  # cold: it decodes the images
                    times[key].append(run_timed(cmd, str(run), run_env, f"{key} ({dataset}, batch {batch})"))
                    print(f"  {dataset} batch {batch} {key} repeat {rep}: {times[key][-1]:.1f} s", flush=True)
            peer_rates = [images["peer"] / t for t in times["peer"]]
            for label, key in arms:
                rates = [images[key] / t for t in times[key]]
                ratios = [r / p for r, p in zip(rates, peer_rates)]
                ratio = "1.00" if key == "peer" else (
                    f"**{statistics.median(ratios):.2f}x** ({', '.join(f'{r:.2f}' for r in ratios)})")
                name = "random (`fake`)" if folder is None else f"{n} real JPEGs (`folder`)"
                rows.append(f"| {name} | {batch} | {label} | {images[key]} | {statistics.median(times[key]):.1f} | "
                            f"{', '.join(f'{t:.1f}' for t in times[key])} | {statistics.median(rates):.1f} | "
                            f"{ratio} |")
                print(rows[-1], flush=True)
    return rows


# ---------------------------------------------------------------------------------------------- options


def option_table(args) -> list[str]:
    threads = args.threads
    other = 2 if threads == 1 else 1
    options = [
        ("default (fp32, NCHW)", {}, threads),
        ("channels_last", {"channels_last": True}, threads),
        ("amp=bf16", {"amp": "bf16"}, threads),
        ("amp=bf16 + channels_last", {"amp": "bf16", "channels_last": True}, threads),
        ("compile=True", {"compile": True}, threads),
        (f"default, {other} torch thread{'s' if other > 1 else ''}", {}, other),
    ]
    rows = [
        f"Batch {args.option_batch}, {args.option_steps} timed steps after {args.option_steps} warm-up steps "
        f"(compile: the warm-up window compiles), {args.option_repeats} interleaved repeats, device cpu, "
        f"{threads} torch thread{'s' if threads > 1 else ''} unless said. Ratio = median images/s / the default's "
        f"median.",
        "",
        "| model | option | images/s (median) | all repeats | vs default |",
        "|---|---|---:|---|---:|",
    ]
    for model in args.option_models:
        rates: dict[str, list[float]] = {name: [] for name, _, _ in options}
        fused = {"separate D(real), D(fake) (standalone step)": [], "fused D(cat[real, fake]) (standalone step)": []}
        for _ in range(args.option_repeats):
            for name, opts, n_threads in options:
                with torch_threads(n_threads):
                    rates[name].append(ganbench_step_rate(model, args.option_batch, args.option_steps, "cpu",
                                                          **opts))
                print(f"  {model} {name}: {rates[name][-1]:.1f} img/s", flush=True)
            with torch_threads(threads):
                for name, is_fused in zip(fused, (False, True)):
                    fused[name].append(standalone_rate(model, args.option_batch, args.option_steps, is_fused))
                    print(f"  {model} {name}: {fused[name][-1]:.1f} img/s", flush=True)
        base = statistics.median(rates[options[0][0]])
        for name, values in rates.items():
            med = statistics.median(values)
            rows.append(f"| {model} | {name} | {med:.1f} | {', '.join(f'{v:.1f}' for v in values)} | "
                        f"{med / base:.2f}x |")
        sep, fus = (statistics.median(v) for v in fused.values())
        for name, values in fused.items():
            med = statistics.median(values)
            rows.append(f"| {model} | {name} | {med:.1f} | {', '.join(f'{v:.1f}' for v in values)} | "
                        f"{med / sep:.2f}x of separate |")
        diff = fused_bn_effect(model, args.option_batch)
        rows.append(f"| {model} | fused vs separate D(real) logits at init | max abs difference {diff:.3g} | | |")
        print("\n".join(rows[-len(rates) - 3:]), flush=True)
    rows += ["", "Fusing D's two passes: the fused call normalises real and fake images with the statistics of "
             "their union (the last row shows D(real) changes), whereas the DCGAN paper and ganbench give BatchNorm "
             "separate real and fake batches; it is a different training algorithm, so it is not a default."]
    return rows


# ---------------------------------------------------------------------------------------------- profile


def profile_rows(args) -> list[str]:
    """torch.profiler over the third training step of a ganbench run (the step boundaries marked by patching
    BatchSource.batch, which the loop calls once at the start of every step)."""
    from torch.profiler import ProfilerActivity, profile, schedule

    from ganbench.config import TrainConfig
    from ganbench.train import loop

    batch = args.batch
    with tempfile.TemporaryDirectory() as tmp, torch_threads(args.threads):
        cfg = TrainConfig(model="dcgan64-pt", dataset="fake", max_images=4 * batch, batch_size=batch, steps=4,
                          device="cpu", log_every=10**6, sample_every=10**6, checkpoint_every=10**6)
        with profile(activities=[ProfilerActivity.CPU], schedule=schedule(wait=2, warmup=1, active=1)) as prof:
            original = loop.BatchSource.batch

            def batch_and_mark(self, step):
                prof.step()  # 0: setup, 1: step 0, 2: step 1 (warm-up), 3: step 2 (recorded)
                return original(self, step)

            loop.BatchSource.batch = batch_and_mark
            try:
                loop.train(cfg, Path(tmp) / "run", progress=False)
            finally:
                loop.BatchSource.batch = original
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:args.profile_top]
    rows = [f"dcgan64-pt, batch {batch}, device cpu, {args.threads} torch thread(s), fp32: one step "
            f"(D and G updates) took {total / 1e3:.0f} ms of self CPU time in all.", "",
            "| operator | self CPU ms | share | calls |", "|---|---:|---:|---:|"]
    for e in top:
        rows.append(f"| `{e.key}` | {e.self_cpu_time_total / 1e3:.1f} | {100 * e.self_cpu_time_total / total:.1f}% "
                    f"| {e.count} |")
    conv = sum(e.self_cpu_time_total for e in events if "conv" in e.key or "mkldnn" in e.key)
    rows += ["", f"Convolution kernels (operators named conv*/mkldnn*) take {100 * conv / total:.0f}% of the "
             "step's self CPU time."]
    print("\n".join(rows), flush=True)
    return rows


# ---------------------------------------------------------------------------------------------- start-up

STARTUP_SNIPPET = """
import time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
torch.use_deterministic_algorithms(False)  # what ganbench.train.loop._set_determinism does on every run
t2 = time.perf_counter()
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot  # what ganbench.train.artifacts.plot_curves imports at the first checkpoint
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def startup_rows(args) -> list[str]:
    """Seconds of the one-off costs in a fresh process that ganbench's `train` pays and the peer does not."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MPLBACKEND": "Agg"}
    runs = []
    for _ in range(args.repeats):
        out = subprocess.run([sys.executable, "-c", STARTUP_SNIPPET], capture_output=True, text=True, env=env,
                             check=True).stdout.split()
        runs.append([float(v) for v in out])
    names = ["`import torch` (both pay it)", "`torch.use_deterministic_algorithms(False)` (imports torch._inductor "
             "and torch._dynamo)", "`import matplotlib.pyplot` (curves.png)"]
    rows = ["| one-off cost in a fresh process | seconds (median) | all |", "|---|---:|---|"]
    for i, name in enumerate(names):
        values = [r[i] for r in runs]
        rows.append(f"| {name} | {statistics.median(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} |")
    print("\n".join(rows), flush=True)
    return rows


# ---------------------------------------------------------------------------------------------- main


def positive_ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every value must be at least 1")
    return values


def machine_line(args) -> str:
    load = os.getloadavg()
    return (f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, python "
            f"{platform.python_version()}; load average at the start {load[0]:.1f} (1 min), {load[2]:.1f} (15 min)"
            f"{' - other jobs were running on the machine, hence the interleaved repeats' if load[0] > 1.5 else ''}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64, help="batch of the model-rate table and the profile")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model (after as many warm-up steps)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads [all cores]")
    parser.add_argument("--skip-models", action="store_true", help="leave out the model-rate table")
    parser.add_argument("--peer-examples", help="a checkout of pytorch/examples (for the peer comparison)")
    parser.add_argument("--real-images", help="a folder of class folders of images, or a .tar(.gz) of one")
    parser.add_argument("--batches", type=positive_ints, default=[64, 128], help="peer comparison batch sizes")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats of the peer comparison")
    parser.add_argument("--options", action="store_true", help="measure the option table")
    parser.add_argument("--option-models", default="dcgan64-pt,dcgan32")
    parser.add_argument("--option-batch", type=int, default=64)
    parser.add_argument("--option-steps", type=int, default=3)
    parser.add_argument("--option-repeats", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="profile one ganbench training step")
    parser.add_argument("--startup", action="store_true", help="time the one-off start-up costs of `train`")
    parser.add_argument("--profile-top", type=int, default=15)
    parser.add_argument("--out", help="write the Markdown report here too")
    parser.add_argument("--append", action="store_true", help="append to --out (under this run's command line)")
    args = parser.parse_args()
    args.option_models = [m for m in args.option_models.split(",") if m]
    for name in ("batch", "steps", "threads", "repeats", "option_batch", "option_steps", "option_repeats",
                 "profile_top"):
        if getattr(args, name) < 1:
            fail(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    main_py = None
    if args.peer_examples:
        main_py = Path(args.peer_examples) / "dcgan" / "main.py"
        if not main_py.is_file():
            fail(f"{main_py} not found: pass a checkout of pytorch/examples (the folder holding dcgan/main.py)")
        main_py = main_py.resolve()
    if args.real_images and not args.peer_examples:
        fail("--real-images is for the peer comparison: give --peer-examples too")
    from ganbench.errors import GanbenchError
    from ganbench.registry import get_variant

    for model in args.option_models:
        try:
            get_variant(model)
        except GanbenchError as exc:
            fail(f"--option-models: {exc}")

    torch.set_num_threads(args.threads)
    command = "python benchmarks/bench_train.py " + " ".join(sys.argv[1:])
    head = "" if args.append else "# Training throughput\n\n"
    sections = [f"{head}Command: `{command}`\n\n{machine_line(args)}"]
    print(sections[0], flush=True)
    if not args.skip_models:
        rows = ["| model | batch | images/s | device |", "|---|---:|---:|---|"]
        for model in ("dcgan32", "dcgan64", "dcgan64-pt"):
            rate = ganbench_step_rate(model, args.batch, args.steps, args.device)
            rows.append(f"| ganbench {model} | {args.batch} | {rate:.1f} | {args.device} ({args.threads} threads) |")
            print(rows[-1], flush=True)
        sections.append("## ganbench step rate\n\n" + "\n".join(rows))
    if main_py is not None:
        with tempfile.TemporaryDirectory() as tmp:
            rows = peer_comparison(args, main_py, Path(tmp))
            shutil.rmtree(tmp, ignore_errors=True)
        sections.append("## Same network (dcgan64-pt) as pytorch/examples' dcgan, one epoch, wall clock\n\n"
                        + "\n".join(rows))
    if args.options:
        sections.append("## Speed options (ganbench, in-process)\n\n" + "\n".join(option_table(args)))
    if args.profile:
        sections.append("## Profile of one training step (torch.profiler, self CPU time)\n\n"
                        + "\n".join(profile_rows(args)))
    if args.startup:
        sections.append("## Start-up costs (fresh processes)\n\n" + "\n".join(startup_rows(args)))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        text = "\n\n".join(sections) + "\n"
        if args.append and Path(args.out).is_file():
            text = Path(args.out).read_text().rstrip("\n") + "\n\n---\n\n" + text
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
