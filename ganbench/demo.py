"""`ganbench demo`: the offline end-to-end run on the embedded digits, sized to finish in minutes on 2 CPU cores."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from ganbench.config import TrainConfig
from ganbench.train.loop import train

# A narrow dcgan32 (the paper's 32x32 architecture at a quarter of its width) on 1-channel digits.
DEMO_WIDTH = 32
DEMO_STEPS = 600
DEMO_BATCH = 64


def demo_config(steps: int | None = None) -> TrainConfig:
    """The demo's training settings."""
    n = steps or DEMO_STEPS
    return TrainConfig(
        model="dcgan32", ngf=DEMO_WIDTH, ndf=DEMO_WIDTH, dataset="digits", split="all", steps=n,
        batch_size=DEMO_BATCH, seed=0, device="cpu", log_every=20, sample_every=max(n // 6, 1),
        checkpoint_every=n, n_samples=64,
    )


def run_demo(out: Path, steps: int | None = None, progress: bool = True) -> Iterator[str]:
    """Train the demo model into out (replacing an earlier demo there) and yield lines describing the results."""
    t0 = time.perf_counter()
    result = train(demo_config(steps), out, overwrite=True, progress=progress)
    m = result.final_metrics
    grids = sorted((out / "samples").glob("step_*.png"))
    yield f"demo: trained dcgan32 (ngf=ndf={DEMO_WIDTH}) on scikit-learn digits for {result.steps} steps " \
          f"in {time.perf_counter() - t0:.0f} s on the CPU"
    yield f"  final losses: D {m['loss_d']:.3f}, G {m['loss_g']:.3f}; D(x) {m['d_real']:.2f}, " \
          f"D(G(z)) {m['d_fake']:.2f}; {m['images_per_s']:.0f} images/s"
    yield f"  run directory:  {out}"
    yield f"  sample grids:   {out / 'samples'} (latest: {grids[-1].name if grids else 'none'})"
    yield f"  loss curves:    {out / 'curves.png'}"
    yield f"  checkpoint:     {result.last_checkpoint}"
    yield f"  next: ganbench sample {result.last_checkpoint} --interpolate --n 8 --out walks.png"
