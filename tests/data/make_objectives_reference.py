# Made before the objective contract replaced losses.py (commit 236528e): final weights of tiny runs per loss.
import tempfile
from dataclasses import replace

import torch

from ganbench.checkpoint import load_checkpoint
from ganbench.config import TrainConfig
from ganbench.train.loop import train

base = TrainConfig(model="dcgan32", ngf=4, ndf=4, nz=8, dataset="fake", max_images=64, batch_size=16,
                   device="cpu", log_every=5, sample_every=100, checkpoint_every=100, n_samples=4,
                   deterministic=True, steps=10)
torch.set_num_threads(2)  # bit identity holds for a fixed thread count; the test pins the same
ref = {}
for loss, sched in [("bce", "simultaneous"), ("bce", "alternating"), ("hinge", "simultaneous"),
                    ("lsgan", "simultaneous")]:
    with tempfile.TemporaryDirectory() as d:
        train(replace(base, loss=loss, schedule=sched), d + "/r", progress=False)
        ck = load_checkpoint(d + "/r/checkpoints/last.pt")
        ref[f"{loss}/{sched}"] = {"G": ck["G"], "D": ck["D"]}
torch.save(ref, "tests/data/objectives_reference.pt")
