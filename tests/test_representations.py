"""Learners that are not GANs (k-means of Coates et al. 2011, pixels): each step against a direct computation,
the fit against scikit-learn's k-means, and the run directory -> checkpoint -> probe chain of the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ganbench.cli import cli
from ganbench.errors import ConfigError
from ganbench.representations import build_learner
from ganbench.representations.kmeans import (
    KMeansFeatures,
    kmeans,
    normalize_patches,
    quadrant_split,
    random_patches,
    triangle,
    zca_fit,
)

pytestmark = pytest.mark.usefixtures("isolated_cache")  # tests/conftest.py


def test_patch_normalisation_is_the_demo_formula():
    x = torch.rand(7, 12, dtype=torch.float64) * 255
    ref = (x.numpy() - x.numpy().mean(1, keepdims=True)) / np.sqrt(x.numpy().var(1, ddof=1, keepdims=True) + 10)
    np.testing.assert_allclose(normalize_patches(x).numpy(), ref, rtol=1e-12)


def test_zca_is_eigen_whitening_with_eps():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 5, generator=g) @ torch.randn(5, 5, generator=g)
    mean, P = zca_fit(x, eps=0.1)
    xn = x.double().numpy()
    cov = np.cov(xn, rowvar=False)
    w, V = np.linalg.eigh(cov)
    ref = V @ np.diag(1 / np.sqrt(w + 0.1)) @ V.T
    np.testing.assert_allclose(mean.numpy(), xn.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(P.numpy(), ref, rtol=1e-4, atol=1e-6)
    # with eps 0 the whitened covariance is the identity
    _, P0 = zca_fit(x, eps=0.0)
    white = (xn - xn.mean(0)) @ P0.double().numpy()
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(5), atol=1e-3)


def test_triangle_activation_against_a_loop():
    g = torch.Generator().manual_seed(1)
    x, c = torch.randn(6, 4, generator=g), torch.randn(5, 4, generator=g)
    out = triangle(x, c).numpy()
    for i in range(6):
        z = np.array([np.linalg.norm(x[i].numpy() - c[k].numpy()) for k in range(5)])
        np.testing.assert_allclose(out[i], np.maximum(0, z.mean() - z), rtol=1e-4, atol=1e-5)
    assert (out > 0).any() and (out == 0).any()


def test_quadrant_split_rounds_halves_up_as_matlab():
    assert quadrant_split(27) == 14 and quadrant_split(26) == 13 and quadrant_split(3) == 2


def fitted_tiny(channels=3, size=10, centroids=6, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (40, channels, size, size), dtype=np.uint8)
    rep = KMeansFeatures(size, channels, centroids=centroids, patch_size=3, patches=400, iterations=5,
                         standardize_images=None)
    info = rep.fit(images, seed=seed)
    return rep, images, info


def direct_encoding(rep: KMeansFeatures, image: np.ndarray) -> np.ndarray:
    """Coates et al.'s encoding of one image written as loops over positions, then quadrant sums."""
    C, H, W = image.shape
    w = rep.patch_size
    ph, pw = H - w + 1, W - w + 1
    mean, P, cents = rep.mean_.double().numpy(), rep.zca_.double().numpy(), rep.centroids_.double().numpy()
    act = np.zeros((ph, pw, len(cents)))
    for r in range(ph):
        for c in range(pw):
            p = image[:, r:r + w, c:c + w].astype(np.float64).reshape(-1)  # channel-major
            p = (p - p.mean()) / np.sqrt(p.var(ddof=1) + 10)
            p = (p - mean) @ P
            z = np.linalg.norm(p[None] - cents, axis=1)
            act[r, c] = np.maximum(0, z.mean() - z)
    hr, hc = int(np.floor(ph / 2 + 0.5)), int(np.floor(pw / 2 + 0.5))
    quads = [act[:hr, :hc], act[:hr, hc:], act[hr:, :hc], act[hr:, hc:]]
    return np.concatenate([q.sum((0, 1)) for q in quads])


def test_kmeans_encoding_against_direct_loops_and_standardisation():
    rep, images, _ = fitted_tiny()
    raw = rep.encode(torch.from_numpy(images[:3]).float()).double().numpy()
    for i in range(3):
        np.testing.assert_allclose(raw[i], direct_encoding(rep, images[i]), rtol=2e-4, atol=2e-3)
    feats = rep.transform(images).numpy()
    assert feats.shape == (40, 4 * 6)
    all_raw = rep.encode(torch.from_numpy(images).float()).double().numpy()
    expect = (all_raw - all_raw.mean(0)) / np.sqrt(all_raw.var(0, ddof=1) + 0.01)
    np.testing.assert_allclose(feats, expect, rtol=1e-3, atol=1e-3)


def lloyd(x: np.ndarray, start: np.ndarray, iterations: int) -> np.ndarray:
    """Lloyd's algorithm written out: nearest centroid by a loop over centroids, then cluster means."""
    c = start.astype(np.float64).copy()
    for _ in range(iterations):
        d = np.stack([((x - ck) ** 2).sum(1) for ck in c], 1)
        labels = d.argmin(1)
        c = np.stack([x[labels == j].mean(0) for j in range(len(c))])
    return c


def test_kmeans_is_lloyd_from_distinct_random_rows():
    g = torch.Generator().manual_seed(3)
    centres = torch.randn(8, 5, generator=g) * 4
    x = (centres[torch.randint(0, 8, (3000,), generator=g)] + torch.randn(3000, 5, generator=g)).float()
    start = x.numpy()[np.random.default_rng(11).choice(3000, 8, replace=False)]
    ours = kmeans(x, 8, 20, seed=11)
    ref = lloyd(x.double().numpy(), start, ours.iterations)
    np.testing.assert_allclose(ours.centroids.numpy(), ref, rtol=1e-4, atol=1e-4)
    labels = ((x.double().numpy()[:, None] - ref[None]) ** 2).sum(2)
    assert ours.inertia == pytest.approx(labels.min(1).mean(), rel=1e-4)
    assert ours.empty_at_end == 0


def test_empty_clusters_are_relocated_not_left_dead():
    x = torch.zeros(60, 3)
    x[20:40] = 1.0
    x[40:] = torch.tensor([5.0, 0.0, 0.0])
    x[59] = torch.tensor([9.0, 9.0, 9.0])  # three groups and an outlier
    start = x.numpy()[np.random.default_rng(0).choice(60, 4, replace=False)]
    assert len(np.unique(start, axis=0)) < 4  # two centroids start on the same point: one cluster is left empty
    fit = kmeans(x, 4, 10, seed=0)
    assert torch.isfinite(fit.centroids).all()
    assert fit.empty_at_end == 0  # each centroid ends with patches: none is dead
    found = {tuple(np.round(c, 3)) for c in fit.centroids.numpy()}
    assert (9.0, 9.0, 9.0) in found and (0.0, 0.0, 0.0) in found and (1.0, 1.0, 1.0) in found


def test_random_patches_are_windows_of_the_images():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 3, 8, 8), dtype=np.uint8)
    patches = random_patches(images, 30, 4, np.random.default_rng(1)).numpy().reshape(30, 3, 4, 4)
    windows = {images[i, :, r:r + 4, c:c + 4].tobytes() for i in range(5) for r in range(5) for c in range(5)}
    assert all(p.astype(np.uint8).tobytes() in windows for p in patches)


def test_bad_learner_settings_are_refused():
    with pytest.raises(ConfigError, match="at least as many patches"):
        build_learner("kmeans", 32, 3, {"centroids": 100, "patches": 50})
    with pytest.raises(ConfigError, match="do not fit"):
        build_learner("kmeans", 4, 3, {"patch_size": 6})
    with pytest.raises(ConfigError, match="takes no option"):
        build_learner("kmeans", 32, 3, {"k": 3})
    rep, images, _ = fitted_tiny()
    with pytest.raises(ConfigError, match="fitted on 3x10x10"):
        rep.transform(np.zeros((2, 3, 12, 12), np.uint8))


def test_pixels_are_the_scaled_image():
    rep = build_learner("pixels", 4, 1, {})
    images = np.arange(32, dtype=np.uint8).reshape(2, 1, 4, 4) * 8
    np.testing.assert_allclose(rep.transform(images).numpy(), images.reshape(2, -1) / 127.5 - 1, atol=1e-6)


def test_a_learners_features_outside_the_cache_leave_no_file_and_equal_the_cached_ones():
    from ganbench import features as feat
    from ganbench.data import load_images

    store = load_images("digits", None, "all", image_size=8, progress=False)
    rep = build_learner("pixels", 8, store.images.shape[1], {})
    folder = feat.cache_dir() / "features"
    scratch = feat.extract_representation(rep, "pixels-8", store, dtype="float32", progress=False, use_cache=False)
    assert folder.is_dir() and not list(folder.iterdir())  # an unnamed scratch file: nothing left behind
    np.testing.assert_allclose(scratch, np.asarray(store.images, np.float32).reshape(len(store), -1) / 127.5 - 1,
                               atol=1e-6)
    cached = feat.extract_representation(rep, "pixels-8", store, dtype="float32", progress=False)
    np.testing.assert_array_equal(scratch, cached)
    assert sorted(p.suffix for p in folder.iterdir()) == [".json", ".npy"]


def test_fit_then_probe_through_the_cli(tmp_path):
    run = tmp_path / "km"
    args = ["train", "--learner", "kmeans", "--dataset", "digits", "--out", str(run), "--learner-arg",
            "centroids=20", "--learner-arg", "patches=3000", "--learner-arg", "iterations=5", "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "80 features" in result.output
    assert (run / "centroids.png").is_file() and (run / "fit.json").is_file()
    fit = json.loads((run / "fit.json").read_text())
    assert fit["settings"]["centroids"] == 20 and fit["wall_time_s"]["fit"] >= 0 and fit["peak_rss_gib"] > 0
    records = tmp_path / "records.jsonl"
    result = CliRunner().invoke(cli, ["eval", "digits", "--checkpoint", str(run / "checkpoints" / "last.pt"),
                                      "--records", str(records), "--quiet", "--C-grid", "0.001,0.01"])
    assert result.exit_code == 0, result.output
    rec = json.loads(records.read_text().splitlines()[-1])
    assert rec["features"]["representation"] == "kmeans" and rec["features"]["dim"] == 80
    assert rec["model"]["learner"] == "kmeans" and rec["training"]["fit"]["iterations"] == 5
    assert rec["checkpoint"]["path"] == str(run / "checkpoints" / "last.pt")
    text = records.read_text()  # portable: the store's cache paths under $GANBENCH_CACHE, not this machine's
    assert "$GANBENCH_CACHE/stores/" in text and str(tmp_path / "cache") not in text
    assert rec["results"]["test_accuracy_mean"] > 80  # 8x8 digits: k-means features separate them well
    # a second evaluation reads the cached features: the same number
    again = CliRunner().invoke(cli, ["eval", "digits", "--checkpoint", str(run / "checkpoints" / "last.pt"),
                                     "--no-record", "--json", "--quiet", "--C-grid", "0.001,0.01"])
    assert json.loads(again.output)["results"] == rec["results"]


@pytest.mark.parametrize("argv, words", [
    (["train", "--learner", "kmeans", "--dataset", "digits", "--learner-arg", "centroids=500", "--learner-arg",
      "patches=100"], "at least as many patches"),
    (["train", "--learner", "kmeans", "--dataset", "digits", "--learner-arg", "patch_size=9"], "do not fit"),
    (["train", "--learner", "kmeans", "--dataset", "digits", "--lr", "0.1"], "--lr do not apply"),
    (["train", "--learner", "nope", "--dataset", "digits"], "unknown learner"),
    (["train", "--learner-arg", "centroids=3", "--dataset", "digits"], "needs --learner"),
])
def test_bad_learner_options_end_in_one_line(tmp_path, argv, words):
    result = CliRunner().invoke(cli, [*argv, "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert words in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_learner_checkpoint_is_refused_where_a_network_is_needed(tmp_path):
    run = tmp_path / "px"
    assert CliRunner().invoke(cli, ["train", "--learner", "pixels", "--dataset", "digits", "--out", str(run),
                                    "--quiet"]).exit_code == 0
    ckpt = str(run / "checkpoints" / "last.pt")
    shown = CliRunner().invoke(cli, ["inspect", ckpt])
    assert shown.exit_code == 0 and "pixels learner fitted on digits: image_size=8, channels=1" in shown.output
    result = CliRunner().invoke(cli, ["sample", ckpt, "--out", str(tmp_path / "g.png")])
    assert result.exit_code == 2 and "no generator or discriminator" in result.output
    result = CliRunner().invoke(cli, ["eval", "digits", "--checkpoint", ckpt, "--layers", "1-2", "--no-record"])
    assert result.exit_code == 2 and "--layers" in result.output
    # images of another size than the learner was fitted on: refused before any data is read
    result = CliRunner().invoke(cli, ["eval", "cifar10", "--checkpoint", ckpt, "--no-record", "--data-root",
                                      str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "8x8" in result.output and "32x32" in result.output, result.output
