"""The paper's architectures: shapes, feature dimensions, init statistics; the registry and its plugin paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ganbench.errors import ModelError
from ganbench.registry import available_variants, describe_variant, get_variant, load_variant_file

HERE = Path(__file__).parent

# name -> (image size, nz, feature_dim, layer shapes of D)
EXPECTED = {
    "dcgan32": (32, 256, 28672, [(128, 32, 32), (128, 16, 16), (256, 16, 16), (256, 8, 8), (512, 8, 8),
                                 (512, 4, 4)]),
    "dcgan64": (64, 100, (128 + 256 + 512 + 1024) * 16, [(128, 32, 32), (256, 16, 16), (512, 8, 8),
                                                         (1024, 4, 4)]),
    "dcgan64-pt": (64, 100, (64 + 128 + 256 + 512) * 16, [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4)]),
    "dcgan-svhn32": (32, 100, 7168, [(64, 16, 16), (128, 8, 8), (256, 4, 4)]),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shapes_and_feature_dims(name):
    size, nz, fdim, layers = EXPECTED[name]
    gen, disc = get_variant(name).build()
    assert gen.nz == nz
    z = gen.sample_z(3, generator=torch.Generator().manual_seed(0))
    x = gen(z)
    assert x.shape == (3, 3, size, size)
    assert x.abs().max() <= 1.0
    assert disc(x).shape == (3,)
    maps = disc.feature_maps(x)
    assert [tuple(m.shape[1:]) for m in maps] == layers
    assert disc.feature_dim() == fdim
    disc.eval()  # the maps are the very activations forward() passes on to the head
    torch.testing.assert_close(disc.head(disc.feature_maps(x)[-1]).view(-1), disc(x))


def test_dcgan32_matches_the_authors_parameter_shapes():
    """Shapes listed for the released ImageNet checkpoint (../shared/README.md), Theano layout (out, in, k, k)."""
    _, disc = get_variant("dcgan32").build()
    convs = [m.weight.shape for m in disc.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [(128, 3, 3, 3), (128, 128, 3, 3), (256, 128, 3, 3), (256, 256, 3, 3), (512, 256, 3, 3),
                     (512, 512, 3, 3)]
    strides = [m.stride[0] for m in disc.modules() if isinstance(m, nn.Conv2d)]
    assert strides == [1, 2, 1, 2, 1, 2]
    assert not any(m.bias is not None for m in disc.modules() if isinstance(m, nn.Conv2d))
    bns = [m for m in disc.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 5  # all but the first conv
    linear = [m for m in disc.modules() if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in linear] == [(1, 8192)]


def test_dcgan32_generator_layout():
    gen, _ = get_variant("dcgan32").build()
    deconvs = [m for m in gen.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in deconvs] == [512, 256, 256, 128, 128, 3]
    assert [m.stride[0] for m in deconvs] == [2, 1, 2, 1, 2, 1]
    assert all(m.kernel_size == (3, 3) for m in deconvs)
    lin = [m for m in gen.modules() if isinstance(m, nn.Linear)][0]
    assert tuple(lin.weight.shape) == (512 * 16, 256)
    z = gen.sample_z(10000, generator=torch.Generator().manual_seed(1))
    assert z.min() >= -1 and z.max() <= 1 and abs(z.mean()) < 0.02  # uniform on [-1, 1]


def test_pytorch_examples_parameter_counts():
    """pytorch/examples dcgan with ngf = ndf = 64 has 3,576,704 G and 2,765,568 D parameters."""
    row = describe_variant(get_variant("dcgan64-pt"))
    assert (row["g_params"], row["d_params"]) == (3_576_704, 2_765_568)
    gen, _ = get_variant("dcgan64-pt").build()
    z = gen.sample_z(20000, generator=torch.Generator().manual_seed(0))
    assert abs(z.std() - 1) < 0.02 and z.min() < -3  # Gaussian


def test_init_statistics():
    torch.manual_seed(0)
    gen, disc = get_variant("dcgan32").build()
    weights = torch.cat([m.weight.flatten() for net in (gen, disc) for m in net.modules()
                         if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))])
    assert abs(weights.mean()) < 1e-3 and abs(weights.std() - 0.02) < 2e-4
    gains = torch.cat([m.weight for net in (gen, disc) for m in net.modules()
                       if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))])
    biases = torch.cat([m.bias for net in (gen, disc) for m in net.modules()
                        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))])
    assert abs(gains.mean() - 1) < 2e-3 and abs(gains.std() - 0.02) < 2e-3
    assert torch.all(biases == 0)


def test_width_and_nz_overrides():
    gen, disc = get_variant("dcgan32").build(nz=64, ngf=16, ndf=8, channels=1)
    assert gen(gen.sample_z(2)).shape == (2, 1, 32, 32)
    assert disc.feature_dim() == (8 + 8 + 16 + 16 + 32 + 32) * 16
    with pytest.raises(ModelError, match="takes no argument"):
        get_variant("dcgan32").build(width=3)


def test_unknown_model_lists_known_names():
    with pytest.raises(ModelError, match="dcgan32") as err:
        get_variant("nope")
    assert "\n" not in str(err.value)


def test_variant_file_loads_and_registers():
    variant = load_variant_file(f"{HERE / 'variant_file_example.py'}:WIDE_D")
    assert variant.name == "filevariant16" and variant.loss == "hinge"
    assert variant.origin["kind"] == "file"
    assert get_variant("filevariant16") is variant
    gen, disc = variant.build()
    assert disc(gen(gen.sample_z(4))).shape == (4,)
    assert disc.feature_dim() == 8 * 16 + 16 * 16


@pytest.mark.parametrize("spec, message", [
    ("no_colon.py", "path/to/file.py:NAME"),
    ("/does/not/exist.py:X", "does not exist"),
    (f"{HERE / 'variant_file_example.py'}:MISSING", "defines no 'MISSING'"),
])
def test_variant_file_errors(spec, message):
    with pytest.raises(ModelError, match=message):
        load_variant_file(spec)


@pytest.mark.slow
def test_entry_point_plugin_package(tmp_path):
    """Install the toy plugin package into a private folder; ganbench then lists and builds its model."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target),
         str(HERE / "plugin_pkg")],
        check=True, capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "ganbench", "models", "--json"], env=env, check=True,
                         capture_output=True, text=True).stdout
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["toy16"]["image_size"] == 16 and rows["toy16"]["feature_dim"] == 4 * 8 * 8 // 4
    assert rows["toy16"]["origin"] == {"kind": "entry_point", "value": "ganbench_toy_plugin:toy16"}
    assert rows["dcgan32"]["feature_dim"] == 28672
    out = subprocess.run([sys.executable, "-m", "ganbench", "objectives", "--json"], env=env, check=True,
                         capture_output=True, text=True).stdout
    objectives = {r["name"]: r for r in json.loads(out)}
    assert objectives["toy-l1"]["origin"] == {"kind": "entry_point", "value": "ganbench_toy_plugin:ToyObjective"}
    assert objectives["toy-l1"]["output_kind"] == "critic" and "ns" in objectives


def test_available_variants_lists_builtins():
    names = [v.name for v in available_variants()]
    assert {"dcgan32", "dcgan64", "dcgan64-pt", "dcgan-svhn32"} <= set(names)


def test_an_unknown_z_distribution_is_refused_not_sampled_as_normal():
    from ganbench.errors import ModelError

    gen, _ = get_variant("dcgan32").build(ngf=4, ndf=4, nz=8)
    gen.z_dist = "laplace"
    with pytest.raises(ModelError, match="z_dist is 'laplace'"):
        gen.sample_z(2)


def test_frozen_batchnorm_leaves_every_statistic_and_the_mode_as_it_was():
    from ganbench.models.base import batchnorms, frozen_batchnorm

    torch.manual_seed(0)
    gen, _ = get_variant("dcgan32").build(nz=8, ngf=4, ndf=4, channels=3)
    gen.train()
    gen(gen.sample_z(4))  # move the running statistics away from their init
    before = {k: v.clone() for k, v in gen.state_dict().items()}
    momenta = [m.momentum for m in batchnorms(gen)]
    for train in (True, False):
        with frozen_batchnorm(gen, train=train) as bns:
            assert gen.training is train and all(m.momentum == 0.0 for m in bns)
            gen(gen.sample_z(4))
            for m in bns:  # even a state change made inside the block is undone
                m.running_mean.add_(1.0)
        assert gen.training and [m.momentum for m in batchnorms(gen)] == momenta
        for key, value in gen.state_dict().items():
            assert torch.equal(value, before[key]), key
    # and without it the same forward pass would have moved them
    gen(gen.sample_z(4))
    assert not torch.equal(batchnorms(gen)[0].running_mean, before[next(k for k in before if "running_mean" in k)])
