"""Inputs a user can get wrong end in one line naming the problem and the fix, exit code 2, no traceback."""

from __future__ import annotations

import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganbench.cli import cli
from ganbench.data.cifar10 import CLASSES as CIFAR_CLASSES

pytestmark = pytest.mark.usefixtures("isolated_cache")  # tests/conftest.py


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
    # data: an image folder with a corrupt image, one with a zero-byte image, a CIFAR-10 tree missing a class,
    # a truncated archive, an idx file with the wrong magic number, a garbage SVHN .mat
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    for name, bad in (("corrupt", b"\x89PNG\r\n\x1a\n garbage"), ("zero", b"")):
        (tmp / name / "cls").mkdir(parents=True)
        rgb.save(tmp / name / "cls" / "good.png")
        (tmp / name / "cls" / "bad.png").write_bytes(bad)
    for split in ("train", "test"):
        for cls in CIFAR_CLASSES[:-1]:  # no "truck"
            (tmp / "cifar_tree" / split / cls).mkdir(parents=True)
            rgb.save(tmp / "cifar_tree" / split / cls / "0.png")
    with tarfile.open(tmp / "whole.tar.gz", "w:gz") as tf:
        for cls in CIFAR_CLASSES:
            rgb.save(tmp / "img.png")
            for i in range(3):
                tf.add(tmp / "img.png", arcname=f"train/{cls}/{i}.png")
    raw = (tmp / "whole.tar.gz").read_bytes()
    (tmp / "truncated.tar.gz").write_bytes(raw[: len(raw) // 2])
    (tmp / "mnist").mkdir()
    for prefix in ("train", "t10k"):  # image files want magic 2051; these carry the labels' 2049
        for kind in ("images-idx3", "labels-idx1"):
            (tmp / "mnist" / f"{prefix}-{kind}-ubyte").write_bytes(struct.pack(">II", 2049, 3) + bytes(3 * 784))
    (tmp / "svhn").mkdir()
    for split in ("train", "test"):
        (tmp / "svhn" / f"{split}_32x32.mat").write_bytes(b"MATLAB 5.0 MAT-file, garbage" + bytes(200))
    # plug-in files: raising on import, not a Variant / not an Objective
    (tmp / "raises.py").write_text("raise RuntimeError('broken plug-in')\n")
    (tmp / "not_variant.py").write_text("THING = 42\n")
    # reference statistics: not an npz at all, and statistics of the wrong dimension
    (tmp / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    np.savez(tmp / "dims7.npz", mu=np.zeros(7), sigma=np.eye(7))
    (tmp / "one_class" / "cls").mkdir(parents=True)  # images without labels to learn from
    for i in range(16):
        rgb.save(tmp / "one_class" / "cls" / f"{i}.png")
    # a folder of generated samples for eval samples
    (tmp / "samples").mkdir()
    for i in range(4):
        rgb.save(tmp / "samples" / f"{i}.png")
    return {}


TRAIN = ["train", "--dataset", "fake", "--max-images", "32", "--batch-size", "16", "--steps", "1", "--quiet"]

TRAIN_DATA = ["train", "--max-images", "32", "--batch-size", "16", "--steps", "1", "--quiet", "--dataset"]
EVAL_CIFAR = ["eval", "cifar10", "--random-init", "dcgan32", "--protocol", "400", "--no-record", "--quiet"]
EVAL_DIGITS = ["eval", "digits", "--random-init", "dcgan-svhn32", "--no-record", "--quiet"]
EVAL_SAMPLES = ["eval", "samples", "{tmp}/samples", "--no-record", "--quiet"]

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
    ("lr decay from without decay", [*TRAIN, "--lr-decay-from", "2", "--out", "{tmp}/r"],
     "give --lr-decay linear too"),
    ("lr decay from past the end", [*TRAIN, "--lr-decay", "linear", "--lr-decay-from", "2", "--out", "{tmp}/r"],
     "--lr-decay-from 2 leaves no step to decay over"),
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
    ("online probe without a D", [*TRAIN, "--objective", "autoencoder", "--online-probe", "--out", "{tmp}/r"],
     "trains no D"),
    ("online probe compiled", [*TRAIN, "--online-probe", "--compile", "--out", "{tmp}/r"], "--compile"),
    ("online probe without labels", [*TRAIN_DATA, "folder", "--data-root", "{tmp}/one_class", "--online-probe",
                                     "--out", "{tmp}/r"], "needs labelled images"),
    ("out under a file", [*TRAIN, "--out", "{tmp}/notes.txt/run"], "is a file, not a folder"),
    ("eval batch size zero", ["eval", "digits", "--random-init", "dcgan-svhn32", "--batch-size", "0"], "--batch-size"),
    ("sample n zero", ["sample", "{tmp}/good.pt", "--n", "0", "--out", "{tmp}/g.png"], "--n"),
    ("compare jobs zero", ["compare", "--preset", "digits", "--jobs", "0", "--out", "{tmp}/c"], "--jobs"),
    ("compare unknown preset", ["compare", "--preset", "cifar", "--out", "{tmp}/c"], "unknown preset 'cifar'"),
    ("compare missing spec", ["compare", "{tmp}/nope.toml", "--out", "{tmp}/c"], "does not exist"),
    ("compare invalid spec", ["compare", "{tmp}/bad_toml.toml", "--out", "{tmp}/c"], "not valid TOML"),
    # data
    ("missing data root", [*TRAIN_DATA, "folder", "--data-root", "{tmp}/nowhere", "--out", "{tmp}/r"],
     "does not exist"),
    ("file as data root", [*TRAIN_DATA, "folder", "--data-root", "{tmp}/notes.txt", "--out", "{tmp}/r"],
     "notes.txt"),
    ("corrupt image", [*TRAIN_DATA, "folder", "--data-root", "{tmp}/corrupt", "--out", "{tmp}/r"], "bad.png"),
    ("zero-byte image", [*TRAIN_DATA, "folder", "--data-root", "{tmp}/zero", "--out", "{tmp}/r"], "bad.png"),
    ("class folder missing", [*EVAL_CIFAR, "--data-root", "{tmp}/cifar_tree"], "missing truck"),
    ("truncated archive", [*TRAIN_DATA, "folder", "--data-root", "{tmp}/truncated.tar.gz", "--out", "{tmp}/r"],
     "truncated.tar.gz"),
    ("idx wrong magic", ["eval", "mnist", "--random-init", "dcgan-svhn32", "--data-root", "{tmp}/mnist",
                         "--no-record", "--quiet"], "magic number"),
    ("garbage .mat", ["eval", "svhn", "--random-init", "dcgan-svhn32", "--data-root", "{tmp}/svhn", "--no-record",
                      "--quiet"], "_32x32.mat"),
    # eval options
    ("layers out of range", [*EVAL_DIGITS, "--layers", "0-9"], "--layers"),
    ("layers malformed", [*EVAL_DIGITS, "--layers", "a,b"], "--layers"),
    ("C grid malformed", [*EVAL_DIGITS, "--C-grid", "1,x"], "--C-grid"),
    ("C grid negative", [*EVAL_DIGITS, "--C-grid", "-1"], "--C-grid"),
    ("C grid nan", [*EVAL_DIGITS, "--C-grid", "nan"], "--C-grid"),
    ("trials zero", [*EVAL_DIGITS, "--trials", "0"], "--trials"),
    ("eval model arg unknown", [*EVAL_DIGITS, "--model-arg", "nfd=3"], "takes no argument"),
    # plug-in files
    ("variant file missing", [*TRAIN, "--variant", "{tmp}/no.py:X", "--model", "x", "--out", "{tmp}/r"],
     "does not exist"),
    ("variant file raises", [*TRAIN, "--variant", "{tmp}/raises.py:X", "--model", "x", "--out", "{tmp}/r"],
     "broken plug-in"),
    ("not a Variant", [*TRAIN, "--variant", "{tmp}/not_variant.py:THING", "--model", "x", "--out", "{tmp}/r"],
     "expected a ganbench Variant"),
    ("objective file raises", [*TRAIN, "--objective-file", "{tmp}/raises.py:X", "--out", "{tmp}/r"],
     "broken plug-in"),
    ("not an Objective", [*TRAIN, "--objective-file", "{tmp}/not_variant.py:THING", "--out", "{tmp}/r"],
     "not_variant.py:THING"),
    # reference statistics and quality options
    ("garbage stats npz", [*EVAL_SAMPLES, "--ref", "{tmp}/garbage.npz"], "garbage.npz"),
    ("stats of wrong dims", [*EVAL_SAMPLES, "--ref", "{tmp}/dims7.npz"], "dims7.npz"),
    ("unknown metric", [*EVAL_SAMPLES, "--ref", "{tmp}/samples", "--metrics", "fid,fud"], "fud"),
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


VALID_ZERO = {"--beta1", "--beta2", "--weight-decay", "--seed"}  # 0 is a legitimate value of these


def _numeric_options(*path: str):
    import click

    command = cli
    for name in path:
        command = command.commands[name]
    return [p.opts[0] for p in command.params
            if isinstance(p, click.Option) and p.type.name in ("integer", "float", "integer range", "float range")]


@pytest.mark.parametrize("path,base", [
    (("train",), [*TRAIN[1:], "--out", "{tmp}/r"]),
    (("eval", "digits"), ["--random-init", "dcgan-svhn32", "--no-record", "--quiet"]),
    (("sample",), ["{tmp}/good.pt", "--out", "{tmp}/g.png"]),
    (("features",), ["{tmp}/good.pt", "--dataset", "digits", "--out", "{tmp}/f.npy"]),
    (("eval", "samples"), ["{tmp}/samples", "--ref", "{tmp}/samples", "--no-record"]),
    (("compare",), ["--preset", "digits", "--out", "{tmp}/c"]),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_every_numeric_option_refuses_zero_negative_nan_and_inf(tmp_path, path, base):
    files(tmp_path)
    options = _numeric_options(*path)
    assert options, path
    for option in options:
        for value in ("0", "-1", "nan", "inf"):
            if value == "0" and option in VALID_ZERO:
                continue
            args = [*path, *[a.replace("{tmp}", str(tmp_path)) for a in base]]
            if option in args:  # the base command line's own value of this option is replaced
                i = args.index(option)
                del args[i:i + 2]
            result = CliRunner().invoke(cli, [*args, option, value])
            text = result.output.strip()
            assert result.exit_code == 2, (option, value, text)
            assert len(text.splitlines()) == 1 and "Traceback" not in text, (option, value, text)
            assert option in text or option.lstrip("-").replace("-", "_") in text or "must" in text, (option, text)
    assert not (tmp_path / "r" / "checkpoints").exists()
