"""Pictures of a run: sample grids and loss curves, each written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> Path:
    """Save images in [-1, 1] (N, C, H, W) as one PNG grid."""
    from torchvision.utils import save_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nrow = nrow or max(1, int(round(len(images) ** 0.5)))
    tmp = path.with_name(f".{path.stem}.tmp.png")
    save_image(images.detach().float().cpu(), tmp, nrow=nrow, padding=2, normalize=True, value_range=(-1, 1))
    os.replace(tmp, path)
    return path


def plot_curves(metrics_path: str | os.PathLike, out: str | os.PathLike) -> Path | None:
    """Plot losses and D outputs over steps from metrics.jsonl into a PNG."""
    metrics_path, out = Path(metrics_path), Path(out)
    if not metrics_path.is_file():
        return None
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, (ax_loss, ax_d) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot(steps, [r["loss_d"] for r in rows], label="loss D")
    ax_loss.plot(steps, [r["loss_g"] for r in rows], label="loss G")
    ax_loss.set_xlabel("step")
    ax_loss.set_title("losses")
    ax_loss.legend()
    ax_d.plot(steps, [r["d_real"] for r in rows], label="D(x)")
    ax_d.plot(steps, [r["d_fake"] for r in rows], label="D(G(z))")
    ax_d.set_ylim(0, 1)
    ax_d.set_xlabel("step")
    ax_d.set_title("discriminator outputs (mean sigmoid)")
    ax_d.legend()
    fig.tight_layout()
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out)
    return out
