"""Sample-quality metrics: each formula against a direct numpy reference, FID/IS against pytorch-fid and
torch-fidelity on identical (random) Inception weights, one-line errors, and the digits classifier."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from ganbench.errors import GanbenchError
from ganbench.metrics import (
    InceptionWeightsError,
    MetricInputError,
    compute_all,
    density_coverage,
    feature_statistics,
    frechet_distance,
    kernel_inception_distance,
    load_statistics,
    precision_recall,
    save_statistics,
)
from ganbench.metrics import fid as fid_module
from ganbench.metrics.inception_score import inception_score
from ganbench.metrics.kid import mmd2_unbiased
from ganbench.metrics.prdc import prdc

pytorch_fid_score = pytest.importorskip("pytorch_fid.fid_score")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Torch single-threaded: on a shared 2-core machine two contending threads run Inception 2-3x slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def one_line_error(excinfo, *words: str) -> str:
    msg = str(excinfo.value)
    assert isinstance(excinfo.value, GanbenchError)
    assert "\n" not in msg and msg.strip() == msg and msg
    for w in words:
        assert w in msg, (w, msg)
    return msg


def spd_stats(d: int, n: int, seed: int, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) / np.sqrt(d) + shift
    return feature_statistics(a)


# ------------------------------------------------------------------------------------------------ FID


def fid_reference(mu1, s1, mu2, s2):
    """The textbook formula with a general matrix square root (scipy.linalg.sqrtm)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def test_feature_statistics_match_numpy_and_warn_when_too_few_samples():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 8)).astype(np.float32)
    mu, sigma = feature_statistics(x)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-12)
    with pytest.warns(RuntimeWarning, match="fewer samples than dimensions"):
        feature_statistics(rng.standard_normal((6, 8)))


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")
@pytest.mark.parametrize("d,n", [(32, 400), (128, 1000)])
def test_frechet_distance_matches_sqrtm_reference_and_pytorch_fid(d, n):
    mu1, s1 = spd_stats(d, n, 1)
    mu2, s2 = spd_stats(d, n, 2, shift=0.3)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(fid_reference(mu1, s1, mu2, s2), rel=1e-9)
    assert ours == pytest.approx(pytorch_fid_score.calculate_frechet_distance(mu1, s1, mu2, s2), rel=1e-6)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8 * np.trace(s1))


def test_frechet_distance_with_singular_covariance_uses_eigh_route():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((20, 64)), rng.standard_normal((20, 64)) * 1.5 + 0.1  # rank 19 < 64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        (mu1, s1), (mu2, s2) = feature_statistics(a), feature_statistics(b)
    with pytest.raises(np.linalg.LinAlgError):
        scipy.linalg.cholesky(s1)  # so the Cholesky shortcut cannot be what is tested here
    ours = frechet_distance(mu1, s1, mu2, s2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pytorch_fid_score.calculate_frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(ref, rel=1e-6)


def test_frechet_distance_retries_with_eps_when_not_finite(monkeypatch):
    mu1, s1 = spd_stats(8, 100, 1)
    mu2, s2 = spd_stats(8, 100, 2)
    expected = frechet_distance(mu1, s1, mu2, s2)
    real = fid_module._trace_sqrt_product
    calls = []

    def flaky(a, b):
        calls.append(a.copy())
        return float("nan") if len(calls) == 1 else real(a, b)

    monkeypatch.setattr(fid_module, "_trace_sqrt_product", flaky)
    with pytest.warns(RuntimeWarning, match="adding 1e-06 to the diagonal"):
        value = frechet_distance(mu1, s1, mu2, s2)
    assert np.allclose(np.diag(calls[1]) - np.diag(s1), 1e-6)
    assert value == pytest.approx(expected, rel=1e-4)  # eps shifts only the tr sqrt term, by ~d * eps


def test_statistics_files_interoperate_with_pytorch_fid(tmp_path):
    mu, sigma = spd_stats(16, 100, 0)
    path = save_statistics(
        tmp_path / "real", mu, sigma, {"source": "digits", "count": 100, "network": "test"}
    )
    assert path == tmp_path / "real.npz"
    meta = json.loads((tmp_path / "real.npz.json").read_text())
    assert meta["dims"] == 16 and meta["source"] == "digits" and meta["count"] == 100
    # pytorch-fid reads ours ...
    m2, s2 = pytorch_fid_score.compute_statistics_of_path(str(path), None, 50, 16, "cpu")
    np.testing.assert_array_equal(m2, mu)
    np.testing.assert_array_equal(s2, sigma)
    # ... and we read pytorch-fid's (written as its save_fid_stats does), without a sidecar.
    theirs = tmp_path / "theirs.npz"
    np.savez_compressed(theirs, mu=mu, sigma=sigma)
    m3, s3, meta3 = load_statistics(theirs)
    np.testing.assert_array_equal(m3, mu)
    assert meta3 == {}
    m4, s4, meta4 = load_statistics(path)
    np.testing.assert_array_equal(s4, sigma)
    assert meta4["network"] == "test"


def test_statistics_file_errors_are_one_line(tmp_path):
    with pytest.raises(MetricInputError) as e:
        load_statistics(tmp_path / "missing.npz")
    one_line_error(e, "not found")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip\n\x00garbage")
    with pytest.raises(MetricInputError) as e:
        load_statistics(bad)
    one_line_error(e, "corrupt")
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(MetricInputError) as e:
        load_statistics(other)
    one_line_error(e, "'mu' and 'sigma'")


# ------------------------------------------------------------------------------------------------ IS


def is_reference(logits, splits):
    """Salimans et al.'s reference procedure: softmax, consecutive splits, exp(mean KL(p(y|x) || p(y)))."""
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    n, scores = len(p), []
    for k in range(splits):
        part = p[k * n // splits : (k + 1) * n // splits]
        kl = part * (np.log(part) - np.log(part.mean(0, keepdims=True)))
        scores.append(np.exp(kl.sum(1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_matches_reference_and_torch_fidelity():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((503, 1008)) * 3
    ref = is_reference(logits, 10)
    assert inception_score(logits, splits=10, seed=None) == pytest.approx(ref, rel=1e-10)
    perm = np.random.default_rng(7).permutation(len(logits))
    assert inception_score(logits, splits=10, seed=7) == pytest.approx(
        is_reference(logits[perm], 10), rel=1e-10
    )
    assert inception_score(logits, splits=1, seed=3)[0] == pytest.approx(
        is_reference(logits, 1)[0], rel=1e-12
    )
    tf_isc = pytest.importorskip("torch_fidelity.metric_isc")
    theirs = tf_isc.isc_features_to_metric(torch.from_numpy(logits).float(), splits=10, shuffle=False)
    assert inception_score(logits.astype(np.float32), splits=10, seed=None)[0] == pytest.approx(
        theirs["inception_score_mean"], rel=1e-6
    )


def test_inception_score_extremes():
    one_hot = np.full((100, 10), -50.0)
    one_hot[np.arange(100), np.arange(100) % 10] = 50.0
    assert inception_score(one_hot, splits=1)[0] == pytest.approx(10.0, rel=1e-6)
    assert inception_score(np.zeros((100, 10)), splits=2) == pytest.approx((1.0, 0.0))
    with pytest.raises(MetricInputError) as e:
        inception_score(np.zeros((5, 10)), splits=10)
    one_line_error(e, "at least 10 samples")


# ------------------------------------------------------------------------------------------------ KID


def mmd2_reference(x, y):
    d = x.shape[1]
    kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
    m = len(x)
    off = ~np.eye(m, dtype=bool)
    return kxx[off].mean() + kyy[off].mean() - 2 * kxy.mean()


def test_kid_matches_reference_subsets_and_torch_fidelity():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((120, 16)), rng.standard_normal((90, 16)) * 1.2 + 0.1
    draws = np.random.default_rng(5)
    ref = []
    for _ in range(7):
        ix, iy = draws.choice(120, 50, replace=False), draws.choice(90, 50, replace=False)
        ref.append(mmd2_reference(x[ix], y[iy]))
    mean, std = kernel_inception_distance(x, y, subsets=7, subset_size=50, seed=5)
    assert mean == pytest.approx(np.mean(ref), rel=1e-10)
    assert std == pytest.approx(np.std(ref), rel=1e-8)
    # One subset holding every sample is the full-sample unbiased MMD^2, whatever the draw order.
    xs = x[:90]
    full = mmd2_reference(xs, y)
    assert kernel_inception_distance(xs, y, subsets=1, subset_size=1000)[0] == pytest.approx(full, rel=1e-10)
    assert mmd2_unbiased(xs, y) == pytest.approx(full, rel=1e-10)
    tf_kid = pytest.importorskip("torch_fidelity.metric_kid")
    theirs = tf_kid.kid_features_to_metric(
        torch.from_numpy(xs), torch.from_numpy(y), kid_subsets=1, kid_subset_size=90, verbose=False
    )
    assert theirs["kernel_inception_distance_mean"] == pytest.approx(full, rel=1e-8)


# ------------------------------------------------------------------------------------------------ P/R, D/C


def prdc_reference(real, fake, k_pr, k_dc):
    def dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    d_rr, d_ff, d_fr = dist(real, real), dist(fake, fake), dist(fake, real)
    r_real = np.sort(d_rr, axis=1)  # column 0 is the point itself
    r_fake = np.sort(d_ff, axis=1)
    precision = np.mean([(d_fr[j] <= r_real[:, k_pr]).any() for j in range(len(fake))])
    recall = np.mean([(d_fr[:, i] <= r_fake[:, k_pr]).any() for i in range(len(real))])
    density = (d_fr < r_real[None, :, k_dc]).sum() / (k_dc * len(fake))
    coverage = np.mean([d_fr[:, i].min() < r_real[i, k_dc] for i in range(len(real))])
    return precision, recall, density, coverage


@pytest.mark.parametrize("chunk_mb", [256.0, 0.01])  # one chunk, and a few rows at a time
def test_prdc_matches_brute_force(chunk_mb):
    rng = np.random.default_rng(1)
    real = rng.standard_normal((230, 12))
    fake = rng.standard_normal((170, 12)) * 1.3 + 0.4
    out = prdc(real, fake, k_pr=3, k_dc=5, chunk_mb=chunk_mb)
    p, r, d, c = prdc_reference(real, fake, 3, 5)
    assert (out["precision"], out["recall"]) == pytest.approx((p, r), abs=1e-12)
    assert (out["density"], out["coverage"]) == pytest.approx((d, c), abs=1e-12)
    assert 0 < p < 1 and 0 < r < 1 and 0 < c < 1
    assert out["features"] == "inception-pool3" and "VGG-16" in out["features_note"]
    assert precision_recall(real, fake)["recall"] == out["recall"]
    assert density_coverage(real, fake)["density"] == out["density"]


def test_precision_recall_match_torch_fidelity():
    tf_prc = pytest.importorskip("torch_fidelity.metric_prc")
    rng = np.random.default_rng(2)
    real, fake = rng.standard_normal((200, 32)), rng.standard_normal((150, 32)) * 1.2
    precision, recall = tf_prc.calculate_precision_recall_full(  # their convention: generated first
        torch.from_numpy(fake).float(), torch.from_numpy(real).float(), 3
    )
    out = precision_recall(real, fake, k=3)
    assert out["precision"] == pytest.approx(precision, abs=1e-6)  # theirs is a float32 mean
    assert out["recall"] == pytest.approx(recall, abs=1e-6)


# ------------------------------------------------------------------------------------------------ all, errors


def test_compute_all_keys_and_real_stats():
    rng = np.random.default_rng(0)
    real = {"pool3": rng.standard_normal((300, 24)), "logits": rng.standard_normal((300, 10))}
    fake = {"pool3": rng.standard_normal((200, 24)) + 0.2, "logits": rng.standard_normal((200, 10)) * 4}
    out = compute_all(real, fake, kid_subset_size=100, kid_subsets=10)
    assert set(out) == {
        "fid",
        "is_mean",
        "is_std",
        "kid_mean",
        "kid_std",
        "precision",
        "recall",
        "density",
        "coverage",
        "n_fake",
        "n_real",
        "features",
    }
    assert out["n_real"] == 300 and out["n_fake"] == 200
    assert out["fid"] == pytest.approx(
        frechet_distance(*feature_statistics(real["pool3"]), *feature_statistics(fake["pool3"]))
    )
    only = compute_all(None, fake, metrics=("fid", "is"), real_stats=feature_statistics(real["pool3"]))
    assert set(only) == {"fid", "is_mean", "is_std", "n_fake", "features"}
    assert only["fid"] == pytest.approx(out["fid"], rel=1e-12)
    with pytest.raises(MetricInputError) as e:
        compute_all(None, fake, metrics=("kid",))
    one_line_error(e, "real features")
    with pytest.raises(MetricInputError) as e:
        compute_all(real, fake["pool3"], metrics=("is",))
    one_line_error(e, "logits")
    with pytest.raises(MetricInputError) as e:
        compute_all(real, fake, metrics=("fld",))
    one_line_error(e, "unknown metric")


def test_bad_inputs_give_one_line_errors():
    rng = np.random.default_rng(0)
    good = rng.standard_normal((10, 4))
    with pytest.raises(MetricInputError) as e:
        feature_statistics(good[:1])
    one_line_error(e, "at least 2")
    with pytest.raises(MetricInputError) as e:
        frechet_distance(np.zeros(4), np.eye(4), np.zeros(5), np.eye(5))
    one_line_error(e, "different dimensions")
    bad = good.copy()
    bad[3, 1] = np.nan
    with pytest.raises(MetricInputError) as e:
        feature_statistics(bad)
    one_line_error(e, "NaN")
    with pytest.raises(MetricInputError) as e:
        frechet_distance(np.zeros(2), np.array([[1.0, 0], [0, np.inf]]), np.zeros(2), np.eye(2))
    one_line_error(e, "NaN or infinite")
    with pytest.raises(MetricInputError) as e:
        kernel_inception_distance(good, rng.standard_normal((10, 5)))
    one_line_error(e, "dims")
    with pytest.raises(MetricInputError) as e:
        prdc(good[:3], good)
    one_line_error(e, "nearest neighbours")
    with pytest.raises(MetricInputError) as e:
        feature_statistics(np.zeros(5))
    one_line_error(e, "2-D")


# ------------------------------------------------------------------------------------------------ weights

inception = pytest.importorskip("ganbench.metrics.inception")


@pytest.fixture
def no_weights_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv(inception.ENV_WEIGHTS, raising=False)
    return tmp_path


def test_missing_weights_offline_is_one_line_error(no_weights_env, monkeypatch):
    with pytest.raises(InceptionWeightsError) as e:
        inception.InceptionFeatures(allow_download=False)
    one_line_error(
        e, inception.WEIGHTS_FILENAME, inception.WEIGHTS_URL, "hub", "checkpoints", inception.ENV_WEIGHTS
    )

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(InceptionWeightsError) as e:
        inception.locate_inception_weights()
    one_line_error(e, inception.WEIGHTS_FILENAME, inception.WEIGHTS_URL, "could not be downloaded")


def test_weights_lookup_order(no_weights_env, monkeypatch):
    from pytorch_fid.inception import FID_WEIGHTS_URL

    assert inception.WEIGHTS_URL == FID_WEIGHTS_URL
    hub = inception.hub_weights_path()
    assert (
        hub == no_weights_env / "torch_home" / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
    )
    hub.parent.mkdir(parents=True)
    hub.write_bytes(b"x")
    assert inception.locate_inception_weights(allow_download=False) == (hub, "hub-cache")
    env_file = no_weights_env / "env.pth"
    env_file.write_bytes(b"y")
    monkeypatch.setenv(inception.ENV_WEIGHTS, str(env_file))
    assert inception.locate_inception_weights(allow_download=False) == (env_file, "env")
    assert inception.locate_inception_weights(hub, allow_download=False) == (hub, "argument")
    with pytest.raises(InceptionWeightsError) as e:
        inception.locate_inception_weights(no_weights_env / "nope.pth")
    one_line_error(e, "nope.pth", "not found")
    monkeypatch.setenv(inception.ENV_WEIGHTS, str(no_weights_env / "gone.pth"))
    with pytest.raises(InceptionWeightsError) as e:
        inception.locate_inception_weights()
    one_line_error(e, inception.ENV_WEIGHTS, "gone.pth")


def test_corrupt_or_foreign_weights_are_one_line_errors(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"PK\x03\x04 truncated\nzip")
    with pytest.raises(InceptionWeightsError) as e:
        inception.InceptionFeatures(corrupt)
    one_line_error(e, "corrupt", str(corrupt))
    foreign = tmp_path / "foreign.pth"
    torch.save({"conv.weight": torch.zeros(2, 2)}, foreign)
    with pytest.raises(InceptionWeightsError) as e:
        inception.InceptionFeatures(foreign)
    one_line_error(e, "fc.weight", inception.WEIGHTS_FILENAME)


# ------------------------------------------------------------------------------------------------ peers
# pytorch-fid, torch-fidelity and ganbench on ONE random-weights FID-Inception file and the same PNGs.

N_PER_FOLDER = 24


def _write_folders(root: Path) -> tuple[Path, Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    a, b = root / "a", root / "b"
    a.mkdir()
    b.mkdir()
    for i in range(N_PER_FOLDER):
        # a: smooth colour fields; b: stripes of random frequency and colour plus noise (a few greyscale).
        coarse = torch.from_numpy(rng.random((1, 3, 4, 4))).float()
        img = torch.nn.functional.interpolate(coarse, size=32, mode="bilinear", align_corners=False)[0]
        Image.fromarray((img.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(a / f"{i:03d}.png")
        t = np.linspace(0, 1, 32)
        wave = np.sin(2 * np.pi * rng.uniform(1, 6) * (t[:, None] * rng.uniform(-1, 1) + t[None, :]))
        col = rng.random(3)
        arr = (0.5 + 0.4 * wave[..., None] * col + 0.05 * rng.standard_normal((32, 32, 3))).clip(0, 1)
        arr = (arr * 255).astype(np.uint8)
        if i % 8 == 0:
            Image.fromarray(arr.mean(2).astype(np.uint8)).save(b / f"{i:03d}.png")
        else:
            Image.fromarray(arr).save(b / f"{i:03d}.png")
    return a, b


@pytest.fixture(scope="module")
def peer_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("peers")
    torch_home = root / "torch_home"
    weights = inception.write_random_inception_weights(
        torch_home / "hub" / "checkpoints" / inception.WEIGHTS_FILENAME, seed=0
    )
    a, b = _write_folders(root)
    return {"root": root, "torch_home": torch_home, "weights": weights, "a": a, "b": b}


def _pytorch_fid_cli(setup, dims: int) -> float:
    env = dict(
        os.environ,
        TORCH_HOME=str(setup["torch_home"]),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
    )
    # Any download attempt would fail through this dead proxy: pytorch-fid must use the cached file.
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env[var] = "http://127.0.0.1:9"
    env.pop("no_proxy", None)
    env.pop("NO_PROXY", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytorch_fid",
            str(setup["a"]),
            str(setup["b"]),
            "--device",
            "cpu",
            "--dims",
            str(dims),
            "--num-workers",
            "0",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return float(re.search(r"FID:\s+(\S+)", proc.stdout).group(1))


@pytest.fixture(scope="module")
def our_features(peer_setup):
    model = inception.InceptionFeatures(peer_setup["weights"], allow_download=False)
    fa = inception.extract(peer_setup["a"], batch_size=50, model=model, progress=False, dims=(64,))
    fb = inception.extract(peer_setup["b"], batch_size=50, model=model, progress=False, dims=(64,))
    return model, fa, fb


@pytest.mark.slow
def test_random_inception_features_are_informative(our_features):
    model, fa, fb = our_features
    assert model.info["weights_official"] is False and len(model.info["weights_sha256"]) == 64
    assert fa["pool3"].shape == (N_PER_FOLDER, 2048) and fa["logits"].shape == (N_PER_FOLDER, 1008)
    # The random network must tell images apart, or the peer comparisons would be vacuous.
    both = np.concatenate([fa["pool3"], fb["pool3"]]).astype(np.float64)
    assert np.median(both.std(0)) > 0.05 * np.median(np.abs(both).mean(0))
    assert np.median(np.concatenate([fa["dims"][64], fb["dims"][64]]).std(0)) > 1e-3
    assert len(set(fb["logits"].argmax(1))) >= 3


@pytest.mark.slow
def test_fid_matches_pytorch_fid_command_line(peer_setup, our_features):
    _, fa, fb = our_features
    mtime = peer_setup["weights"].stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # fewer samples than dims, on purpose (speed)
        ours = {
            2048: frechet_distance(*feature_statistics(fa["pool3"]), *feature_statistics(fb["pool3"])),
            64: frechet_distance(*feature_statistics(fa["dims"][64]), *feature_statistics(fb["dims"][64])),
        }
    for dims in (2048, 64):
        theirs = _pytorch_fid_cli(peer_setup, dims)
        assert ours[dims] == pytest.approx(theirs, rel=1e-4), dims
        assert ours[dims] > 0
    assert peer_setup["weights"].stat().st_mtime_ns == mtime  # nobody re-downloaded or rewrote the file


@pytest.mark.slow
def test_inception_score_matches_pytorch_fid_network(peer_setup, our_features, monkeypatch):
    """IS (one split) from pytorch-fid's own network, which loads the file from TORCH_HOME, offline."""
    from pytorch_fid.inception import InceptionV3

    _, _, fb = our_features
    monkeypatch.setenv("TORCH_HOME", str(peer_setup["torch_home"]))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    net = InceptionV3([3]).eval()
    files = sorted(peer_setup["b"].glob("*.png"))
    pool3 = pytorch_fid_score.get_activations(
        files, net, batch_size=50, dims=2048, device="cpu", num_workers=0
    )
    np.testing.assert_allclose(fb["pool3"], pool3, rtol=1e-5, atol=1e-6)
    fc = torch.load(peer_setup["weights"], weights_only=True)["fc.weight"].double().numpy()
    is_direct = is_reference(pool3 @ fc.T, 1)[0]
    is_ours = inception_score(fb["logits"], splits=1)[0]
    assert is_ours == pytest.approx(is_direct, rel=1e-3)
    assert is_ours > 1.5


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")  # torch-fidelity's 4 workers
def test_inception_score_close_to_torch_fidelity(peer_setup, our_features):
    """Same weights file, same 1008 bias-free logits, but torch-fidelity resizes like TF1 (its own bilinear on
    0..255 values, then (x - 128) / 128) where pytorch-fid and ganbench use torch's bilinear on
    x / 255 * 2 - 1.
    For these 32x32 images (upsampled ~9x) the inputs differ slightly, so the scores are close, not equal
    (random weights: a few % apart; the gap is printed with -s). This is the default pytorch-fid input mode;
    the tf1 mode equals torch-fidelity (tests/test_metrics_tf1.py)."""
    tfid = pytest.importorskip("torch_fidelity")
    _, _, fb = our_features
    m = tfid.calculate_metrics(
        input1=str(peer_setup["b"]),
        isc=True,
        cuda=False,
        cache=False,
        verbose=False,
        feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=str(peer_setup["weights"]),
        isc_splits=1,
        samples_find_ext="png",
    )
    is_ours = inception_score(fb["logits"], splits=1)[0]
    gap = abs(m["inception_score_mean"] / is_ours - 1)
    print(
        f"torch-fidelity vs ganbench IS (random weights, 32x32 PNGs): {m['inception_score_mean']:.4f} vs "
        f"{is_ours:.4f} ({gap:.1%})"
    )
    assert gap < 0.25


def test_extract_inputs_and_preprocessing(peer_setup):
    model = inception.InceptionFeatures(peer_setup["weights"], allow_download=False)
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (3, 1, 20, 20), dtype=np.uint8)
    out = model(grey)
    rgb = model(np.repeat(grey, 3, axis=1))
    torch.testing.assert_close(out["pool3"], rgb["pool3"], rtol=0, atol=0)
    as_float = model(torch.from_numpy(grey).float() / 255)
    torch.testing.assert_close(as_float["logits"], out["logits"])
    # an iterable of single images of two sizes, re-batched
    items = [grey[0], grey[1], rng.integers(0, 256, (1, 24, 24), dtype=np.uint8)]
    ext = inception.extract(iter(items), batch_size=2, model=model, progress=False, dims=(192, 768))
    assert ext["pool3"].shape == (3, 2048) and ext["dims"][192].shape == (3, 192)
    assert ext["dims"][768].shape == (3, 768) and ext["n"] == 3
    np.testing.assert_allclose(ext["pool3"][:2], out["pool3"][:2].numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(MetricInputError) as e:
        model(torch.rand(2, 3, 8, 8) * 2 - 1)
    one_line_error(e, "[0, 1]")
    with pytest.raises(MetricInputError) as e:
        model(np.zeros((2, 8, 8, 3), dtype=np.uint8))
    one_line_error(e, "(N, C, H, W)")
    with pytest.raises(MetricInputError) as e:
        inception.extract(iter([]), model=model, progress=False)
    one_line_error(e, "no images")


# ------------------------------------------------------------------------------------------------ digits

digits = pytest.importorskip("ganbench.metrics.digits_classifier")


@pytest.fixture(scope="module")
def digit_data():
    images, labels = digits.digits_images()
    train, test = digits.split_indices(labels, seed=0)
    return images, labels, train, test


def test_shipped_digits_classifier_loads_weights_only_and_is_accurate(digit_data):
    blob = torch.load(digits.DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
    assert blob["meta"]["arch"] == digits.ARCH and digits.DEFAULT_WEIGHTS.stat().st_size < 1_000_000
    images, labels, train, test = digit_data
    model, meta = digits.load_digits_classifier()
    logits = digits.digits_features(images[test], model)["logits"]
    accuracy = float((logits.argmax(1) == labels[test]).mean())
    assert accuracy >= 0.95
    assert accuracy == pytest.approx(meta["test_accuracy"], abs=1e-9)


def test_digits_is_and_fid(digit_data):
    images, _, train, test = digit_data
    is_mean, _ = digits.digits_is(images)
    assert 8.0 < is_mean <= 10.0
    as_float = images.astype(np.float32) / 127.5 - 1  # the demo generator's [-1, 1] range
    assert digits.digits_is(as_float)[0] == pytest.approx(is_mean, rel=1e-5)
    noise = np.random.default_rng(0).integers(0, 256, (len(test), 1, 32, 32), dtype=np.uint8)
    close = digits.digits_fid(images[train], images[test])
    far = digits.digits_fid(images[train], noise)
    assert close < 0.05 * far
    m = digits.digits_metrics(images[train], images[test])
    assert m["digits_fid"] == pytest.approx(close) and set(m) >= {"digits_is_mean", "digits_is_std"}
    with pytest.raises(MetricInputError) as e:
        digits.digits_is(images.astype(np.float32))  # 0..255 floats
    one_line_error(e, "[-1, 1]")


def test_digits_images_match_the_demo_data():
    data_digits = pytest.importorskip("ganbench.data.digits")
    reader = data_digits.READER
    decoded = reader.read(reader.locate(None, "all", False), 32, None)
    ours, labels = digits.digits_images(32)
    np.testing.assert_array_equal(decoded.labels, labels)
    np.testing.assert_array_equal(np.concatenate([arr for _, arr in decoded.chunks]), ours)
