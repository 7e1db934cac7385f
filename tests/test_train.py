"""The training loop on the CPU: artifacts, checkpoints, bit-exact resume, divergence and run-directory safety."""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace

import pytest
import torch
from PIL import Image

from ganbench.checkpoint import build_from_checkpoint, load_checkpoint
from ganbench.config import TrainConfig, read_config
from ganbench.errors import CheckpointError, ConfigError, RunDirError, TrainingDiverged
from ganbench.train.loop import train

pytestmark = pytest.mark.usefixtures("isolated_cache")  # tests/conftest.py


def small(**kw) -> TrainConfig:
    base = TrainConfig(model="dcgan32", ngf=8, ndf=8, nz=16, dataset="fake", max_images=64, batch_size=16,
                       device="cpu", log_every=5, sample_every=10, checkpoint_every=10, n_samples=16)
    return replace(base, **kw)


def test_thirty_steps_on_fake_leave_a_complete_run(tmp_path):
    out = tmp_path / "run"
    result = train(small(steps=30), out, progress=False)
    assert result.steps == 30
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30]
    for r in rows:
        assert all(torch.isfinite(torch.tensor(r[k])) for k in ("loss_d", "loss_g", "d_real", "d_fake"))
        assert 0 < r["d_real"] < 1 and 0 < r["d_fake"] < 1 and r["images_per_s"] > 0
    # the first window's D loss is near 2 log 2 for an untrained D; it must move as D learns
    assert abs(rows[0]["loss_d"] - 2 * 0.6931) < 0.6
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "last.pt", "step_0000010.pt", "step_0000020.pt", "step_0000030.pt"]
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "step_0000010.png", "step_0000020.png", "step_0000030.png"]
    grid = Image.open(out / "samples" / "step_0000030.png")
    assert grid.size == (4 * 34 + 2, 4 * 34 + 2)  # 4x4 grid of 32 px images, 2 px padding
    assert (out / "curves.png").stat().st_size > 10_000
    cfg = read_config(out / "config.toml")
    assert cfg["lr"] == 2e-4 and cfg["beta1"] == 0.5 and cfg["objective"] == "ns" and cfg["d_steps"] == 1
    assert cfg["schedule"] == "simultaneous"
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["format_version"] == 1 and ckpt["step"] == 30
    assert ckpt["model"]["name"] == "dcgan32"
    assert ckpt["model"]["kwargs"] == {"nz": 16, "ngf": 8, "ndf": 8, "channels": 3, "bn_eps": 1e-5}
    assert {"G", "D", "opt_G", "opt_D", "rng", "config", "provenance"} <= set(ckpt)
    gen, disc, _ = build_from_checkpoint(ckpt)
    assert gen(gen.sample_z(2)).shape == (2, 3, 32, 32)
    assert disc.feature_dim() == (8 + 8 + 16 + 16 + 32 + 32) * 16


@pytest.mark.parametrize("schedule", ["simultaneous", "alternating"])
def test_resume_is_bit_exact(tmp_path, schedule):
    # batch 16 of 64 images: 4 steps per epoch, so the resume point 6 sits mid-epoch
    cfg = small(steps=12, deterministic=True, schedule=schedule, checkpoint_every=6, sample_every=100)
    train(cfg, tmp_path / "once", progress=False)
    train(replace(cfg, steps=6), tmp_path / "twice", progress=False)
    train(replace(cfg, steps=12), tmp_path / "twice", resume=True, explicit={"steps"}, progress=False)
    a = load_checkpoint(tmp_path / "once" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "twice" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 12
    for net in ("G", "D"):
        assert a[net].keys() == b[net].keys()
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), (net, key)
    # and the run really moved: step-6 parameters differ from step-12 ones
    mid = load_checkpoint(tmp_path / "twice" / "checkpoints" / "step_0000006.pt")
    assert not torch.equal(mid["G"]["body.0.weight"], b["G"]["body.0.weight"])


def test_resume_refuses_changing_the_run(tmp_path):
    train(small(steps=4), tmp_path / "r", progress=False)
    with pytest.raises(ConfigError, match="cannot change lr"):
        train(small(steps=8, lr=1e-3), tmp_path / "r", resume=True, explicit={"steps", "lr"}, progress=False)
    with pytest.raises(ConfigError, match="already at step 4"):
        train(small(steps=4), tmp_path / "r", resume=True, explicit={"steps"}, progress=False)


def test_existing_run_dir_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "run"
    train(small(steps=2), out, progress=False)
    with pytest.raises(RunDirError, match="--resume .* --overwrite"):
        train(small(steps=2), out, progress=False)
    train(small(steps=3, checkpoint_every=3), out, overwrite=True, progress=False)
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 3
    assert not (out / "checkpoints" / "step_0000002.pt").exists()


def test_resume_without_checkpoint_is_refused(tmp_path):
    with pytest.raises(RunDirError, match="last.pt does not exist"):
        train(small(steps=2), tmp_path / "empty", resume=True, progress=False)


def test_divergence_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
    # a discriminator that returns inf from its 30th call on: steps 1-9 are finite (3 D calls per step)
    variant_file = tmp_path / "exploding.py"
    variant_file.write_text(textwrap.dedent("""
        import torch
        from ganbench.models.base import Variant
        from ganbench.models.dcgan import ConvDiscriminator, ConvGenerator

        class ExplodingD(ConvDiscriminator):
            calls = 0
            def forward(self, x):
                ExplodingD.calls += 1
                out = super().forward(x)
                return out + (float("inf") if ExplodingD.calls > 30 else 0.0)

        def make_g(nz, channels):
            return ConvGenerator(nz, 16, [8], [2, 2], 3, channels, "linear", "normal")

        def make_d(ndf, channels):
            return ExplodingD([ndf, 2 * ndf], [2, 2], 3, channels, 16, "linear")

        EXPLODING = Variant("exploding16", make_g, make_d, {"nz": 8, "ndf": 4, "channels": 3}, 16)
    """))
    out = tmp_path / "run"
    cfg = small(model="exploding16", variant_file=f"{variant_file}:EXPLODING", ngf=None, ndf=None, nz=None,
                steps=40, log_every=1, checkpoint_every=4, sample_every=100)
    with pytest.raises(TrainingDiverged, match="at step 11") as err:
        train(cfg, out, progress=False)
    assert "\n" not in str(err.value) and "last good checkpoint" in str(err.value)
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["step"] == 8
    assert all(torch.isfinite(v).all() for v in ckpt["G"].values() if v.is_floating_point())


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="not both"):
        small(steps=3, epochs=1.0).validate()
    with pytest.raises(ConfigError, match="unknown key"):
        TrainConfig.from_dict({"stepz": 3})
    with pytest.raises(ConfigError, match="batch size 128 exceeds"):
        train(small(steps=1, batch_size=128), "/tmp/never-made-run", overwrite=True, progress=False)


def test_epochs_count_full_batches(tmp_path):
    result = train(small(epochs=2.0, steps=None, checkpoint_every=100), tmp_path / "e", progress=False)
    assert result.steps == 2 * (64 // 16)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    train(small(steps=2), tmp_path / "run", progress=False)
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    data = path.read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable ganbench checkpoint") as err:
        load_checkpoint(bad)
    assert "\n" not in str(err.value)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="lacks the keys"):
        load_checkpoint(other)


def test_checkpoint_loading_executes_no_code(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"model": Boom(), "G": {}, "D": {}}, evil)
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(evil)


def test_tensorboard_event_files_beside_metrics(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    train(small(steps=4, log_every=2, sample_every=4, checkpoint_every=4, tensorboard=True), out, progress=False)
    events = EventAccumulator(str(out), size_guidance={"images": 0, "scalars": 0}).Reload()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for key in ("loss_d", "loss_g", "d_real", "d_fake", "images_per_s"):
        logged = events.Scalars(f"train/{key}")
        assert [e.step for e in logged] == [2, 4]
        assert [e.value for e in logged] == pytest.approx([r[key] for r in rows], rel=1e-6)
    (grid,) = events.Images("samples")
    assert grid.step == 4 and (grid.width, grid.height) == (4 * 34 + 2, 4 * 34 + 2)


def test_tensorboard_missing_says_which_pip_command(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "tensorboard", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"pip install 'ganbench\[tensorboard\]'") as err:
        train(small(steps=1, tensorboard=True), tmp_path / "run", progress=False)
    assert "\n" not in str(err.value) and not (tmp_path / "run").exists()


def test_outside_torchrun_no_process_group_is_made(tmp_path, monkeypatch):
    import torch.distributed as dist

    monkeypatch.setenv("WORLD_SIZE", "1")  # what `torchrun --nproc-per-node 1` sets: still a single process
    monkeypatch.setenv("RANK", "0")
    train(small(steps=1, sync_bn=True), tmp_path / "run", progress=False)
    assert not dist.is_initialized()
    assert "torchrun" not in (tmp_path / "run" / "config.toml").read_text()


def test_bf16_on_a_cpu_that_emulates_it_warns_in_one_line_once(tmp_path, monkeypatch, capfd):
    """An AMD EPYC with AVX2 only emulates bfloat16 (about 10x slower than float32): --amp bf16 says so, once per
    process, in training and in every feature pass, and stays silent where bfloat16 is native."""
    from ganbench import devices
    from ganbench.features import feature_autocast

    monkeypatch.setattr(devices, "_warned", set())
    monkeypatch.setattr(devices, "_cpu_flags", lambda: frozenset({"avx2", "fma"}))
    train(TrainConfig(model="dcgan32", ngf=4, ndf=4, nz=8, dataset="fake", max_images=32, batch_size=16,
                      device="cpu", steps=2, log_every=1, amp="bf16", n_samples=4), tmp_path / "r", progress=False)
    with feature_autocast("bf16", torch.device("cpu")):
        pass
    lines = [ln for ln in capfd.readouterr().err.splitlines() if "emulated bfloat16" in ln]
    assert lines == ["ganbench: warning: --amp bf16 on this CPU (no AVX512-BF16 or AMX) runs emulated bfloat16, "
                     "about 10x slower than float32; use --amp off"]
    monkeypatch.setattr(devices, "_warned", set())
    monkeypatch.setattr(devices, "_cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    with feature_autocast("bf16", torch.device("cpu")):
        pass
    assert "emulated" not in capfd.readouterr().err


def test_linear_lr_decay_factor_is_the_formula():
    # constant until lr_decay_from, then (total - step) / (total - from): 1 at the first decayed step, 1/8 at the last
    cfg = small(steps=12, lr_decay="linear", lr_decay_from=4).validate()
    assert [cfg.lr_factor(s, 12) for s in range(12)] == [1, 1, 1, 1] + [(12 - s) / 8 for s in range(4, 12)]
    assert small(steps=12, lr_decay="linear").lr_factor(6, 12) == 0.5  # from step 0 by default
    assert small(steps=12).lr_factor(11, 12) == small(steps=12, lr_decay="constant").lr_factor(11, 12) == 1.0
    for bad, words in ((dict(lr_decay="cosine"), "unknown --lr-decay 'cosine'"),
                       (dict(lr_decay_from=3), "give --lr-decay linear too"),
                       (dict(lr_decay="linear", lr_decay_from=12), "leaves no step to decay over"),
                       (dict(lr_decay="linear", lr_decay_from=-1), "zero or positive")):
        with pytest.raises(ConfigError, match=words):
            small(steps=12, **bad).validate()


def test_linear_lr_decay_reaches_both_optimizers_and_resumes_exactly(tmp_path):
    cfg = small(steps=12, lr_decay="linear", lr_decay_from=4, deterministic=True, log_every=2, checkpoint_every=6,
                sample_every=100)
    train(cfg, tmp_path / "once", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "once" / "metrics.jsonl").read_text().splitlines()]
    # each row: the rate of its window's last step (0-based done - 1)
    assert [r["lr"] for r in rows] == pytest.approx([2e-4 * min(1, (12 - (d - 1)) / 8) for d in range(2, 13, 2)])
    last = load_checkpoint(tmp_path / "once" / "checkpoints" / "last.pt")
    for opt in ("opt_G", "opt_D"):
        assert [g["lr"] for g in last[opt]["param_groups"]] == pytest.approx([2e-4 / 8])
    # killed after step 6 of the same 12-step run: resuming follows the same schedule, bit for bit
    twice = tmp_path / "twice"
    train(cfg, twice, progress=False)
    (twice / "checkpoints" / "step_0000012.pt").unlink()
    (twice / "checkpoints" / "last.pt").write_bytes((twice / "checkpoints" / "step_0000006.pt").read_bytes())
    train(cfg, twice, resume=True, explicit={"steps"}, progress=False)
    again = load_checkpoint(twice / "checkpoints" / "last.pt")
    for net in ("G", "D"):
        for key in last[net]:
            assert torch.equal(last[net][key], again[net][key]), (net, key)
    # the same run without the decay ends elsewhere: the schedule changed the updates
    train(replace(cfg, lr_decay=None, lr_decay_from=None), tmp_path / "flat", progress=False)
    flat = load_checkpoint(tmp_path / "flat" / "checkpoints" / "last.pt")
    assert not torch.equal(flat["G"]["body.0.weight"], last["G"]["body.0.weight"])


def test_a_resumed_run_may_gain_a_decaying_tail(tmp_path):
    out = tmp_path / "r"
    train(small(steps=6), out, progress=False)
    tail = small(steps=10, lr_decay="linear", lr_decay_from=6)
    train(tail, out, resume=True, explicit={"steps", "lr_decay", "lr_decay_from"}, progress=False)
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["step"] == 10
    assert ckpt["opt_G"]["param_groups"][0]["lr"] == pytest.approx(2e-4 * (10 - 9) / 4)
    saved = read_config(out / "config.toml")
    assert saved["lr_decay"] == "linear" and saved["lr_decay_from"] == 6 and saved["steps"] == 10
    with pytest.raises(ConfigError, match="leaves no step to decay over"):
        train(small(steps=12, lr_decay="linear", lr_decay_from=12), out, resume=True,
              explicit={"steps", "lr_decay", "lr_decay_from"}, progress=False)
