"""`train`: a training run in a locked run directory (the Trainer in trainer.py does the work).

The names other modules and tests import from here (BatchSource, resolve_config, the run-directory helpers)
are re-exported from the modules that now hold them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ganbench import distributed
from ganbench.config import TrainConfig
from ganbench.errors import ConfigError
from ganbench.train.batches import BatchSource
from ganbench.train.rundir import LOCK_NAME, check_out_path, hold_run_dir, prepare_run_dir, trim_metrics
from ganbench.train.settings import (
    RESUMABLE,
    check_global_batch,
    merge_resume_config,
    require_tensorboard,
    resolve_config,
)
from ganbench.train.trainer import Trainer, TrainResult

__all__ = ["LOCK_NAME", "RESUMABLE", "BatchSource", "TrainResult", "Trainer", "check_out_path", "hold_run_dir",
           "merge_resume_config", "prepare_run_dir", "require_tensorboard", "resolve_config", "train", "trim_metrics"]


def train(
    cfg: TrainConfig,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    explicit: set[str] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a GAN as cfg says, writing config.toml, metrics.jsonl, samples/, curves.png and checkpoints/ in out.

    explicit: names of settings the user gave on this call (only matters with resume).

    Under torchrun (several processes) the run is data-parallel: cfg.batch_size is the global batch, split across
    the ranks; rank 0 prepares the run directory and writes every file; see ganbench.distributed.
    """
    out = Path(out)
    distributed.init_group(cfg.device)  # under torchrun the group first: rank 0's errors below reach every rank
    world, rank = distributed.world_size(), distributed.rank()

    def check() -> TrainConfig | None:
        cfg.validate()
        if cfg.tensorboard:
            require_tensorboard()  # before anything is written
        if resume and overwrite:
            raise ConfigError("--resume and --overwrite contradict each other; give one")
        if resume:
            return None  # resolved by the Trainer from the checkpoint's configuration
        # unknown model, objective or option: refused before --overwrite deletes anything
        resolved = resolve_config(cfg)
        check_global_batch(cfg.batch_size, world)
        return resolved

    # a user's mistake is found by rank 0 first and printed once; the other ranks stop with it
    resolved = distributed.main_first(check)
    held = contextlib.ExitStack()
    # rank 0 alone holds the run directory's lock (the other ranks write nothing there)
    distributed.on_main(lambda: held.enter_context(hold_run_dir(out, resume)))
    with held:
        trainer = Trainer(cfg, out, resume=resume, overwrite=overwrite, explicit=explicit, progress=progress,
                          world=world, rank=rank, resolved=resolved)
        return trainer.run()
