"""The online probe (--online-probe, ganbench/train/online_probe.py): the features it reads against D's own pooled
maps, its step against a numpy softmax regression, that it leaves the GAN's training untouched, resume and logging."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from ganbench.checkpoint import load_checkpoint
from ganbench.config import TrainConfig
from ganbench.features import pool_maps
from ganbench.registry import get_variant
from ganbench.train.artifacts import plot_curves
from ganbench.train.loop import train
from ganbench.train.online_probe import LR, OnlineProbe

pytestmark = pytest.mark.usefixtures("isolated_cache")  # tests/conftest.py


def tiny(**kw) -> TrainConfig:
    base = TrainConfig(model="dcgan32", ngf=4, ndf=4, nz=8, dataset="fake", max_images=64, batch_size=16,
                       device="cpu", log_every=3, sample_every=100, checkpoint_every=3, n_samples=4,
                       deterministic=True, steps=6, online_probe=True)
    return replace(base, **kw)


def rows(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_the_probe_reads_the_real_batch_pass_and_steps_like_a_softmax_regression():
    torch.manual_seed(0)
    _, disc = get_variant("dcgan32").build(ngf=4, ndf=4, nz=8)
    disc.train()
    probe = OnlineProbe(disc, n_classes=10, device=torch.device("cpu"))
    real, fake = torch.randn(12, 3, 32, 32), torch.randn(12, 3, 32, 32)
    labels = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8])
    probe.arm(real)
    disc(real)
    disc(fake)  # the fake pass (and any later one) is not read
    with torch.no_grad():
        expected = pool_maps(disc.feature_maps(real)).numpy()  # training mode: the same batch statistics
    captured = torch.cat(probe.maps, 1).numpy()
    assert captured.shape == (12, disc.feature_dim(grid=4))
    np.testing.assert_allclose(captured, expected, rtol=1e-5, atol=1e-6)

    logs = probe.update(labels, "ns")
    # the head starts at zero: uniform softmax, loss log(10), argmax class 0 everywhere (no label 0 here)
    assert float(logs["probe_loss"]) == pytest.approx(np.log(10), rel=1e-6)
    assert float(logs["probe_acc"]) == 0.0
    # softmax regression's gradient in numpy; Adam's first step moves each weight by lr * sign(gradient)
    onehot = np.eye(10)[labels.numpy()]
    grad_w = (np.full((12, 10), 0.1) - onehot).T @ expected / 12
    grad_b = (np.full((12, 10), 0.1) - onehot).mean(0)
    big = np.abs(grad_w) > 1e-4  # where Adam's eps (1e-8) is negligible
    np.testing.assert_allclose(probe.head.weight.detach().numpy()[big], -LR * np.sign(grad_w[big]), rtol=1e-3)
    np.testing.assert_allclose(probe.head.bias.detach().numpy(), -LR * np.sign(grad_b), rtol=1e-3)
    assert probe.maps == []
    with pytest.raises(Exception, match="did not run D on the real batch"):
        probe.update(labels, "ns")  # nothing captured since


def test_training_with_the_probe_is_the_same_training(tmp_path):
    """The probe reads detached maps and draws no random numbers: G and D end bit for bit as without it."""
    train(tiny(), tmp_path / "with", progress=False)
    train(tiny(online_probe=False), tmp_path / "without", progress=False)
    a, b = (load_checkpoint(tmp_path / r / "checkpoints" / "last.pt") for r in ("with", "without"))
    for net in ("G", "D"):
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
    assert "online_probe" in a and "online_probe" not in b
    with_rows, without_rows = rows(tmp_path / "with"), rows(tmp_path / "without")
    assert [r["loss_d"] for r in with_rows] == [r["loss_d"] for r in without_rows]
    assert all(0 <= r["probe_acc"] <= 1 and r["probe_loss"] > 0 for r in with_rows)
    assert "probe_acc" not in without_rows[0]
    head = a["online_probe"]["head"]
    assert head["weight"].shape == (10, get_variant("dcgan32").build(ngf=4, ndf=4, nz=8)[1].feature_dim(grid=4))
    assert head["weight"].abs().sum() > 0  # it learned


def test_the_probe_resumes_bit_exact(tmp_path):
    train(tiny(), tmp_path / "once", progress=False)
    train(tiny(steps=3), tmp_path / "twice", progress=False)
    train(tiny(), tmp_path / "twice", resume=True, explicit={"steps"}, progress=False)
    a, b = (load_checkpoint(tmp_path / r / "checkpoints" / "last.pt")["online_probe"] for r in ("once", "twice"))
    for key in a["head"]:
        assert torch.equal(a["head"][key], b["head"][key]), key
    assert rows(tmp_path / "once")[-1]["probe_acc"] == rows(tmp_path / "twice")[-1]["probe_acc"]


@pytest.mark.slow
def test_the_probe_learns_digit_classes_from_a_training_discriminator(tmp_path):
    cfg = TrainConfig(model="dcgan-svhn32", ngf=8, ndf=8, nz=16, dataset="digits", split="all", steps=60,
                      batch_size=32, device="cpu", log_every=20, sample_every=100, checkpoint_every=60, n_samples=4,
                      online_probe=True)
    train(cfg, tmp_path / "r", progress=False)
    acc = [r["probe_acc"] for r in rows(tmp_path / "r")]
    assert acc[-1] > 0.5 and acc[-1] > acc[0]  # ten classes: chance is 0.1
    plot_curves(tmp_path / "r" / "metrics.jsonl", tmp_path / "c.png")
    from PIL import Image

    assert Image.open(tmp_path / "c.png").size[0] == 3 * 550  # losses, D outputs, the probe's own panel
