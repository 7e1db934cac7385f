"""Pictures of a run: sample grids and loss curves, each written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ganbench.files import atomic_path


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> Path:
    """Save images in [-1, 1] (N, C, H, W) as one PNG grid."""
    from torchvision.utils import save_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nrow = nrow or max(1, int(round(len(images) ** 0.5)))
    with atomic_path(path) as tmp:
        save_image(images.detach().float().cpu(), tmp, nrow=nrow, padding=2, normalize=True, value_range=(-1, 1))
    return path


CORE_KEYS = ("step", "loss_d", "loss_g", "d_real", "d_fake", "images_per_s", "elapsed_s")
PROBE_KEYS = ("probe_acc", "probe_loss")  # the online probe's (train/online_probe.py): a panel of their own
LR_KEY = "lr"  # logged under --lr-decay linear: drawn on its own axis beside the losses


def plot_curves(metrics_path: str | os.PathLike, out: str | os.PathLike, output_kind: str = "logit") -> Path | None:
    """Plot losses, D outputs and the objective's own scalars (gradient penalty, ...) over steps into a PNG.

    output_kind: "logit" (D outputs are mean sigmoids, drawn on [0, 1]) or "critic" (raw values).
    """
    metrics_path, out = Path(metrics_path), Path(out)
    if not metrics_path.is_file():
        return None
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = {k for r in rows for k in r}
    extra = sorted(keys - set(CORE_KEYS) - set(PROBE_KEYS) - {LR_KEY})
    probe = "probe_acc" in keys
    panels = 2 + bool(extra) + probe
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4))

    def series(ax, key: str, label: str) -> None:
        points = [(r["step"], r[key]) for r in rows if key in r]
        if points:
            ax.plot(*zip(*points), label=label)

    series(axes[0], "loss_d", "loss D")
    series(axes[0], "loss_g", "loss G")
    axes[0].set_title("losses")
    if LR_KEY in keys:
        lr_ax = axes[0].twinx()
        series(lr_ax, LR_KEY, "learning rate")
        lr_ax.lines[0].set(color="0.5", linestyle="--")
        lr_ax.set_ylim(bottom=0)
        lr_ax.set_ylabel("learning rate (dashed)")
    series(axes[1], "d_real", "D(x)")
    series(axes[1], "d_fake", "D(G(z))")
    if output_kind == "logit":
        axes[1].set_ylim(0, 1)
        axes[1].set_title("discriminator outputs (mean sigmoid)")
    else:
        axes[1].set_title("critic outputs (mean raw value)")
    for key in extra:
        series(axes[2], key, key)
    if extra:
        axes[2].set_title("objective's scalars")
    if probe:
        series(axes[-1], "probe_acc", "accuracy before each step")
        axes[-1].set_ylim(0, 1)
        axes[-1].set_title("online probe on D's features (real training batches)")
    for ax in axes:
        ax.set_xlabel("step")
        if ax.lines:  # an autoencoder has no D outputs to draw
            ax.legend()
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return out
