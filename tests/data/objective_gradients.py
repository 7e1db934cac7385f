"""The gradients every built-in objective produces in its first training step, as a reference a changed objective
fails against on any CPU (tests/test_objectives.py).

A 10-step trajectory compared bit for bit holds on one CPU kind only: Adam turns a rounding-level sign change of a
near-zero gradient into a full step, and trajectories part. The gradients of one training step do not go through
that amplifier (the first D update has none before it; later ones follow one or a few Adam steps from the same
start), so they agree across kernels to float rounding while a changed loss, label, weight or schedule moves them
by orders of magnitude more. Run this file to remake tests/data/objective_gradients.pt after an intended change:
    python tests/data/objective_gradients.py
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from ganbench.config import TrainConfig
from ganbench.train.loop import train

HERE = Path(__file__).parent
REFERENCE = HERE / "objective_gradients.pt"

BASE = TrainConfig(model="dcgan32", ngf=4, ndf=4, nz=8, dataset="fake", max_images=32, batch_size=8, device="cpu",
                   log_every=1, sample_every=100, checkpoint_every=100, n_samples=4, deterministic=True, steps=1)

# every built-in objective with its defaults, and the options and model settings of the comparisons' variants
CASES: dict[str, dict] = {
    "ns": {"objective": "ns"},
    "ns/alternating": {"objective": "ns", "schedule": "alternating", "steps": 2},
    "ns/smooth": {"objective": "ns", "objective_args": {"real_label": 0.9}},
    "ns/minibatch": {"objective": "ns", "model_args": {"minibatch_kernels": 10, "minibatch_dims": 3}},
    "ns/vbn": {"objective": "ns", "model_args": {"g_norm": "vbn"}},
    "minimax": {"objective": "minimax"},
    "feature-matching": {"objective": "feature-matching"},
    "lsgan": {"objective": "lsgan"},
    "hinge/sn": {"objective": "hinge", "spectral_norm": True},
    "wgan-gp": {"objective": "wgan-gp"},
    "ss-gan": {"objective": "ss-gan"},  # rotate=quarter, the default since stop 34
    "ss-gan/all": {"objective": "ss-gan", "objective_args": {"rotate": "all"}},  # the default before it
    "bigan": {"objective": "bigan", "objective_args": {"hidden": 16}},
    "autoencoder": {"objective": "autoencoder"},
    "denoising-autoencoder": {"objective": "denoising-autoencoder"},
    "vae": {"objective": "vae"},
}


def first_step_gradients(case: str, threads: int = 2) -> list[torch.Tensor]:
    """The gradient of every optimizer step of one training step (D's, then G's; wgan-gp: 5 of D's, then G's),
    each flattened over the optimizer's parameter groups in order."""
    grads: list[torch.Tensor] = []

    def record(optimizer, args, kwargs) -> None:
        grads.append(torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach().flatten()
                                for group in optimizer.param_groups for p in group["params"]]).clone())

    before = torch.get_num_threads()
    handle = register_optimizer_step_pre_hook(record)
    try:
        torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory() as tmp:
            train(replace(BASE, **CASES[case]), Path(tmp) / "run", progress=False)
    finally:
        handle.remove()
        torch.set_num_threads(before)
    return grads


if __name__ == "__main__":
    # python tests/data/objective_gradients.py [CASE ...]: (re)make the named cases only (all when none is named),
    # so that a new case does not silently re-record the others on another CPU
    named = sys.argv[1:] or list(CASES)
    made = torch.load(REFERENCE, weights_only=True) if sys.argv[1:] and REFERENCE.is_file() else {}
    made.update({case: first_step_gradients(case) for case in named})
    torch.save({case: made[case] for case in CASES if case in made}, REFERENCE)
    print(f"wrote {REFERENCE} ({', '.join(named)} of {len(made)} cases)", file=sys.stderr)
