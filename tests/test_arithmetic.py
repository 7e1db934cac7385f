"""Vector arithmetic on z (paper, figure 7): the expression, the z file, and the picture's pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganbench.arithmetic import Term, combine, load_z, parse_expression, save_z, vector_arithmetic
from ganbench.checkpoint import build_from_checkpoint, load_checkpoint
from ganbench.cli import cli
from ganbench.errors import ConfigError
from ganbench.models.base import generate

SMALL = ["--model", "dcgan32", "--ngf", "8", "--ndf", "8", "--nz", "16", "--dataset", "fake", "--max-images", "32",
         "--batch-size", "16", "--device", "cpu", "--quiet"]


def test_parse_expression():
    terms = parse_expression("3,7,12 - 5,9,20 + 1,2,4", 21)
    assert terms == [Term(1, (3, 7, 12)), Term(-1, (5, 9, 20)), Term(1, (1, 2, 4))]
    assert parse_expression("-0, 1 +2", 3) == [Term(-1, (0, 1)), Term(1, (2,))]
    for bad, words in [("", "empty"), ("3,7 - ", "without a group"), ("3,x", "not a group"),
                       ("3 * 4", "not a group"), ("1,21", "index 21 is out of range"), ("1,,2", "not a group")]:
        with pytest.raises(ConfigError) as e:
            parse_expression(bad, 21)
        assert words in str(e.value) and "\n" not in str(e.value), (bad, str(e.value))


def test_combine_is_the_signed_sum_of_group_means():
    z = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    means, y = combine(z, parse_expression("0,1,2 - 3,4,5 + 9", 10))
    expected = (z[0] + z[1] + z[2]) / 3 - (z[3] + z[4] + z[5]) / 3 + z[9]
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    np.testing.assert_allclose(means[1], z[3:6].mean(0), rtol=1e-6)


def test_z_file_checks(tmp_path):
    z = torch.randn(5, 16)
    path = save_z(z, tmp_path / "z.npy")
    np.testing.assert_array_equal(load_z(path, 16), z.numpy())
    for args, words in [((tmp_path / "none.npy", 16), "not found"), ((path, 8), "(N, 8)")]:
        with pytest.raises(ConfigError) as e:
            load_z(*args)
        assert words in str(e.value)
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(ConfigError):
        load_z(tmp_path / "junk.npy", 16)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("arith") / "run"
    result = CliRunner().invoke(cli, ["train", *SMALL, "--steps", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out / "checkpoints" / "last.pt"


def test_sample_saves_z_and_arithmetic_draws_the_result(checkpoint, tmp_path):
    grid, zfile, pic = tmp_path / "grid.png", tmp_path / "z.npy", tmp_path / "arith.png"
    result = CliRunner().invoke(cli, ["sample", str(checkpoint), "--n", "12", "--out", str(grid), "--save-z",
                                      str(zfile), "--device", "cpu", "--seed", "3"])
    assert result.exit_code == 0, result.output
    gen, _, _ = build_from_checkpoint(load_checkpoint(checkpoint))
    z = np.load(zfile)
    expected_z = gen.sample_z(12, generator=torch.Generator().manual_seed(3), device="cpu")
    np.testing.assert_array_equal(z, expected_z.numpy())  # the z of the grid's images, in grid order
    # 12 images -> 3 per row (round(sqrt 12)) of 64-px cells under a 14-px number band
    assert Image.open(grid).size == (3 * 66 + 2, 4 * (64 + 14 + 2) + 2)

    summary = vector_arithmetic(checkpoint, zfile, "0,1,2 - 3,4,5 + 6,7,8", pic, bn="running", device="cpu")
    y = (z[0:3].mean(0) - z[3:6].mean(0) + z[6:9].mean(0)).astype(np.float32)
    np.testing.assert_allclose(summary["y"], y, rtol=1e-5, atol=1e-6)
    png = np.asarray(Image.open(pic).convert("RGB")).astype(int)

    def crop(name: str) -> np.ndarray:
        left, top, size = summary["boxes"][name]
        return png[top:top + size, left:left + size]

    def expected(vectors: np.ndarray) -> np.ndarray:
        x = generate(gen, torch.from_numpy(vectors), bn="running")[0]
        img = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy().astype(int)
        return img.repeat(2, axis=0).repeat(2, axis=1)  # 32 px shown at 64

    assert np.abs(crop("result 0") - expected(y[None])).max() <= 1  # G(Y) in the centre
    assert np.abs(crop("mean 1") - expected(z[3:6].mean(0, keepdims=True))).max() <= 1
    assert np.abs(crop("group 2 image 1") - expected(z[7:8])).max() <= 1
    assert len([k for k in summary["boxes"] if k.startswith("result")]) == 9
    # without noise the 8 neighbours are G(Y) itself
    summary = vector_arithmetic(checkpoint, zfile, "0,1,2 - 3,4,5 + 6,7,8", pic, bn="running", noise=0.0,
                                device="cpu")
    png = np.asarray(Image.open(pic).convert("RGB")).astype(int)
    assert all(np.abs(crop(f"result {r}") - crop("result 0")).max() <= 1 for r in range(1, 9))


def test_arithmetic_cli_errors_are_one_line(checkpoint, tmp_path):
    zfile = tmp_path / "z.npy"
    save_z(torch.zeros(4, 16), zfile)
    for expr, words in [("0,1 - 9", "out of range"), ("a - b", "not a group")]:
        result = CliRunner().invoke(cli, ["arithmetic", str(checkpoint), "--z", str(zfile), "--expr", expr,
                                          "--out", str(tmp_path / "a.png"), "--device", "cpu"])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and words in lines[0], result.output
        assert lines[0].startswith("ganbench: error: --expr")
        assert not (tmp_path / "a.png").exists()
