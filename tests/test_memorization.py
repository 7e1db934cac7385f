"""Memorisation: the data-copying test C_T (Meehan et al. 2020), nearest neighbours, pictures, record and table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy.stats import mannwhitneyu

from ganbench.cli import cli
from ganbench.errors import ConfigError
from ganbench.memorization import (
    _heldout_note,
    data_copying_test,
    evaluate_memorization,
    mann_whitney_z,
    nearest_distances,
    train_test_images,
)
from ganbench.report.tables import render_tables


def test_mann_whitney_z_matches_scipy_and_its_sign():
    rng = np.random.default_rng(0)
    test, gen = rng.random(40), rng.random(60) * 0.8  # generated a little closer
    gen[:5] = test[:5]  # ties
    u = mannwhitneyu(gen, test).statistic  # scipy: #(gen > test) + ties / 2
    expected = (u - 40 * 60 / 2) / np.sqrt(40 * 60 * (40 + 60 + 1) / 12)
    assert mann_whitney_z(test, gen) == pytest.approx(expected, rel=1e-12)
    assert mann_whitney_z(test, gen) < 0  # closer generated distances give a negative Z
    assert mann_whitney_z(test, test + 1) > 0
    assert mann_whitney_z(test, test) == pytest.approx(0.0, abs=1e-12)


def test_nearest_distances_match_brute_force():
    rng = np.random.default_rng(1)
    q, r = rng.standard_normal((30, 5)), rng.standard_normal((50, 5))
    d, i = nearest_distances(q, r, k=3, chunk_mb=0.001)  # tiny chunks: several of them
    full = np.linalg.norm(q[:, None] - r[None], axis=2)
    np.testing.assert_array_equal(i, np.argsort(full, axis=1)[:, :3])
    np.testing.assert_allclose(d, np.sort(full, axis=1)[:, :3], rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def digits_split():
    train, test, _ = train_test_images("digits", None, 8)  # native 8x8: fast pixel features
    return train, test


def test_copying_generator_is_flagged_and_a_heldout_one_is_not(digits_split):
    train, test = digits_split
    f_train = train.reshape(len(train), -1) / 255.0
    f_test = test.reshape(len(test), -1) / 255.0
    half = len(f_test) // 2
    heldout, unseen = f_test[:half], f_test[half:]  # P_n for the test; unseen images for an honest "generator"
    rng = np.random.default_rng(0)
    copies = f_train[rng.choice(len(f_train), 400, replace=True)]  # returns training images exactly
    copying = data_copying_test(f_train, heldout, copies, cells=3, min_cell_samples=10)
    honest = data_copying_test(f_train, heldout, unseen, cells=3, min_cell_samples=10)
    print(f"\nC_T: copying generator {copying['C_T']:.2f}, held-out generator {honest['C_T']:.2f}")
    assert copying["C_T"] < -3 and all(c["z"] < -3 for c in copying["cells"] if c["kept"])
    assert abs(honest["C_T"]) < 3
    assert sum(c["n_test"] for c in copying["cells"]) == half and copying["cells_kept"] >= 2
    # the weights of the kept cells are their shares of the held-out images
    kept = [c for c in copying["cells"] if c["kept"]]
    manual = sum(c["weight"] * c["z"] for c in kept) / sum(c["weight"] for c in kept)
    assert copying["C_T"] == pytest.approx(manual)
    with pytest.raises(ConfigError) as e:
        data_copying_test(f_train, heldout, copies[:5], cells=3, min_cell_samples=10)
    assert "--min-cell-samples" in str(e.value) and "\n" not in str(e.value)


def test_evaluate_memorization_end_to_end_on_given_images(digits_split, tmp_path):
    train, test = train_test_images("digits", None, 16)[:2]
    rng = np.random.default_rng(0)
    copies = train[rng.choice(len(train), 300, replace=True)]
    rec = evaluate_memorization(dataset="digits", fake_images=copies, features="pixels", cells=3,
                                min_cell_samples=10, out=str(tmp_path / "copy"), progress=False, device="cpu")
    r = rec["results"]
    assert r["C_T"] < -3 and r["exact_copies"] == 300 and r["gen_nn_median"] < 1e-5
    assert r["share_below_test_p1"] == 1.0 and r["n_train"] == len(train) and r["n_test"] == len(test)
    assert "C_T << 0" in rec["sign_convention"] and rec["feature_space"] == "pixels"
    assert Image.open(rec["outputs"]["neighbours"]).size[1] > 16 * 64  # 16 rows of 64-px tiles
    assert Image.open(rec["outputs"]["distances"]).format == "PNG"
    fair = evaluate_memorization(dataset="digits", fake_images=test, features="pixels", cells=3,
                                 min_cell_samples=10, out=str(tmp_path / "fair"), progress=False, device="cpu")
    assert abs(fair["results"]["C_T"]) < 1e-9 and fair["results"]["exact_copies"] == 0  # same as held-out: Z = 0
    tables = render_tables([rec, {**fair, "label": "held-out images", "date": "2030-01-01"}])
    md = tables["memorization.md"]
    assert "C_T << 0" in md and "Meehan" in md
    rows = [ln for ln in md.splitlines() if ln.startswith("| 300 given images") or ln.startswith("| held-out")]
    assert len(rows) == 2 and "| -" in rows[0] and "| 0.00 |" in rows[1]


def test_heldout_note():
    assert "C_T understates" in _heldout_note("digits", {"dataset": "digits", "split": "all"}, "test")
    assert "void" in _heldout_note("cifar10", {"dataset": "cifar10", "split": "test"}, "test")
    assert _heldout_note("cifar10", {"dataset": "cifar10", "split": "train"}, "test") is None


def test_cli_on_a_checkpoint_with_d_features(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    small = ["--model", "dcgan32", "--ngf", "8", "--ndf", "8", "--nz", "16", "--dataset", "fake", "--max-images", "32",
             "--batch-size", "16", "--device", "cpu", "--quiet"]
    result = CliRunner().invoke(cli, ["train", *small, "--steps", "2", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    records = tmp_path / "mem.jsonl"
    args = ["eval", "memorization", "--checkpoint", str(ckpt), "--dataset", "fake", "--n", "60", "--features",
            "discriminator", "--cells", "2", "--min-cell-samples", "5", "--device", "cpu", "--records", str(records),
            "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "C_T = " in result.output and "discriminator features" in result.output and "sign:" in result.output
    rec = json.loads(records.read_text().splitlines()[0])
    assert rec["kind"] == "memorization" and rec["results"]["n_generated"] == 60
    assert rec["checkpoint"]["sha256"] and (tmp_path / "run" / "memorization" / "neighbours.png").is_file()
    result = CliRunner().invoke(cli, args[:-1] + ["--test-split", "nope"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "nope" in lines[0] and "--test-split" in lines[0]
