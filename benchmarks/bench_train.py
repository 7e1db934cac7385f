"""Training throughput of ganbench, and of pytorch/examples' dcgan on identical networks, in the same run.

    python benchmarks/bench_train.py                       # ganbench dcgan32 and dcgan64 images/s on this machine
    python benchmarks/bench_train.py --peer-examples DIR   # also pytorch/examples (DIR holds dcgan/main.py), ratio

The peer comparison trains `dcgan64-pt` (the examples' architecture: ngf = ndf = 64, 4x4 kernels) on random images
for the same number of images with the same batch size, as subprocesses timed from start to exit (both pay their
start-up), so the ratio compares what a user waits for.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def ganbench_step_rate(model: str, batch: int, steps: int, device: str, width: int | None = None) -> float:
    """Images per second of ganbench's training step (data already decoded, as in real runs)."""
    from ganbench.config import TrainConfig
    from ganbench.train.loop import train

    with tempfile.TemporaryDirectory() as tmp:
        # two log windows of `steps` steps: the first warms up, the second is the measured rate
        cfg = TrainConfig(model=model, dataset="fake", max_images=max(4 * batch, 256), batch_size=batch,
                          steps=2 * steps, device=device, log_every=steps, sample_every=10**9,
                          checkpoint_every=10**9, ngf=width, ndf=width)
        return train(cfg, Path(tmp) / "run", progress=False).images_per_second


def timed(cmd: list[str], cwd: str | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "MPLBACKEND": "Agg"})
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model (after as many warm-up steps)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--peer-examples", help="a checkout of pytorch/examples (for the peer comparison)")
    parser.add_argument("--peer-images", type=int, default=1000, help="images the peer comparison trains on")
    parser.add_argument("--out", help="write the Markdown table here too")
    args = parser.parse_args()

    threads = torch.get_num_threads()
    rows = ["| model | batch | images/s | device |", "|---|---:|---:|---|"]
    for model in ("dcgan32", "dcgan64", "dcgan64-pt"):
        rate = ganbench_step_rate(model, args.batch, args.steps, args.device)
        rows.append(f"| ganbench {model} | {args.batch} | {rate:.1f} | {args.device} ({threads} threads) |")
        print(rows[-1], flush=True)

    if args.peer_examples:
        main_py = Path(args.peer_examples) / "dcgan" / "main.py"
        if not main_py.is_file():
            sys.exit(f"{main_py} not found: pass a checkout of pytorch/examples")
        with tempfile.TemporaryDirectory() as tmp:
            # FakeData yields 1,000 images per epoch: one epoch, no workers (2 cores), the examples' defaults
            peer_s = timed([sys.executable, str(main_py), "--dataset", "fake", "--niter", "1",
                            "--batchSize", str(args.batch), "--workers", "0", "--outf", tmp,
                            "--manualSeed", "0"], cwd=tmp)
            steps = -(-args.peer_images // args.batch)
            ours_s = timed([sys.executable, "-m", "ganbench", "train", "--model", "dcgan64-pt", "--dataset", "fake",
                            "--max-images", str(args.peer_images), "--batch-size", str(args.batch), "--steps",
                            str(steps), "--device", args.device, "--out", str(Path(tmp) / "gb"), "--quiet",
                            "--sample-every", str(steps), "--checkpoint-every", str(steps)])
        rows += ["", "| same networks (dcgan64-pt), 1 epoch of 1,000 random images | wall s | ratio |",
                 "|---|---:|---:|",
                 f"| pytorch/examples dcgan (`--dataset fake --workers 0`) | {peer_s:.1f} | 1.00 |",
                 f"| ganbench train | {ours_s:.1f} | {peer_s / ours_s:.2f}x faster |"]
        print("\n".join(rows[-5:]))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            f"# Training throughput\n\n`python benchmarks/bench_train.py {' '.join(sys.argv[1:])}`\n\n"
            + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
