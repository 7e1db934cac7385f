"""Features (pooling, BN statistics, cache) and the protocols, checked against direct computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from ganbench import features as feat
from ganbench.cli import cli
from ganbench.data import load_images
from ganbench.errors import ConfigError
from ganbench.features import FeatureSpec, extract_features, parse_layers, pool_maps, train_batch_statistics
from ganbench.probe.l2svm import L2SVM
from ganbench.probe.protocols import (
    ProbeSettings,
    authors_svhn_split,
    class_balanced_sample,
    full_protocol,
    per_class_protocol,
    shuffled_split,
)
from ganbench.registry import get_variant

pytestmark = pytest.mark.usefixtures("isolated_cache")  # tests/conftest.py


def small_disc(seed=0):
    torch.manual_seed(seed)
    return get_variant("dcgan32").build(ngf=8, ndf=8, nz=8, channels=1)[1]


def test_pool_maps_is_blockwise_max_channel_major():
    x = torch.randn(2, 3, 16, 16)
    ref = x.numpy().reshape(2, 3, 4, 4, 4, 4).max(axis=(3, 5)).reshape(2, -1)
    small = torch.randn(2, 5, 4, 4)
    out = pool_maps([x, small]).numpy()
    assert out.shape == (2, 3 * 16 + 5 * 16)
    np.testing.assert_array_equal(out[:, :48], ref)
    np.testing.assert_array_equal(out[:, 48:], small.reshape(2, -1).numpy())


def test_dcgan32_feature_dim_and_layer_selection():
    _, disc = get_variant("dcgan32").build()
    assert feat.feature_dim(disc, [1, 2, 3, 4, 5, 6]) == 28672
    assert feat.feature_dim(disc, [1, 2, 3, 4]) == (128 + 128 + 256 + 256) * 16
    assert parse_layers("1-4", 6) == [1, 2, 3, 4]
    assert parse_layers("1,3,5", 6) == [1, 3, 5]
    assert parse_layers(None, 3) == [1, 2, 3]
    for bad in ("0-2", "7", "a-b", "2,2"):
        with pytest.raises(ConfigError):
            parse_layers(bad, 6)


def test_train_batch_statistics_match_a_direct_computation():
    disc = small_disc()
    images = np.random.default_rng(0).integers(0, 256, (300, 1, 32, 32), dtype=np.uint8)
    stats = train_batch_statistics(disc, images, batch_size=128)
    # layer 2's BN input is conv2(lrelu(conv1(x))), computed batch by batch (128, 128, 44 images), then averaged
    conv1, conv2 = disc.blocks[0][0], disc.blocks[1][0]
    means, variances = [], []
    with torch.no_grad():
        for s in range(0, 300, 128):
            x = torch.from_numpy(images[s:s + 128]).float() / 127.5 - 1
            pre = conv2(F.leaky_relu(conv1(x), 0.2))
            means.append(pre.double().mean((0, 2, 3)))
            variances.append(pre.double().var((0, 2, 3), unbiased=False))
    torch.testing.assert_close(stats[0][0], torch.stack(means).mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stats[0][1], torch.stack(variances).mean(0), rtol=1e-5, atol=1e-6)
    assert len(stats) == 5
    assert torch.equal(disc.blocks[1][1].running_mean, torch.zeros(8))  # the module itself is left untouched


def test_batch_moments_equal_the_float64_mean_and_biased_variance_in_every_layout(monkeypatch):
    monkeypatch.setattr(feat, "_MOMENT_ROWS", 100)  # several blocks and a short last one
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, 7, 9, generator=g) * 3 + 1e4  # a large mean: one-pass E[x^2] - E[x]^2 fails at 1e-11
    for t in (x, x.contiguous(memory_format=torch.channels_last), x[:, :, 0, :], x[:, :, 0, 0]):
        mean, var = feat.batch_moments(t)
        dims = [0] + list(range(2, t.dim()))
        assert mean.dtype == var.dtype == torch.float64 and mean.shape == (5,)
        torch.testing.assert_close(mean, t.double().mean(dims), rtol=1e-13, atol=0)
        torch.testing.assert_close(var, t.double().var(dims, unbiased=False), rtol=1e-11, atol=0)


def test_extract_features_running_mode_equals_manual_and_is_cached(monkeypatch):
    disc = small_disc()
    store = load_images("digits", None, "all", image_size=32, progress=False)
    spec = FeatureSpec("test-identity", [1, 2, 3, 4, 5, 6], "running", "float32")
    out = extract_features(disc, store, spec, batch_size=500, progress=False)
    disc.eval()
    with torch.no_grad():
        x = torch.from_numpy(np.array(store.images[:7])).float() / 127.5 - 1
        manual = pool_maps(disc.feature_maps(x)).numpy()
    np.testing.assert_allclose(out[:7], manual, rtol=1e-5, atol=1e-6)
    assert out.shape == (1797, (8 + 8 + 16 + 16 + 32 + 32) * 16)

    def boom(*a, **k):
        raise AssertionError("recomputed")

    monkeypatch.setattr(feat, "pool_maps", boom)
    again = extract_features(disc, store, spec, progress=False)
    assert isinstance(again, np.memmap)
    np.testing.assert_array_equal(again, out)
    # a partial cache (sidecar gone) is rebuilt rather than trusted
    for side in (feat.cache_dir() / "features").glob("*.json"):
        side.unlink()
    with pytest.raises(AssertionError, match="recomputed"):
        extract_features(disc, store, spec, progress=False)


def test_features_outside_the_cache_leave_no_file_behind_and_equal_the_cached_ones():
    # use_cache=False (a curve point's rows): the matrix lives in an unnamed scratch file, not under a cache name
    # that nobody would look up again (such files filled a disk: about 280 MB per curve point at width 32)
    disc = small_disc()
    store = load_images("digits", None, "all", image_size=32, progress=False)
    spec = FeatureSpec("scratch", [2, 4], "running", "float32")
    folder = feat.cache_dir() / "features"
    scratch = extract_features(disc, store, spec, progress=False, use_cache=False)
    assert folder.is_dir() and not list(folder.iterdir())
    assert scratch.shape == (1797, (8 + 16) * 16) and not scratch.flags.writeable
    cached = extract_features(disc, store, spec, progress=False)
    np.testing.assert_array_equal(scratch, cached)
    assert sorted(p.suffix for p in folder.iterdir()) == [".json", ".npy"]


@pytest.mark.parametrize("use_cache", [True, False])
def test_a_full_disk_stops_feature_extraction_before_its_first_batch_and_leaves_nothing(monkeypatch, use_cache):
    # the matrix's blocks are allocated before any mapped write: a full disk is an OSError (ENOSPC, naming the
    # folder), which the CLI prints as one line, rather than a SIGBUS in the middle of the writes
    import errno
    import os

    disc = small_disc()
    store = load_images("digits", None, "all", image_size=32, progress=False)
    folder = feat.cache_dir() / "features"

    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    batches = []
    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    monkeypatch.setattr(feat, "pool_maps", lambda *a, **k: batches.append(1))
    with pytest.raises(OSError) as caught:
        extract_features(disc, store, FeatureSpec("full", [2], "running", "float32"), progress=False,
                         use_cache=use_cache)
    assert caught.value.errno == errno.ENOSPC and str(folder) in str(caught.value.filename)
    assert not batches
    assert not list(folder.iterdir())  # no matrix, no temporary file, no sidecar


def test_train_batch_statistics_are_computed_only_when_the_features_are_not_cached():
    disc = small_disc()
    store = load_images("digits", None, "all", image_size=32, progress=False)
    calls = []

    def stats():
        calls.append(1)
        return train_batch_statistics(disc, np.asarray(store.images), 128)

    spec = FeatureSpec("lazy", [2, 4], "train-batches", "float32", calibration="digits:all")
    first = extract_features(disc, store, spec, bn_stats_values=stats, progress=False)
    again = extract_features(disc, store, spec, bn_stats_values=stats, progress=False)
    assert len(calls) == 1  # the second call found the cache: no forward pass over the training images
    np.testing.assert_array_equal(first, again)
    direct = extract_features(disc, store, spec, bn_stats_values=stats(), progress=False, use_cache=False,
                              out=feat.cache_dir() / "direct.npy")
    np.testing.assert_array_equal(first, direct)
    # the channels_last layout used on the CPU is undone afterwards, and a net already in it is left in it
    assert all(p.is_contiguous() for p in disc.parameters())
    disc.to(memory_format=torch.channels_last)
    extract_features(disc, store, spec, bn_stats_values=stats(), progress=False, use_cache=False,
                     out=feat.cache_dir() / "nhwc.npy")
    assert disc.blocks[1][0].weight.is_contiguous(memory_format=torch.channels_last)


def test_float16_features_and_batch_mode_differ_from_running():
    disc = small_disc()
    store = load_images("digits", None, "all", image_size=32, progress=False)
    f16 = extract_features(disc, store, FeatureSpec("x", [6], "running", "float16"), progress=False)
    f32 = extract_features(disc, store, FeatureSpec("x", [6], "running", "float32"), progress=False)
    assert f16.dtype == np.float16
    np.testing.assert_allclose(f16.astype(np.float32), f32, rtol=2e-3, atol=2e-3)
    batch = extract_features(disc, store, FeatureSpec("x", [6], "batch", "float32"), batch_size=64, progress=False)
    assert not np.allclose(batch, f32)


def test_batch_mode_draws_its_batches_from_a_seeded_permutation_not_the_class_sorted_store_order():
    # "batch" normalises each image with its batch's statistics. Image folders are stored class by class, so
    # store-order batches would carry the class in those statistics (a label leak): each batch is drawn from
    # feat.batch_order's permutation and each row goes back to its image's place.
    from ganbench.data import ImageStore

    disc = small_disc()
    digits = load_images("digits", None, "all", image_size=32, progress=False)
    order = np.argsort(digits.labels[:200], kind="stable")  # a class-sorted store, as an image folder is
    store = ImageStore(np.asarray(digits.images[:200])[order], digits.labels[:200][order], digits.classes,
                       {"source": "digits", "split": "sorted", "fingerprint": "sorted"})
    got = extract_features(disc, store, FeatureSpec("x", [4, 6], "batch", "float32"), batch_size=64,
                           progress=False, use_cache=False)
    perm = feat.batch_order(200, "batch")
    assert not np.array_equal(perm, np.arange(200)) and feat.batch_order(200, "running") is None
    with torch.no_grad(), feat.frozen_batchnorm(disc, train=True):
        for k in range(0, 200, 64):
            idx = np.sort(perm[k:k + 64])
            assert len(set(store.labels[idx])) >= (8 if len(idx) == 64 else 5)  # every batch mixes the classes
            x = feat.to_input(store.images[idx], disc.channels, torch.device("cpu"))
            maps = disc.feature_maps(x)
            want = pool_maps([maps[3], maps[5]]).numpy()
            np.testing.assert_allclose(got[idx], want, rtol=1e-3, atol=1e-4)  # NHWC vs NCHW kernels
    assert FeatureSpec("x", [6], "batch").key(store) != FeatureSpec("x", [6], "running").key(store)


def test_splits_and_sampling():
    val, pool = shuffled_split(100, 30, seed=1)
    assert len(val) == 30 and len(pool) == 70 and not set(val) & set(pool)
    np.testing.assert_array_equal(np.sort(np.concatenate([val, pool])), np.arange(100))
    from sklearn.utils import shuffle

    expected = shuffle(np.arange(50), random_state=np.random.RandomState(42))
    v, p = authors_svhn_split(50, 10)
    np.testing.assert_array_equal(np.concatenate([v, p]), expected)
    import random

    labels = np.repeat(np.arange(5), 20)
    idx = class_balanced_sample(labels, np.arange(100), 7, random.Random(0))
    assert np.bincount(labels[idx]).tolist() == [7] * 5 and len(set(idx)) == 35
    with pytest.raises(ConfigError, match="fewer than the protocol.s 30 per class"):
        class_balanced_sample(labels, np.arange(100), 30, random.Random(0))


def _blobs(n_per_class=60, d=20, k=4, sep=3.0, seed=0):
    centers = np.random.default_rng(100).normal(0, sep, (k, d))  # the same classes for train and test
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per_class)
    X = centers[y] + rng.normal(0, 1, (len(y), d))
    return X.astype(np.float32), y


def test_full_protocol_picks_C_on_validation_only():
    X, y = _blobs()
    Xt, yt = _blobs(seed=1)
    val, pool = shuffled_split(len(y), 60, 0)
    settings = ProbeSettings(Cs=(1e-4, 1e-2, 1.0), backend="sklearn")
    a = full_protocol(X, y, Xt, yt, validation=val, pool=pool, settings=settings)
    rng = np.random.default_rng(3)
    b = full_protocol(X, y, Xt, rng.permutation(yt), validation=val, pool=pool, settings=settings)
    assert a["svm"]["chosen_C"] == b["svm"]["chosen_C"]  # test labels cannot move the choice
    assert a["results"]["test_accuracy_mean"] > 90 and b["results"]["test_accuracy_mean"] < 50
    best = max(a["svm"]["validation_accuracy"].values())
    assert a["svm"]["validation_accuracy"][repr(a["svm"]["chosen_C"])] == best
    # where the time went: every C of the grid, together within the selection's wall time
    seconds = a["svm"]["fit_seconds"]
    assert set(seconds) == {repr(c) for c in settings.Cs} and all(v >= 0 for v in seconds.values())
    assert sum(seconds.values()) <= a["wall_time_s"]["select_C"] + 0.01  # rounded to 0.01 s: tiny fits may be 0


def test_full_protocol_torch_refit_matches_a_cold_fit():
    X, y = _blobs(n_per_class=80, sep=0.6)
    Xt, yt = _blobs(n_per_class=40, sep=0.6, seed=1)
    val, pool = shuffled_split(len(y), 100, 0)
    out = full_protocol(X, y, Xt, yt, validation=val, pool=pool,
                        settings=ProbeSettings(Cs=(1e-3, 1e-1), backend="torch"))
    cold = L2SVM(C=out["svm"]["chosen_C"], backend="torch").fit(X, y)  # what the warm-started refit must reach
    assert out["results"]["test_accuracy_mean"] == pytest.approx(100 * cold.score(Xt, yt), abs=0.3)
    assert out["settings"]["train_size"] == len(y)
    assert out["svm"]["solvers"] == {"0.001": "primal", "0.1": "primal"}  # 180 pool rows > 20 features


def test_per_class_protocol_statistics():
    X, y = _blobs(n_per_class=80, sep=1.0)
    Xt, yt = _blobs(n_per_class=50, sep=1.0, seed=1)
    val, pool = shuffled_split(len(y), 80, 0)
    settings = ProbeSettings(Cs=(1e-3, 1e-1), backend="sklearn", seed=5)
    out = per_class_protocol(X, y, Xt, yt, validation=val, pool=pool, per_class=5, trials=6, settings=settings)
    trials = np.asarray(out["results"]["per_trial"])
    assert len(trials) == 6 and len(np.unique(trials)) > 1
    assert out["results"]["test_accuracy_mean"] == pytest.approx(trials.mean(), abs=1e-3)
    assert out["results"]["test_accuracy_std"] == pytest.approx(trials.std(), abs=1e-3)
    assert out["results"]["test_accuracy_ci95"] == pytest.approx(1.96 * trials.std(), abs=1e-3)
    again = per_class_protocol(X, y, Xt, yt, validation=val, pool=pool, per_class=5, trials=6, settings=settings)
    assert again["results"]["per_trial"] == out["results"]["per_trial"]  # seeded
    err = per_class_protocol(X, y, Xt, yt, validation=val, pool=pool, per_class=5, trials=2, test_trials=4,
                             settings=settings, report="error")
    assert len(err["results"]["per_trial"]) == 4 and "test_error_ci95" in err["results"]
    # the authors' SVHN loop: `trials` validation scores for every C, and the fitting time of each C
    assert [len(v) for v in err["svm"]["validation_accuracy_per_trial"].values()] == [2, 2]
    assert out["svm"]["solvers"] == {"0.001": "primal", "0.1": "primal"}  # LinearSVC, 20 rows, 20 features
    for rec in (out, err):
        seconds = rec["svm"]["fit_seconds"]
        assert set(seconds) == {"0.001", "0.1"} and sum(seconds.values()) <= rec["wall_time_s"]["select_C"] + 0.01


def test_eval_digits_cli_writes_a_record_and_a_table_row(tmp_path):
    records = tmp_path / "records" / "digits.jsonl"
    result = CliRunner().invoke(cli, [
        "eval", "digits", "--random-init", "dcgan-svhn32", "--C-grid", "1e-3,1e-1", "--device", "cpu",
        "--records", str(records), "--quiet", "--json", "--layers", "1-2"])
    assert result.exit_code == 0, result.output
    rec = json.loads(result.output)
    assert rec["protocol"] == "digits" and rec["features"]["layers"] == [1, 2]
    assert rec["features"]["dim"] == (64 + 128) * 16
    assert rec["results"]["test_accuracy_mean"] > 80
    assert rec["settings"]["test_size"] == 540 and rec["training"]["source"] == "random init"
    assert json.loads(records.read_text().splitlines()[0])["record_id"]


def test_model_arg_configures_the_random_init_model(tmp_path):
    result = CliRunner().invoke(cli, [
        "eval", "digits", "--random-init", "dcgan-svhn32", "--model-arg", "ndf=16", "--model-arg", "channels=1",
        "--C-grid", "1e-2", "--device", "cpu", "--no-record", "--quiet", "--json", "--layers", "1-2"])
    assert result.exit_code == 0, result.output
    rec = json.loads(result.output)
    assert rec["features"]["dim"] == (16 + 32) * 16  # half of the default width's (64 + 128) * 16
    assert rec["model"]["kwargs"]["ndf"] == 16 and rec["model"]["kwargs"]["channels"] == 1


@pytest.mark.parametrize("args, needle", [
    (["--random-init", "dcgan-svhn32", "--model-arg", "widht=3"], "widht"),
    (["--random-init", "dcgan-svhn32", "--model-arg", "ndf"], "KEY=VALUE"),
])
def test_bad_model_arg_is_one_line_exit_2(args, needle):
    result = CliRunner().invoke(cli, ["eval", "digits", *args, "--device", "cpu", "--no-record", "--quiet"])
    assert result.exit_code == 2 and needle in result.output
    assert "Traceback" not in result.output


def test_eval_needs_exactly_one_model_source():
    result = CliRunner().invoke(cli, ["eval", "digits", "--device", "cpu"])
    assert result.exit_code == 2


def _one_line_exit_2(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_eval_errors_are_one_line_exit_2(tmp_path):
    from test_data import write_cifar_pickles

    write_cifar_pickles(tmp_path / "small" / "cifar-10-batches-py", per_batch=6)  # 30 train, 6 test images
    base = ["--device", "cpu", "--no-record", "--quiet"]
    run = CliRunner().invoke
    # missing dataset: names the path and how to get the data
    _one_line_exit_2(run(cli, ["eval", "cifar10", "--random-init", "dcgan32", "--data-root",
                               str(tmp_path / "nowhere"), *base]), "nowhere", "cifar-10-batches-py")
    # a 64x64 model on 32x32 CIFAR-10: refused before any work, with the way out
    _one_line_exit_2(run(cli, ["eval", "cifar10", "--random-init", "dcgan64", "--data-root",
                               str(tmp_path / "small"), *base]), "64x64", "32x32", "--allow-resize")
    # too few images for the protocol
    _one_line_exit_2(run(cli, ["eval", "cifar10", "--protocol", "400", "--random-init", "dcgan32", "--data-root",
                               str(tmp_path / "small"), *base]), "10000", "only 30", "complete dataset")


@pytest.mark.slow
def test_allow_resize_evaluates_and_says_so_in_the_record():
    result = CliRunner().invoke(cli, ["eval", "digits", "--random-init", "dcgan64", "--layers", "1", "--C-grid",
                                      "1e-2", "--device", "cpu", "--no-record", "--quiet", "--json"])
    assert result.exit_code == 0, result.output  # digits are always upscaled: no flag needed
    rec = json.loads(result.output)
    assert "images resized from 8x8 to 64x64 for the model" in rec["notes"]
    assert rec["data"]["train"]["image_size"] == 64


def test_bf16_autocast_features_follow_float32_to_bf16_precision_and_are_cached_apart():
    # --amp bf16 runs both passes (BN statistics, extraction) under bfloat16 autocast. The results follow the
    # float32 ones to bfloat16's precision (8 bits of mantissa), far beyond float rounding, and are cached under
    # their own key, so a float32 run never picks up a bf16 matrix or the other way round.
    disc = small_disc()
    store = load_images("digits", None, "all", image_size=32, progress=False)
    images = np.asarray(store.images)
    s32 = train_batch_statistics(disc, images, 128)
    sbf = train_batch_statistics(disc, images, 128, amp="bf16")
    for (m32, v32), (mbf, vbf) in zip(s32, sbf):
        assert mbf.dtype == m32.dtype == torch.float64
        assert float((mbf - m32).abs().max()) <= 0.02 * float(v32.sqrt().max())
        torch.testing.assert_close(vbf, v32, rtol=0.03, atol=0)
    assert max(float((b[1] / a[1] - 1).abs().max()) for a, b in zip(s32, sbf)) > 1e-4  # autocast really ran
    base = dict(identity="amp", layers=[1, 2, 3, 4, 5, 6], bn_stats="train-batches", dtype="float32",
                calibration="digits:all")
    f32 = extract_features(disc, store, FeatureSpec(**base), bn_stats_values=s32, progress=False)
    fbf = extract_features(disc, store, FeatureSpec(**base, amp="bf16"), bn_stats_values=sbf, progress=False)
    assert FeatureSpec(**base).key(store) != FeatureSpec(**base, amp="bf16").key(store)
    rel = np.abs(fbf - f32).max() / np.abs(f32).max()
    assert 1e-4 < rel < 0.05, rel
    sidecars = {json.loads(p.read_text())["amp"] for p in (feat.cache_dir() / "features").glob("*.json")}
    assert sidecars == {"off", "bf16"}
    with pytest.raises(ConfigError, match="--amp"):
        extract_features(disc, store, FeatureSpec(**base, amp="fp16"), bn_stats_values=s32, progress=False)


def test_per_class_protocol_reads_only_the_rows_its_subsets_and_validation_name():
    # SelectedRows holds the features of the rows a trial reads; the protocol gives the very numbers of the whole
    # matrix, and reading any other row is an error, not a silent zero
    from ganbench.probe.protocols import SelectedRows, per_class_subsets

    rng = np.random.default_rng(0)
    n, d = 600, 24
    y = rng.integers(0, 3, size=n)
    X = (rng.normal(size=(n, d)) + y[:, None]).astype(np.float32)
    X_test, y_test = X[:50] + 0.1, y[:50]
    validation, pool = shuffled_split(n, 200, seed=3)
    settings = ProbeSettings(Cs=(0.01, 0.1), seed=5)
    whole = per_class_protocol(X, y, X_test, y_test, validation=validation, pool=pool, per_class=20, trials=2,
                               settings=settings)
    subsets = per_class_subsets(y, pool, 20, 2, seed=5)
    needed = np.unique(np.concatenate([validation, *subsets]))
    assert len(needed) == 200 + 2 * 60 - len(np.intersect1d(*subsets))
    rows = SelectedRows(X[needed], needed, n)
    part = per_class_protocol(rows, y, X_test, y_test, validation=validation, pool=pool, per_class=20, trials=2,
                              settings=settings)
    assert part["results"] == whole["results"] and part["svm"]["chosen_C"] == whole["svm"]["chosen_C"]
    np.testing.assert_array_equal(rows[needed[::-1]], X[needed[::-1]])
    other = np.setdiff1d(np.arange(n), needed)[:1]
    with pytest.raises(IndexError):
        rows[other]


@pytest.mark.slow
def test_a_curve_point_extracts_only_the_rows_its_trial_reads_with_the_same_numbers(tmp_path):
    # mnist's protocol (100 per class, 10,000 validation images, subsets tested) on an idx fixture of 12,000
    # training images: the curve point reads validation + one trial's 1,000 images and the test set
    from test_data import write_mnist

    from ganbench.evaluate import evaluate_representation, load_discriminator

    write_mnist(tmp_path / "mnist", "train", 12000, gz=True, seed=1)
    write_mnist(tmp_path / "mnist", "t10k", 500, gz=True, seed=2)
    d = load_discriminator(random_init="dcgan32", model_kwargs={"ngf": 8, "ndf": 8, "nz": 8, "channels": 1})
    common = dict(trials=1, C_grid=[1e-3, 1e-2], device="cpu", progress=False, calibration_images=2048)
    whole = evaluate_representation("mnist", d, str(tmp_path / "mnist"), **common)
    cached = sorted((feat.cache_dir() / "features").iterdir())
    light = evaluate_representation("mnist", d, str(tmp_path / "mnist"), needed_rows_only=True, **common)
    assert sorted((feat.cache_dir() / "features").iterdir()) == cached  # a curve point's features are not kept
    assert light["features"]["train_rows_extracted"] == 10000 + 1000
    assert light["features"]["calibration_images"] == whole["features"]["calibration_images"] == 2048
    assert light["results"] == whole["results"]
    assert light["svm"]["validation_accuracy"] == whole["svm"]["validation_accuracy"]
    assert any("BN statistics from 2048 calibration images" in n for n in light["notes"])
    assert any("features of the 11000 training images the 1 trial(s)" in n for n in light["notes"])
    # the statistics of fewer images are another calibration: other features, so other numbers
    full_stats = evaluate_representation("mnist", d, str(tmp_path / "mnist"), trials=1, C_grid=[1e-3, 1e-2],
                                         device="cpu", progress=False)
    assert "calibration_images" not in full_stats["features"]
    assert full_stats["svm"]["validation_accuracy"] != whole["svm"]["validation_accuracy"]
    with pytest.raises(ConfigError, match="few-label protocols that test their selection subsets"):
        evaluate_representation("digits", d, None, needed_rows_only=True, device="cpu", progress=False)
