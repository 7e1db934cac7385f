"""The tf1 Inception input mode against torch-fidelity (the TF1 reference), with ONE random-weights Inception file.

torch-fidelity reproduces the original TensorFlow code's input (TF1 bilinear resize on 0..255, (x - 128) / 128);
ganbench's ``--inception-input tf1`` must give its numbers: IS within 1e-3 relative (same splits), FID within
1e-4 relative, KID within 1e-3 (same subsets), precision/recall exactly (same k). Run with -s to see the gaps.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from ganbench.errors import GanbenchError
from ganbench.metrics import inception
from ganbench.metrics.compute import compute_all
from ganbench.metrics.errors import MetricInputError
from ganbench.metrics.fid import check_same_input_mode, load_statistics, save_statistics

tfid = pytest.importorskip("torch_fidelity")

N = 30
IS_SPLITS, KID_SUBSETS, KID_SIZE, SEED = 3, 10, 20, 2020


def _images(rng: np.random.Generator, n: int, kind: int) -> np.ndarray:
    """(n, 3, 32, 32) uint8: kind 0 smooth colour fields, kind 1 noisy stripes (every 8th one grey)."""
    out = []
    for i in range(n):
        if kind == 0:
            coarse = torch.from_numpy(rng.random((1, 3, 4, 4))).float()
            x = torch.nn.functional.interpolate(coarse, size=32, mode="bilinear", align_corners=False)[0].numpy()
        else:
            t = np.linspace(0, 1, 32)
            wave = np.sin(2 * np.pi * rng.uniform(1, 6) * (t[:, None] * rng.uniform(-1, 1) + t[None, :]))
            x = 0.5 + 0.4 * wave[None] * rng.random((3, 1, 1)) + 0.05 * rng.standard_normal((3, 32, 32))
            if i % 8 == 0:
                x = np.repeat(x.mean(0, keepdims=True), 3, axis=0)
        out.append((np.clip(x, 0, 1) * 255).astype(np.uint8))
    return np.stack(out)


class _Uint8Images(torch.utils.data.Dataset):
    """torch-fidelity's input: a dataset of (3, H, W) uint8 tensors."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = torch.from_numpy(images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tf1")
    weights = inception.write_random_inception_weights(root / "random_inception.pth", seed=0)
    rng = np.random.default_rng(0)
    return {"weights": weights, "real": _images(rng, N, 0), "fake": _images(rng, N, 1), "root": root}


def test_tf1_resize_follows_tensorflow_definition():
    """TF1 maps output i to source i * in/out (no half-pixel shift) and clamps the upper neighbour."""
    x = torch.tensor([[[[10.0, 30.0]]]])  # 1 x 2 image
    out = inception.resize_bilinear_tf1(x, 4)
    # rows: 0, 0.5, 1, 1.5 -> row 0, row 0, row 1 (clamped), row 1; columns likewise: 10, 20, 30, 30
    np.testing.assert_array_equal(out[0, 0, 0].numpy(), [10.0, 20.0, 30.0, 30.0])
    assert out.shape == (1, 1, 4, 4)
    # torch's align_corners=False (pytorch-fid mode) shifts by half a pixel: not the same resize
    torch_resize = torch.nn.functional.interpolate(x.expand(1, 1, 2, 2), size=4, mode="bilinear", align_corners=False)
    assert not torch.equal(torch_resize[0, 0, 0], out[0, 0, 0])


def test_tf1_resize_equals_torch_fidelity_resize():
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, 3, 32, 27))).float()
    ours = inception.resize_bilinear_tf1(x, 299)
    theirs = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")  # torch-fidelity's DataLoader workers, few-sample FID
def test_tf1_mode_equals_torch_fidelity(setup):
    """One Inception pass per image set in tf1 mode gives torch-fidelity's IS, FID, KID and P/R."""
    theirs = tfid.calculate_metrics(
        input1=_Uint8Images(setup["fake"]), input2=_Uint8Images(setup["real"]), isc=True, fid=True, kid=True,
        prc=True, cuda=False, cache=False, verbose=False, feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=str(setup["weights"]), isc_splits=IS_SPLITS, kid_subsets=KID_SUBSETS,
        kid_subset_size=KID_SIZE, rng_seed=SEED,
    )
    net = inception.InceptionFeatures(setup["weights"], allow_download=False, input_mode="tf1")
    assert net.info["input_mode"] == "tf1" and "(x - 128) / 128" in net.info["resize"]
    real = inception.extract(setup["real"], model=net, progress=False)
    fake = inception.extract(setup["fake"], model=net, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # fewer samples than dims, on purpose (speed)
        ours = compute_all(real, fake, ("fid", "is", "kid", "pr"), is_splits=IS_SPLITS, is_seed=SEED,
                           kid_subsets=KID_SUBSETS, kid_subset_size=KID_SIZE, kid_seed=SEED,
                           sampling="torch-fidelity")
    pairs = {"IS": (ours["is_mean"], theirs["inception_score_mean"]),
             "IS std": (ours["is_std"], theirs["inception_score_std"]),
             "FID": (ours["fid"], theirs["frechet_inception_distance"]),
             "KID": (ours["kid_mean"], theirs["kernel_inception_distance_mean"]),
             "precision": (ours["precision"], theirs["precision"]),
             "recall": (ours["recall"], theirs["recall"])}
    print("\ntf1 mode vs torch-fidelity 0.4 (random Inception weights, 30 + 30 images 32x32):")
    for name, (a, b) in pairs.items():
        print(f"  {name:<9} ganbench {a:.9g}  torch-fidelity {b:.9g}  relative difference {abs(a / b - 1):.2e}")
    assert ours["is_mean"] == pytest.approx(theirs["inception_score_mean"], rel=1e-3)
    assert ours["is_std"] == pytest.approx(theirs["inception_score_std"], rel=1e-2)
    assert ours["fid"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-4)
    assert ours["kid_mean"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-3)
    # torch-fidelity returns float32 fractions: the same count of 30 gives the same float32 value
    assert np.float32(ours["precision"]) == np.float32(theirs["precision"])
    assert np.float32(ours["recall"]) == np.float32(theirs["recall"])
    assert 0 < ours["precision"] < 1 and ours["fid"] > 0.1 and ours["is_mean"] > 1.5  # not vacuous
    # the pytorch-fid mode gives another IS on the same images and weights: the modes really differ
    pfid = inception.InceptionFeatures(setup["weights"], allow_download=False)
    other = compute_all(None, inception.extract(setup["fake"], model=pfid, progress=False), ("is",),
                        is_splits=IS_SPLITS, is_seed=SEED, sampling="torch-fidelity")
    assert abs(other["is_mean"] / ours["is_mean"] - 1) > 1e-3


def test_statistics_carry_the_input_mode_and_other_modes_are_refused(tmp_path):
    mu, sigma = np.zeros(3), np.eye(3)
    path = save_statistics(tmp_path / "tf1.npz", mu, sigma, {"source": "x"}, inception_input="tf1")
    with np.load(path) as f:
        assert str(f["inception_input"]) == "tf1" and sorted(f.files) == ["inception_input", "mu", "sigma"]
    meta = load_statistics(path)[2]
    assert meta["inception_input"] == "tf1"
    check_same_input_mode(meta, "tf1", "here")
    with pytest.raises(MetricInputError) as e:
        check_same_input_mode(meta, "pytorch-fid", str(path))
    msg = str(e.value)
    assert "\n" not in msg and "'tf1'" in msg and "--inception-input" in msg
    plain = tmp_path / "pytorch_fid.npz"  # a file as pytorch-fid's --save-stats writes it: no mode entry
    np.savez(plain, mu=mu, sigma=sigma)
    check_same_input_mode(load_statistics(plain)[2], "pytorch-fid", "here")
    with pytest.raises(GanbenchError):
        check_same_input_mode(load_statistics(plain)[2], "tf1", "here")
    with pytest.raises(MetricInputError):
        inception.check_input_mode("tf2")


@pytest.mark.slow
def test_cli_stats_writes_the_mode_and_eval_refuses_another(setup, tmp_path):
    images = tmp_path / "imgs.npz"
    np.savez(images, images=setup["real"][:4])
    stats = tmp_path / "ref_tf1.npz"
    base = [sys.executable, "-m", "ganbench"]
    done = subprocess.run(base + ["stats", str(images), "--out", str(stats), "--inception-weights",
                                  str(setup["weights"]), "--inception-input", "tf1", "--device", "cpu",
                                  "--quiet"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    with np.load(stats) as f:
        assert str(f["inception_input"]) == "tf1"
    refused = subprocess.run(base + ["eval", "samples", str(images), "--ref", str(stats), "--metrics", "fid",
                                     "--inception-weights", str(setup["weights"]), "--no-record", "--quiet"],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "'tf1'" in lines[0] and "'pytorch-fid'" in lines[0], refused.stderr
