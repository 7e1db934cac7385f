"""`ganbench eval samples / quality` and `ganbench stats` end to end, on a random-weights Inception file."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ganbench.cli import cli
from ganbench.metrics.fid import frechet_distance, load_statistics
from ganbench.metrics.inception import write_random_inception_weights

pytestmark = pytest.mark.slow  # Inception passes of the CLI


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return str(write_random_inception_weights(tmp_path_factory.mktemp("w") / "inception.pth", seed=0))


def folder(path, seed, n=12, shift=0):
    path.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = np.clip(rng.normal(120 + shift, 50, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(path / f"{i:03d}.png")
    return path


def test_eval_samples_and_stats_agree(tmp_path, weights, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    a, b = folder(tmp_path / "a", 0), folder(tmp_path / "b", 1, shift=60)
    r = CliRunner().invoke(cli, ["eval", "samples", str(a), "--ref", str(b), "--inception-weights", weights,
                                 "--device", "cpu", "--quiet", "--json", "--no-record", "--is-splits", "2",
                                 "--metrics", "fid,is,kid,pr,dc"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["n_fake"] == 12 and out["n_real"] == 12 and out["fid"] > 0
    assert {"is_mean", "kid_mean", "precision", "recall", "density", "coverage"} <= set(out)
    stats = tmp_path / "b_stats.npz"
    r = CliRunner().invoke(cli, ["stats", str(b), "--out", str(stats), "--inception-weights", weights,
                                 "--device", "cpu", "--quiet"])
    assert r.exit_code == 0, r.output
    mu, sigma, meta = load_statistics(stats)
    assert mu.shape == (2048,) and meta["count"] == 12
    r = CliRunner().invoke(cli, ["eval", "samples", str(a), "--ref", str(stats), "--inception-weights", weights,
                                 "--device", "cpu", "--quiet", "--json", "--no-record", "--metrics", "fid"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["fid"] == pytest.approx(out["fid"], rel=1e-6)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-6)


def test_missing_weights_offline_is_one_line(tmp_path):
    a = folder(tmp_path / "a", 0, n=3)
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), "GANBENCH_INCEPTION_WEIGHTS": "",
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    proc = subprocess.run([sys.executable, "-m", "ganbench", "eval", "samples", str(a), "--ref", str(a),
                           "--device", "cpu", "--no-record", "--quiet"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "pt_inception-2015-12-05-6726825d.pth" in lines[0], proc.stderr


def test_quality_record_keeps_an_imported_checkpoints_provenance(tmp_path, weights, monkeypatch):
    """A checkpoint written by an importer says where its weights came from; the quality record must say the same
    (it used to call every checkpoint a ganbench training run)."""
    import torch

    from ganbench.checkpoint import save_checkpoint
    from ganbench.quality import evaluate_quality
    from ganbench.registry import get_variant

    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    variant = get_variant("dcgan32")
    gen, disc = variant.build(ngf=4, ndf=4, nz=8)
    origin = {"source": "dcgan_code import", "dataset": "imagenet", "steps": None, "seed": None}
    ckpt = save_checkpoint({"model": {"name": "dcgan32", "kwargs": variant.model_kwargs(ngf=4, ndf=4, nz=8),
                                      "origin": {"kind": "builtin"}, "image_size": 32},
                            "G": gen.state_dict(), "D": disc.state_dict(), "step": 0,
                            "provenance": {"training": origin}}, tmp_path / "imported.pt")
    ref = folder(tmp_path / "ref", 0, n=4)
    record = evaluate_quality(checkpoint=str(ckpt), ref=str(ref), n=4, metrics=("fid",), inception_weights=weights,
                              device="cpu", progress=False)
    assert record["training"] == origin
    assert torch.isfinite(torch.tensor(record["results"]["fid"]))


def test_the_inception_score_needs_no_reference(tmp_path, weights, monkeypatch):
    """`eval samples --metrics is` runs without --ref (IS reads the samples alone) and gives the IS of the run with
    a reference; any other metric without --ref ends in one line naming --ref."""
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    a, b = folder(tmp_path / "a", 0), folder(tmp_path / "b", 1, shift=60)
    common = ["--inception-weights", weights, "--device", "cpu", "--quiet", "--json", "--no-record",
              "--is-splits", "2"]
    alone = CliRunner().invoke(cli, ["eval", "samples", str(a), "--metrics", "is", *common])
    assert alone.exit_code == 0, alone.output
    with_ref = CliRunner().invoke(cli, ["eval", "samples", str(a), "--ref", str(b), "--metrics", "is,fid", *common])
    assert json.loads(alone.output)["is_mean"] == pytest.approx(json.loads(with_ref.output)["is_mean"], rel=1e-9)
    assert "fid" not in json.loads(alone.output)
    bad = CliRunner().invoke(cli, ["eval", "samples", str(a), "--metrics", "is,kid", *common])
    assert bad.exit_code == 2 and "--metrics kid compare the samples with a reference: pass --ref" in bad.output
    assert "Traceback" not in bad.output
