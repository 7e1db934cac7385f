"""The command line, through click's runner and as a real subprocess: outputs, files, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from ganbench.cli import cli

HERE = Path(__file__).parent
SMALL = ["--model", "dcgan32", "--ngf", "8", "--ndf", "8", "--nz", "16", "--dataset", "fake", "--max-images", "64",
         "--batch-size", "16", "--device", "cpu", "--quiet"]


pytestmark = pytest.mark.usefixtures("isolated_cache")  # tests/conftest.py


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "ganbench", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def assert_one_line_error(proc, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_models_json_lists_dcgan32():
    result = CliRunner().invoke(cli, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["dcgan32"]["feature_dim"] == 28672
    assert rows["dcgan32"]["image_size"] == 32 and rows["dcgan32"]["nz"] == 256
    assert rows["dcgan-svhn32"]["feature_dim"] == 7168
    assert rows["dcgan64"]["image_size"] == 64 and rows["dcgan64"]["nz"] == 100


def test_models_table():
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0
    line = next(ln for ln in result.output.splitlines() if ln.startswith("dcgan32 "))
    assert "28,672" in line and "256" in line


def test_train_then_sample_and_interpolate(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", *SMALL, "--steps", "6", "--checkpoint-every", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "trained 6 steps" in result.output
    ckpt = out / "checkpoints" / "last.pt"
    grid = tmp_path / "grid.png"
    result = CliRunner().invoke(cli, ["sample", str(ckpt), "--n", "9", "--out", str(grid), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert Image.open(grid).size == (3 * 34 + 2, 3 * 34 + 2)
    walks = tmp_path / "walks.png"
    result = CliRunner().invoke(cli, ["sample", str(ckpt), "--n", "2", "--interpolate", "--walk-steps", "5",
                                      "--out", str(walks), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert Image.open(walks).size == (5 * 34 + 2, 2 * 34 + 2)


def test_train_with_config_file_and_resume(tmp_path):
    cfg = tmp_path / "settings.toml"
    cfg.write_text('model = "dcgan32"\nngf = 8\nndf = 8\nnz = 16\ndataset = "fake"\nmax_images = 64\n'
                   'batch_size = 16\ndevice = "cpu"\nsteps = 4\n')
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["train", "--config", str(cfg), "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["train", "--out", str(out), "--resume", "--steps", "6", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "trained 6 steps" in r.output
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 6


def test_train_with_variant_file(tmp_path):
    r = CliRunner().invoke(cli, [
        "train", "--variant", f"{HERE / 'variant_file_example.py'}:WIDE_D", "--model", "filevariant16",
        "--dataset", "digits", "--batch-size", "32", "--steps", "3", "--device", "cpu", "--quiet",
        "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    grid = Image.open(tmp_path / "run" / "samples" / "step_0000003.png")
    assert grid.size == (8 * 18 + 2, 8 * 18 + 2)


@pytest.mark.slow
def test_missing_data_is_one_line_exit_2(tmp_path):
    proc = run("train", "--dataset", "cifar10", "--data-root", "/nonexistent", "--steps", "1",
               "--out", str(tmp_path / "run"))
    assert_one_line_error(proc, "/nonexistent", "cifar")
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


@pytest.mark.slow
def test_bad_option_is_one_line_exit_2(tmp_path):
    assert_one_line_error(run("train", "--bogus", "--out", str(tmp_path / "x")), "--bogus")
    assert_one_line_error(run("train", "--amp", "fp8", "--out", str(tmp_path / "x")), "fp8")
    assert_one_line_error(run("train", "--model", "nope", *SMALL[2:], "--steps", "1", "--out",
                              str(tmp_path / "y")), "unknown model 'nope'")


@pytest.mark.slow
def test_existing_run_dir_is_one_line_exit_2(tmp_path):
    out = tmp_path / "run"
    assert run("train", *SMALL, "--steps", "2", "--out", str(out)).returncode == 0
    assert_one_line_error(run("train", *SMALL, "--steps", "2", "--out", str(out)), "--overwrite")


@pytest.mark.slow
def test_bad_checkpoint_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert_one_line_error(run("sample", str(bad), "--out", str(tmp_path / "g.png")), "bad.pt")
    assert not (tmp_path / "g.png").exists()


@pytest.mark.slow
def test_unknown_config_key_is_one_line_exit_2(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("stepz = 3\n")
    assert_one_line_error(run("train", "--config", str(cfg), "--out", str(tmp_path / "r")), "stepz")


@pytest.mark.slow
def test_demo_runs_offline_and_reports(tmp_path):
    proc = run("demo", "--out", str(tmp_path / "demo"), "--steps", "12", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "sample grids" in proc.stdout and "curves.png" in proc.stdout
    assert "digits-FID" in proc.stdout and "digits-IS" in proc.stdout and "NOT Inception" in proc.stdout
    assert (tmp_path / "demo" / "curves.png").is_file()
    assert (tmp_path / "demo" / "samples" / "step_0000012.png").is_file()
    # the trained D and a random D of the same architecture, both scored on the digits protocol
    line = next(ln for ln in proc.stdout.splitlines() if ln.strip().startswith("representation (digits"))
    assert "trained D" in line and "randomly initialised D" in line
    table = (tmp_path / "demo" / "representation.md").read_text()
    rows = [ln for ln in table.splitlines() if ln.startswith("| dcgan-svhn32")]
    assert len(rows) == 2 and "random init" in rows[1]
    accs = [float(r.rstrip(" |").rsplit("|", 1)[1]) for r in rows]
    assert all(50 < a <= 100 for a in accs)  # 10 classes: chance is 10%
    records = [json.loads(ln) for ln in (tmp_path / "demo" / "records" / "digits.jsonl").read_text().splitlines()]
    assert [r["results"]["test_accuracy_mean"] for r in records] == pytest.approx(accs, abs=0.01)
    assert records[0]["model"]["kwargs"] == records[1]["model"]["kwargs"]


def test_reproduce_paper_says_what_it_skips(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    r = CliRunner().invoke(cli, ["reproduce", "paper", "--data-root", str(tmp_path / "nodata"), "--models",
                                 str(models), "--records", str(tmp_path / "results" / "records"), "--quiet"])
    assert r.exit_code == 0, r.output
    skipped = [ln for ln in r.output.splitlines() if "SKIPPED" in ln]
    assert [ln.split(":")[0] for ln in skipped] == ["cifar10-full", "cifar10-400", "svhn-1000"]
    assert (tmp_path / "results" / "tables" / "cifar10.md").is_file()


def test_cli_choices_and_defaults_come_from_the_library_tables():
    from ganbench import choices
    from ganbench.cli import cli
    from ganbench.config import TrainConfig
    from ganbench.features import BN_MODES, FEATURE_DTYPES
    from ganbench.metrics.compute import METRICS
    from ganbench.metrics.inception import FID_DIMS
    from ganbench.probe.l2svm import BACKENDS

    # the library validates against the same tuples the CLI offers
    assert BN_MODES == choices.BN_STATS and tuple(FEATURE_DTYPES) == choices.FEATURE_DTYPES
    assert METRICS == choices.QUALITY_METRICS and FID_DIMS == choices.FID_DIMS and BACKENDS == choices.SVM_BACKENDS
    cifar = {p.name: p for p in cli.commands["eval"].commands["cifar10"].params}
    assert tuple(cifar["bn_stats"].type.choices) == BN_MODES and cifar["bn_stats"].default == "train-batches"
    assert tuple(cifar["feature_dtype"].type.choices) == tuple(FEATURE_DTYPES)
    assert tuple(cifar["svm_backend"].type.choices) == BACKENDS
    quality = {p.name: p for p in cli.commands["eval"].commands["quality"].params}
    assert [int(d) for d in quality["fid_dims"].type.choices] == list(FID_DIMS)
    assert quality["metrics"].default == ",".join(METRICS)
    from ganbench.metrics.inception import INPUT_MODES

    assert tuple(quality["inception_input"].type.choices) == tuple(INPUT_MODES) == choices.INCEPTION_INPUTS
    # train's --help shows TrainConfig's own defaults
    text = CliRunner().invoke(cli, ["train", "--help"], terminal_width=200).output
    defaults = TrainConfig()
    for words in (f"Minibatch size. [{defaults.batch_size}]", f"[{defaults.model}]",
                  f"Steps between checkpoints. [{defaults.checkpoint_every}]", f"[{defaults.n_samples}]"):
        assert words in text, words
