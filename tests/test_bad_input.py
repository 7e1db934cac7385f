"""Inputs a user can get wrong end in one line naming the problem and the fix, exit code 2, no traceback."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ganbench.cli import cli


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))


class Boom:
    def __reduce__(self):  # a pickle that would run code when loaded without weights_only
        return (Path.write_text, (Path("/tmp/ganbench-pwned"), "ran"))


def files(tmp: Path) -> dict[str, Path]:
    (tmp / "notes.txt").write_text("not a checkpoint\n")
    (tmp / "empty.pt").write_bytes(b"")
    torch.save({"weight": torch.zeros(2)}, tmp / "state_dict.pt")
    with open(tmp / "evil.pt", "wb") as fh:
        pickle.dump({"model": Boom(), "G": None, "D": None}, fh)
    good = tmp / "good.pt"
    torch.save({"a": torch.zeros(1000)}, good)
    (tmp / "truncated.pt").write_bytes(good.read_bytes()[:300])
    (tmp / "bad_type.toml").write_text('steps = "many"\n')
    (tmp / "bad_toml.toml").write_text("steps = = 3\n")
    (tmp / "unknown_key.toml").write_text("stepz = 3\n")
    (tmp / "a_dir").mkdir()
    return {}


TRAIN = ["train", "--dataset", "fake", "--max-images", "32", "--batch-size", "16", "--steps", "1", "--quiet"]

CASES = [
    # (id, argv with {tmp} placeholders, words the message must contain)
    ("text checkpoint", ["eval", "digits", "--checkpoint", "{tmp}/notes.txt"], "not a readable ganbench checkpoint"),
    ("empty checkpoint", ["eval", "digits", "--checkpoint", "{tmp}/empty.pt"], "not a readable ganbench checkpoint"),
    ("truncated checkpoint", ["eval", "digits", "--checkpoint", "{tmp}/truncated.pt"], "not a readable"),
    ("plain state_dict", ["eval", "digits", "--checkpoint", "{tmp}/state_dict.pt"], "lacks the keys"),
    ("code-running pickle", ["eval", "digits", "--checkpoint", "{tmp}/evil.pt"], "not a readable"),
    ("missing checkpoint", ["eval", "digits", "--checkpoint", "{tmp}/nope.pt"], "does not exist"),
    ("directory as checkpoint", ["sample", "{tmp}/a_dir", "--out", "{tmp}/g.png"], "directory"),
    ("lr nan", [*TRAIN, "--lr", "nan", "--out", "{tmp}/r"], "--lr must be a finite number"),
    ("lr inf", [*TRAIN, "--lr", "inf", "--out", "{tmp}/r"], "--lr must be a finite number"),
    ("lr negative", [*TRAIN, "--lr", "-1", "--out", "{tmp}/r"], "--lr must be positive"),
    ("beta1 out of range", [*TRAIN, "--beta1", "1.5", "--out", "{tmp}/r"], "--beta1 must lie in [0, 1)"),
    ("weight decay negative", [*TRAIN, "--weight-decay", "-1e-5", "--out", "{tmp}/r"], "--weight-decay"),
    ("batch size zero (train)", [*TRAIN[:-3], "--batch-size", "0", "--steps", "1", "--out", "{tmp}/r"],
     "batch-size must be at least 1"),
    ("steps zero", [*TRAIN[:-3], "--steps", "0", "--out", "{tmp}/r"], "--steps must be at least 1"),
    ("epochs nan", [*TRAIN[:-3], "--epochs", "nan", "--out", "{tmp}/r"], "--epochs must be a finite number"),
    ("d-steps zero", [*TRAIN, "--d-steps", "0", "--out", "{tmp}/r"], "--d-steps must be at least 1"),
    ("unknown objective", [*TRAIN, "--objective", "wgan", "--out", "{tmp}/r"], "unknown objective 'wgan'"),
    ("bad objective option", [*TRAIN, "--objective-arg", "gamma=1", "--out", "{tmp}/r"], "takes no option gamma"),
    ("malformed objective option", [*TRAIN, "--objective-arg", "gamma", "--out", "{tmp}/r"], "is not KEY=VALUE"),
    ("unknown model argument", [*TRAIN, "--model-arg", "d_nrom=layer", "--out", "{tmp}/r"], "takes no argument"),
    ("missing objective file", [*TRAIN, "--objective-file", "{tmp}/no.py:X", "--out", "{tmp}/r"], "does not exist"),
    ("unknown model", [*TRAIN, "--model", "dcgan99", "--out", "{tmp}/r"], "unknown model 'dcgan99'"),
    ("config wrong type", [*TRAIN, "--config", "{tmp}/bad_type.toml", "--out", "{tmp}/r"], "steps must be an integer"),
    ("config invalid toml", [*TRAIN, "--config", "{tmp}/bad_toml.toml", "--out", "{tmp}/r"], "not valid TOML"),
    ("config unknown key", [*TRAIN, "--config", "{tmp}/unknown_key.toml", "--out", "{tmp}/r"], "unknown key(s) stepz"),
    ("config missing", [*TRAIN, "--config", "{tmp}/nope.toml", "--out", "{tmp}/r"], "does not exist"),
    ("out is a file", [*TRAIN, "--out", "{tmp}/notes.txt"], "is a file"),
    ("out under a file", [*TRAIN, "--out", "{tmp}/notes.txt/run"], "is a file, not a folder"),
    ("eval batch size zero", ["eval", "digits", "--random-init", "dcgan-svhn32", "--batch-size", "0"], "--batch-size"),
    ("sample n zero", ["sample", "{tmp}/good.pt", "--n", "0", "--out", "{tmp}/g.png"], "--n"),
    ("compare jobs zero", ["compare", "--preset", "digits", "--jobs", "0", "--out", "{tmp}/c"], "--jobs"),
    ("compare unknown preset", ["compare", "--preset", "cifar", "--out", "{tmp}/c"], "unknown preset 'cifar'"),
    ("compare missing spec", ["compare", "{tmp}/nope.toml", "--out", "{tmp}/c"], "does not exist"),
    ("compare invalid spec", ["compare", "{tmp}/bad_toml.toml", "--out", "{tmp}/c"], "not valid TOML"),
]


@pytest.mark.parametrize("argv,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_ends_in_one_line_and_exit_code_2(tmp_path, argv, words):
    files(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    result = CliRunner().invoke(cli, args)
    text = result.output.strip()
    assert result.exit_code == 2, text
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    assert text.startswith("ganbench: error:") and words in text, text
    assert not Path("/tmp/ganbench-pwned").exists()  # the pickle's code never ran
    assert not (tmp_path / "r" / "checkpoints").exists()  # nothing half-written left as if valid
