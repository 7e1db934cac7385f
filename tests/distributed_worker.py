"""Run by tests/test_distributed.py under torchrun (each rank runs this file): a list of jobs given as JSON, each
a training run (recording, after every optimizer step, this rank's G and D parameters so that the test can
compare ranks and runs) or a `ganbench` command line (which may be expected to fail)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from ganbench.cli import main as ganbench_main
from ganbench.config import TrainConfig
from ganbench.train.loop import train


def main(jobs_file: str) -> None:
    jobs = json.loads(Path(jobs_file).read_text())
    rank = int(os.environ.get("RANK", "0"))
    for job in jobs:
        if "cli" in job:  # a command line, with environment variables of its own and the exit status it expects
            os.environ.update(job.get("env", {}))
            try:
                ganbench_main(job["cli"])
            except SystemExit as exc:
                if exc.code != job.get("exit", 0):
                    raise
            finally:
                for key in job.get("env", {}):
                    os.environ.pop(key)
            continue
        snapshots: list[torch.Tensor] = []

        def record(optimizer, args, kwargs, snapshots=snapshots) -> None:
            params = [p.detach().flatten() for group in optimizer.param_groups for p in group["params"]]
            snapshots.append(torch.cat(params).clone())

        handle = register_optimizer_step_post_hook(record)
        try:
            train(TrainConfig(**job["config"]), job["out"], progress=False)
        finally:
            handle.remove()
        torch.save(snapshots, Path(job["out"]) / f"params_rank{rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1])
