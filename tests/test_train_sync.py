"""The training loop keeps its scalars on the device: no host synchronisation in the steps between log points.

Every tensor -> Python conversion (`.item()`, `float()`, `int()`, `bool()`, `.tolist()`, `.cpu()`) would stall a
GPU pipeline once per step. The test counts those calls made by ganbench's own code (the caller's frame lies in
the ganbench package; torch's internals, such as Adam reading its CPU-resident step counter, do not count) per
training step, and asserts none in the steps between log points and some at the log points, so the counter is
known to see the loop's conversions.
"""

from __future__ import annotations

import collections
import functools
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import ganbench
from ganbench.config import TrainConfig
from ganbench.train import loop

GANBENCH_DIR = str(Path(ganbench.__file__).resolve().parent)
CONVERSIONS = ("item", "tolist", "cpu", "__float__", "__int__", "__bool__", "__index__")


@functools.cache
def in_ganbench(filename: str) -> bool:
    return str(Path(filename).resolve()).startswith(GANBENCH_DIR)


pytestmark = pytest.mark.usefixtures("isolated_cache")  # tests/conftest.py


def count_syncs(monkeypatch, cfg: TrainConfig, out: Path) -> dict[int, collections.Counter]:
    """Train cfg, returning {step: Counter(conversion name -> calls from ganbench code)} per 0-based step.

    Besides the conversions it counts, as "h2d:to" and "h2d:tensor", what becomes a blocking host-to-device copy
    on a GPU: `tensor.to(<device>)` of a CPU tensor and `torch.tensor(data, device=...)` (PyTorch waits for a
    non_blocking=False copy from pageable memory to finish, so both stall the host on CUDA every time).
    """
    per_step: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    current = {"step": -1, "on": True}  # step -1: setup before the first batch
    original_batch = loop.BatchSource.batch

    def batch(self, step):
        current["step"] = step
        return original_batch(self, step)

    def counting(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            if current["on"] and in_ganbench(sys._getframe(1).f_code.co_filename):
                per_step[current["step"]][name] += 1
            return original(self, *args, **kwargs)

        return wrapper

    original_to, original_tensor = torch.Tensor.to, torch.tensor

    def to(self, *args, **kwargs):
        target = kwargs.get("device", args[0] if args else None)
        if (current["on"] and isinstance(target, (torch.device, str)) and self.device.type == "cpu"
                and not kwargs.get("non_blocking") and in_ganbench(sys._getframe(1).f_code.co_filename)):
            per_step[current["step"]]["h2d:to"] += 1
        return original_to(self, *args, **kwargs)

    def tensor(*args, **kwargs):
        if current["on"] and kwargs.get("device") is not None and in_ganbench(sys._getframe(1).f_code.co_filename):
            per_step[current["step"]]["h2d:tensor"] += 1
        return original_tensor(*args, **kwargs)

    monkeypatch.setattr(loop.BatchSource, "batch", batch)
    for name in CONVERSIONS:
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    monkeypatch.setattr(torch.Tensor, "to", to)
    monkeypatch.setattr(torch, "tensor", tensor)
    loop.train(cfg, out, progress=False)
    current["on"] = False  # the asserts' own conversions are not the loop's
    return per_step


def small(**kw) -> TrainConfig:
    base = TrainConfig(model="dcgan32", ngf=8, ndf=8, nz=16, dataset="fake", max_images=64, batch_size=16,
                       device="cpu", steps=20, log_every=5, sample_every=10**6, checkpoint_every=10**6, n_samples=4)
    return replace(base, **kw)


@pytest.mark.parametrize("schedule", ["simultaneous", "alternating"])
def test_no_host_sync_between_log_points(tmp_path, monkeypatch, schedule):
    cfg = small(schedule=schedule)
    per_step = count_syncs(monkeypatch, cfg, tmp_path / "run")
    log_steps = {s for s in range(cfg.steps) if (s + 1) % cfg.log_every == 0}
    assert log_steps == {4, 9, 14, 19}
    quiet = {s: {k: v for k, v in per_step[s].items() if k in CONVERSIONS} for s in range(cfg.steps)
             if s not in log_steps}
    assert {s: c for s, c in quiet.items() if c} == {}, f"host syncs in steps between log points: {quiet}"
    for s in log_steps:
        # the NaN check (int of the first bad step) and the logged window means (float of each sum)
        assert per_step[s]["__int__"] >= 1 and per_step[s]["__float__"] >= 4, (s, dict(per_step[s]))


def test_counter_sees_a_sync_added_per_step(tmp_path, monkeypatch):
    """Control: a per-step .item() made by ganbench code (here the objective) shows up in every step."""
    from ganbench.objectives.classic import NonSaturating

    original = NonSaturating.d_from_outputs

    def d_from_outputs_with_item(self, real, fake):
        loss = original(self, real, fake)
        loss.item()  # what a careless loop would do to print the loss
        return loss

    d_from_outputs_with_item.__code__ = d_from_outputs_with_item.__code__.replace(
        co_filename=str(Path(loop.__file__).resolve()))  # attributed to ganbench code, as if written in the loop
    monkeypatch.setattr(NonSaturating, "d_from_outputs", d_from_outputs_with_item)
    per_step = count_syncs(monkeypatch, small(steps=6), tmp_path / "run")
    assert [per_step[s]["item"] for s in range(6)] == [1] * 6


def test_no_blocking_host_to_device_copy_between_log_points(tmp_path, monkeypatch):
    cfg = small()
    per_step = count_syncs(monkeypatch, cfg, tmp_path / "run")
    copies = {s: {k: v for k, v in per_step[s].items() if k.startswith("h2d")} for s in range(cfg.steps)
              if (s + 1) % cfg.log_every}
    assert {s: c for s, c in copies.items() if c} == {}, copies


def test_host_to_device_copy_counter_sees_a_per_step_copy(tmp_path, monkeypatch):
    """Control for the test above: a per-step torch.tensor(..., device=...) made from the loop's file is counted."""
    namespace = {"original": loop.BatchSource.batch, "torch": torch}
    code = "def batch(self, step):\n    torch.tensor(step, device=self.device)\n    return original(self, step)\n"
    exec(compile(code, str(Path(loop.__file__).resolve()), "exec"), namespace)
    monkeypatch.setattr(loop.BatchSource, "batch", namespace["batch"])
    per_step = count_syncs(monkeypatch, small(steps=6, log_every=3), tmp_path / "run")
    assert [per_step[s]["h2d:tensor"] for s in range(6)] == [1] * 6
    assert [per_step[s]["h2d:to"] for s in range(6)] == [0] * 6
