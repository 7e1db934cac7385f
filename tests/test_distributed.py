"""torchrun on the CPU: 2 processes with the gloo backend, as CI runs them (the same code runs NCCL on GPUs).

Data-parallel training (ranks identical after every step; with --sync-bn equal to one process holding the whole
batch; one set of files; bit-exact --resume), a NaN or a killed rank stopping the job, and sharded feature
extraction equal to the single-process features.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.optim.optimizer import register_optimizer_step_post_hook

from ganbench.checkpoint import load_checkpoint
from ganbench.cli import cli
from ganbench.config import TrainConfig
from ganbench.train.loop import train

pytestmark = pytest.mark.slow  # torchrun jobs of 2 processes

WORKER = Path(__file__).with_name("distributed_worker.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]

# global batch 16 of 64 images: each rank trains on 8 of them per step
BASE = TrainConfig(model="dcgan32", ngf=8, ndf=8, nz=16, dataset="fake", max_images=64, batch_size=16,
                   device="cpu", steps=4, log_every=2, sample_every=2, checkpoint_every=2, n_samples=16,
                   deterministic=True, sync_bn=True)


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "GANBENCH_CACHE": str(cache), "OMP_NUM_THREADS": "1", "GANBENCH_DIST_TIMEOUT": "60",
            "MPLBACKEND": "Agg"}


def _torchrun(args: list[str], cache: Path, timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(TORCHRUN + args, env={**_env(cache), **env}, capture_output=True, text=True,
                          timeout=timeout)


FEATURES = ["features", "--dataset", "digits", "--split", "all", "--feature-dtype", "float32", "--batch-size", "100",
            "--device", "cpu", "--quiet"]  # 1797 images: 18 batches, 9 per rank


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process (in this process, one thread) and 2 ranks (one torchrun job, to save start-up time) on the same
    settings, then in the same job: --resume of a 2-process run, the features of the single-process D, and a run
    that turns NaN on rank 1."""
    root = tmp_path_factory.mktemp("dist")
    cache = root / "cache"
    single = []
    handle = register_optimizer_step_post_hook(lambda opt, args, kwargs: single.append(torch.cat(
        [p.detach().flatten() for group in opt.param_groups for p in group["params"]]).clone()))
    threads = torch.get_num_threads()
    old_cache = os.environ.get("GANBENCH_CACHE")
    try:
        torch.set_num_threads(1)
        os.environ["GANBENCH_CACHE"] = str(cache)
        train(BASE, root / "single", progress=False)
    finally:
        handle.remove()
        torch.set_num_threads(threads)
        if old_cache is None:
            os.environ.pop("GANBENCH_CACHE", None)
        else:
            os.environ["GANBENCH_CACHE"] = old_cache
    jobs = [
        {"config": asdict(BASE), "out": str(root / "two")},
        {"config": asdict(replace(BASE, steps=2)), "out": str(root / "partial")},
        {"cli": ["train", "--out", str(root / "partial"), "--resume", "--steps", "4", "--quiet"]},
        # WGAN-GP: D's gradient with respect to its input (create_graph) inside DDP, 5 critic steps per G step
        {"config": asdict(replace(BASE, objective="wgan-gp", steps=2, sync_bn=False)), "out": str(root / "wgan")},
        # owned modules in DDP (SyncBatchNorm in BiGAN's encoder): SS-GAN's rotation head, BiGAN's encoder and head
        {"config": asdict(replace(BASE, objective="ss-gan", steps=2)), "out": str(root / "ssgan")},
        {"config": asdict(replace(BASE, objective="bigan", objective_args={"hidden": 16}, steps=2)),
         "out": str(root / "bigan")},
        # the online probe: each rank's head learns from its slice, the mean gradient keeps the heads equal
        {"config": asdict(replace(BASE, online_probe=True, steps=2)), "out": str(root / "probe")},
        {"cli": [FEATURES[0], str(root / "single" / "checkpoints" / "last.pt"), *FEATURES[1:],
                 "--out", str(root / "features2.npy")]},
        {**_failing_job(root, "nan"), "exit": 2},
        {"cli": ["train", "--dataset", "fake", "--batch-size", "15", "--out", str(root / "odd"), "--quiet"], "exit": 2},
    ]
    (root / "jobs.json").write_text(json.dumps(jobs))
    t0 = time.perf_counter()
    done = _torchrun([str(WORKER), str(root / "jobs.json")], cache)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"root": root, "cache": cache, "single": single, "seconds": time.perf_counter() - t0, "job": done}


def _params(run: Path, rank: int) -> list[torch.Tensor]:
    return torch.load(run / f"params_rank{rank}.pt")


@pytest.mark.parametrize("job, updates", [("two", 8), ("wgan", 12), ("ssgan", 4), ("bigan", 4), ("probe", 6)])
def test_ranks_hold_identical_weights_after_every_step(runs, job, updates):
    rank0, rank1 = _params(runs["root"] / job, 0), _params(runs["root"] / job, 1)
    # a D and a G update per step (WGAN-GP: 5 D updates per G; the online probe's head: one after each D update)
    assert len(rank0) == len(rank1) == updates
    for i, (a, b) in enumerate(zip(rank0, rank1)):  # owned modules' parameters are groups of their side's Adam
        assert torch.equal(a, b), f"ranks differ after optimizer step {i + 1}"
    same_module = [t for t in rank0 if t.shape == rank0[0].shape]  # D's snapshots
    assert not torch.equal(same_module[0], same_module[-1])  # and the weights moved


@pytest.mark.parametrize("job, owned", [("ssgan", {"rotation": "d"}), ("bigan", {"encoder": "g", "joint": "d"})])
def test_owned_modules_train_under_torchrun(runs, job, owned):
    ckpt = load_checkpoint(runs["root"] / job / "checkpoints" / "last.pt")
    assert {name: item["side"] for name, item in ckpt["owned"].items()} == owned
    assert ckpt["step"] == 2 and all(torch.isfinite(v).all() for item in ckpt["owned"].values()
                                     for v in item["state"].values() if v.is_floating_point())
    # BiGAN's encoder was SyncBatchNorm in training; its checkpoint loads into the plain module
    if job == "bigan":
        assert "trunk.blocks.1.1.running_mean" in ckpt["owned"]["encoder"]["state"]


def test_sync_bn_matches_one_process_with_the_whole_batch(runs):
    """Tolerance: after the first D and G updates every weight within 1e-6 of the single-process one (an update
    moves a weight by about lr = 2e-4, so a wrong statistic or gradient scale shows as ~1e-4); after that the
    distance, relative to how far the weights moved since their first update, stays below 0.2. Adam turns
    rounding differences of near-zero gradients into lr-sized steps, so runs drift apart: one process against
    itself with 2 threads instead of 1 drifts by up to 0.08 over these 4 steps, the 2-rank run by up to 0.06,
    while 2 ranks without --sync-bn are 4e-4 off after one update and 0.8-2.5 off later."""
    single, ranks = runs["single"], _params(runs["root"] / "two", 0)
    assert len(single) == len(ranks) == 8
    for i in (0, 1):  # the first D update, then the first G update
        assert (single[i] - ranks[i]).abs().max() < 1e-6
    for i in range(2, 8):
        moved = (single[i] - single[i % 2]).norm()
        assert (single[i] - ranks[i]).norm() / moved < 0.2, f"update {i + 1}"


def test_rank_zero_alone_writes_one_set_of_files(runs):
    run = runs["root"] / "two"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt", "step_0000002.pt",
                                                                       "step_0000004.pt"]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000002.png", "step_0000004.png"]
    assert [p.name for p in run.rglob(".*")] == [".lock"]  # rank 0's run-directory lock; no temporary file
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    first = (run / "config.toml").read_text().splitlines()[0]
    assert first == "# torchrun: 2 processes; batch_size 16 is the global batch (8 images per process), SyncBatchNorm"
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["provenance"]["world_size"] == 2 and len(ckpt["rng"]["torch_ranks"]) == 2
    # a SyncBatchNorm checkpoint loads into the plain model
    assert "body.1.running_mean" in ckpt["G"] and ckpt["config"]["sync_bn"] is True


def test_resume_under_torchrun_is_bit_exact(runs):
    """`ganbench train --resume` in the torchrun job continues the 2-process run stopped at step 2."""
    root, partial = runs["root"], runs["root"] / "partial"
    assert runs["job"].stdout.count("trained 4 steps") == 1  # printed by rank 0 only
    a = load_checkpoint(root / "two" / "checkpoints" / "last.pt")
    b = load_checkpoint(partial / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 4
    for part in ("G", "D"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    for opt in ("opt_G", "opt_D"):
        for index, state in a[opt]["state"].items():
            assert torch.equal(state["exp_avg_sq"], b[opt]["state"][index]["exp_avg_sq"]), (opt, index)


FAILING_VARIANT = """
    import os
    import signal

    from ganbench.models.base import Variant
    from ganbench.models.dcgan import ConvDiscriminator, ConvGenerator

    class FailingD(ConvDiscriminator):
        calls = 0

        def forward(self, x):
            FailingD.calls += 1
            out = super().forward(x)
            if os.environ.get("RANK") == "1" and FailingD.calls > int(os.environ["FAIL_AFTER_CALLS"]):
                if os.environ["FAIL_HOW"] == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                return out + float("nan")
            return out

    def make_g(nz, channels):
        return ConvGenerator(nz, 16, [8], [2, 2], 3, channels, "linear", "normal")

    def make_d(ndf, channels):
        return FailingD([ndf, 2 * ndf], [2, 2], 3, channels, 16, "linear")

    FAILING = Variant("failing16", make_g, make_d, {"nz": 8, "ndf": 4, "channels": 3}, 16)
"""


def _failing_job(folder: Path, how: str) -> dict:
    """A 16 px run whose D on rank 1 fails in step 4 (3 D calls per step: real, fake, and G's fake)."""
    variant = folder / "failing.py"
    variant.write_text(textwrap.dedent(FAILING_VARIANT))
    cli_args = ["train", "--variant", f"{variant}:FAILING", "--model", "failing16", "--dataset", "fake",
                "--max-images", "32", "--batch-size", "8", "--device", "cpu", "--steps", "40", "--log-every", "1",
                "--checkpoint-every", "1" if how == "kill" else "2", "--sample-every", "100",
                "--out", str(folder / f"failing-{how}"), "--quiet"]
    return {"cli": cli_args, "env": {"FAIL_AFTER_CALLS": "9", "FAIL_HOW": how}}


def test_nan_on_one_rank_stops_every_rank_with_one_message(runs):
    """Rank 1's D turns NaN in step 4: both ranks stop there (exit status 2) and one error line is printed."""
    errors = [line for line in runs["job"].stderr.splitlines() if line.startswith("ganbench: error") and "NaN" in line]
    assert len(errors) == 1, runs["job"].stderr[-3000:]
    assert "NaN or infinite at step 4" in errors[0] and "last good checkpoint" in errors[0]
    assert load_checkpoint(runs["root"] / "failing-nan" / "checkpoints" / "last.pt")["step"] == 2


def test_a_user_error_is_printed_once(runs):
    """A global batch that 2 processes cannot split: rank 0 finds it, every rank stops, one line says so."""
    errors = [line for line in runs["job"].stderr.splitlines() if line.startswith("ganbench: error")]
    assert errors[1:] == ["ganbench: error: --batch-size 15 is the global batch of 2 processes and must be a multiple "
                          "of 2; pass --batch-size 14"]
    assert not (runs["root"] / "odd").exists()


def test_killed_rank_stops_the_job_and_leaves_a_loadable_checkpoint(tmp_path):
    job = _failing_job(tmp_path, "kill")
    t0 = time.perf_counter()
    done = _torchrun(["-m", "ganbench", *job["cli"]], tmp_path / "cache", timeout=180, **job["env"])
    seconds, out = time.perf_counter() - t0, tmp_path / "failing-kill"
    assert done.returncode != 0 and seconds < 120  # torchrun ended the survivor; nothing waited for the timeout
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["step"] == 3 and all(torch.isfinite(v).all() for v in ckpt["G"].values() if v.is_floating_point())


def test_sharded_features_equal_single_process_features(runs, tmp_path):
    """Train-batch BN statistics and features of 2 ranks (in the torchrun job) against one process."""
    root = runs["root"]
    args = [FEATURES[0], str(root / "single" / "checkpoints" / "last.pt"), *FEATURES[1:]]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "one.npy")],
                                    env={"GANBENCH_CACHE": str(runs["cache"])})
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    assert runs["job"].stdout.count("wrote") == 1  # rank 0 only
    one, two = np.load(tmp_path / "one.npy"), np.load(root / "features2.npy")
    assert one.shape == (1797, (8 + 8 + 16 + 16 + 32 + 32) * 16) and one.dtype == np.float32
    assert np.array_equal(one, two)  # bit-identical
    assert np.array_equal(np.load(tmp_path / "one.labels.npy"), np.load(root / "features2.labels.npy"))
