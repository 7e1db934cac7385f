"""Importer of the DCGAN authors' Theano checkpoints: kernel flips checked against scipy's true convolution, the
generator's deconv against the adjoint of that convolution, dense layouts, partial releases, and (opt-in) the real
released files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import convolve2d

from ganbench.checkpoint import build_from_checkpoint, file_sha256, load_checkpoint
from ganbench.errors import CheckpointError, ModelError
from ganbench.interop.dcgan_code import (
    AUTHORS_BN_EPS,
    IMAGENET32,
    SVHN32,
    ReleasedModel,
    format_import_summary,
    import_dcgan_code,
)
from ganbench.registry import get_variant

# what the .jl index files contain in the fake releases: unpickling it fails (it names a module that does not
# exist), and the import runs with pickle.load/loads patched to fail as well
BAIT_PICKLE = b"c__ganbench_no_such_module__\nmust_not_unpickle\n)R."
IMAGENET_MISSING = {("discrim", 11), ("discrim", 14), ("gen", 1), ("gen", 4), ("gen", 7)}


def _fake_array(role: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if role.endswith(".g"):
        return (1 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    if role.endswith(".b"):
        return (0.1 * rng.standard_normal(shape)).astype(np.float32)
    return (0.05 * rng.standard_normal(shape)).astype(np.float32)


def write_release(folder: Path, model: ReleasedModel, epoch: int, *, seed: int = 0, drop=frozenset(),
                  overrides=None) -> dict[tuple[str, int], np.ndarray]:
    """A fake release in the authors' layout: numbered .npy files plus pickle index files that must not be read."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for net, table in (("discrim", model.discrim), ("gen", model.gen)):
        (folder / f"{epoch}_{net}_params.jl").write_bytes(BAIT_PICKLE)
        for number, role, shape in table:
            a = (overrides or {}).get((net, number))
            a = _fake_array(role, shape, rng) if a is None else a
            arrays[(net, number)] = a
            if (net, number) not in drop:
                np.save(folder / f"{epoch}_{net}_params.jl_{number:02d}.npy", a)
    return arrays


def linked_copy(src: Path, dst: Path, drop=frozenset(), epoch: int = 30) -> None:
    """dst: the release at src (hard links, no copying), without the files named by (net, number) in drop."""
    dst.mkdir(parents=True)
    skip = {f"{epoch}_{net}_params.jl_{number:02d}.npy" for net, number in drop}
    for path in src.iterdir():
        if path.name not in skip:
            os.link(path, dst / path.name)


def save_png_grid(images: torch.Tensor, path: Path, nrow: int = 8, pad: int = 2) -> None:
    """Images in [-1, 1] (N, 3, H, W) as one PNG grid, with PIL (torchvision's import alone takes seconds)."""
    from PIL import Image

    n, c, h, w = images.shape
    rows = (n + nrow - 1) // nrow
    grid = np.zeros((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), np.uint8)
    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i, img in enumerate(pixels):
        y, x = pad + (i // nrow) * (h + pad), pad + (i % nrow) * (w + pad)
        grid[y:y + h, x:x + w] = img
    Image.fromarray(grid).save(path)


def run_import(src, out, **kwargs):
    """import_dcgan_code with every pickle entry point made to fail: the importer must not need them."""
    def refuse(*args, **kw):
        raise AssertionError("the importer unpickled something")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pickle, "load", refuse)
        mp.setattr(pickle, "loads", refuse)
        mp.setattr(pickle, "Unpickler", refuse)
        return import_dcgan_code(src, out, **kwargs)


@pytest.fixture(scope="module")
def svhn_release(tmp_path_factory):
    folder = tmp_path_factory.mktemp("release") / SVHN32.folder
    arrays = write_release(folder, SVHN32, 200, seed=1)
    out = folder.parent / "svhn.pt"
    summary = run_import(folder, out)
    gen, disc, _ = build_from_checkpoint(load_checkpoint(out))
    return folder, arrays, out, summary, gen, disc


@pytest.fixture(scope="module")
def imagenet_release(tmp_path_factory):
    folder = tmp_path_factory.mktemp("release") / IMAGENET32.folder
    arrays = write_release(folder, IMAGENET32, 30, seed=2)
    out = folder.parent / "imagenet.pt"
    summary = run_import(folder, out)
    gen, disc, _ = build_from_checkpoint(load_checkpoint(out))
    return folder, arrays, out, summary, gen, disc


# ---------------------------------------------------------------- Theano semantics, written independently


def true_conv_same(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """Theano dnn_conv (conv_mode 'conv', "same" padding (k-1)/2) of one channel with one kernel: scipy's true
    convolution, subsampled for stride 2 (output pixel i sits on input pixel stride*i)."""
    return convolve2d(x, w, mode="same")[::stride, ::stride]


def theano_deconv_scipy(h: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """The authors' deconv of one channel: the adjoint (transposed matrix) of the strided true convolution that maps
    a (stride*H, stride*W) map to h's (H, W) shape, built column by column from scipy's convolve2d."""
    big = (h.shape[0] * stride, h.shape[1] * stride)
    columns = []
    for k in range(big[0] * big[1]):
        e = np.zeros(big)
        e.flat[k] = 1.0
        columns.append(true_conv_same(e, w, stride).ravel())
    matrix = np.stack(columns, axis=1)  # (H*W, stride*H*stride*W): the forward convolution
    return (matrix.T @ h.ravel()).reshape(big)


def theano_deconv_autograd(h: torch.Tensor, w: torch.Tensor, stride: int, pad: int) -> torch.Tensor:
    """The authors' deconv of a whole layer (w: Theano (in, out, k, k)): the gradient w.r.t. its input of the true
    convolution F.conv2d(., flip(w)) on a map stride times larger, as cuDNN's GradI computes it."""
    z = torch.zeros(h.shape[0], w.shape[1], h.shape[2] * stride, h.shape[3] * stride, dtype=h.dtype,
                    requires_grad=True)
    y = F.conv2d(z, w.flip(-2, -1), stride=stride, padding=pad)
    assert y.shape == h.shape
    (grad,) = torch.autograd.grad(y, z, grad_outputs=h)
    return grad


# ---------------------------------------------------------------- the fake releases


def test_bait_index_file_cannot_be_unpickled():
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(BAIT_PICKLE)


def test_svhn_import_maps_every_parameter(svhn_release):
    folder, arrays, out, summary, gen, disc = svhn_release
    assert summary["model"] == "dcgan-svhn32" and summary["partial"] is False and summary["missing"] == []
    assert summary["epoch"] == 200 and summary["dataset"] == "svhn" and summary["out"] == str(out)
    assert "dcgan-svhn32" in format_import_summary(summary)
    d, g = disc.state_dict(), gen.state_dict()
    t = {k: torch.from_numpy(v) for k, v in arrays.items()}
    assert torch.equal(d["blocks.0.0.weight"], t["discrim", 1].flip(-2, -1))
    assert torch.equal(d["blocks.1.0.weight"], t["discrim", 2].flip(-2, -1))
    assert torch.equal(d["blocks.1.1.weight"], t["discrim", 3]) and torch.equal(d["blocks.1.1.bias"], t["discrim", 4])
    assert torch.equal(d["blocks.2.0.weight"], t["discrim", 5].flip(-2, -1))
    assert torch.equal(d["blocks.2.1.weight"], t["discrim", 6]) and torch.equal(d["blocks.2.1.bias"], t["discrim", 7])
    assert torch.equal(d["head.1.weight"], t["discrim", 8].T)
    assert torch.equal(g["project.0.weight"], t["gen", 1].T)
    assert torch.equal(g["project.1.weight"], t["gen", 2]) and torch.equal(g["project.1.bias"], t["gen", 3])
    assert torch.equal(g["body.0.weight"], t["gen", 4].flip(-2, -1))
    assert torch.equal(g["body.1.weight"], t["gen", 5]) and torch.equal(g["body.1.bias"], t["gen", 6])
    assert torch.equal(g["body.3.weight"], t["gen", 7].flip(-2, -1))
    assert torch.equal(g["body.4.weight"], t["gen", 8]) and torch.equal(g["body.4.bias"], t["gen", 9])
    assert torch.equal(g["body.6.weight"], t["gen", 10].flip(-2, -1))
    bns = [m for net in (gen, disc) for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == 5
    for bn in bns:  # the authors' epsilon; no running statistics in the release
        assert bn.eps == AUTHORS_BN_EPS
        assert torch.all(bn.running_mean == 0) and torch.all(bn.running_var == 1)
    assert disc.feature_dim() == 7168 and gen.z_dist == "normal"


def test_provenance_records_source_files_and_gaps(svhn_release):
    folder, _, out, _, _, _ = svhn_release
    ckpt = load_checkpoint(out)
    prov = ckpt["provenance"]
    assert prov["source"] == "dcgan_code" and prov["source_dir"] == str(folder.resolve()) and prov["epoch"] == 200
    assert prov["partial"] is False and prov["missing"] == [] and prov["bn_eps"] == AUTHORS_BN_EPS
    assert prov["bn_running_stats"] == "absent: compute with --bn-stats train-batches"
    assert prov["training"] == {"source": "dcgan_code import", "dataset": "svhn", "steps": None, "epoch": 200}
    npy = sorted(folder.glob("*.npy"))
    assert len(npy) == 18 and prov["files"] == {p.name: file_sha256(p) for p in npy}
    assert ckpt["model"]["name"] == "dcgan-svhn32" and ckpt["model"]["kwargs"]["bn_eps"] == AUTHORS_BN_EPS
    assert ckpt["model"]["source"] == "dcgan_code" and ckpt["model"]["partial"] is False
    assert ckpt["step"] == 0 and ckpt["config"] == {}


@pytest.mark.parametrize(
    ("release", "layer", "stride"),
    [("imagenet", 0, 1), ("imagenet", 1, 2), ("svhn", 0, 2), ("svhn", 2, 2)],
    ids=["imagenet-conv1-3x3-s1", "imagenet-conv2-3x3-s2", "svhn-conv1-5x5-s2", "svhn-conv3-5x5-s2"],
)
def test_discriminator_conv_is_the_true_convolution(release, layer, stride, request):
    _, arrays, _, _, _, disc = request.getfixturevalue(f"{release}_release")
    number = {0: 1, 1: 2, 2: 5}[layer]
    w_theano = arrays["discrim", number]
    conv = disc.blocks[layer][0]
    assert conv.stride == (stride, stride)
    x = np.random.default_rng(3).standard_normal((12, 12))
    o, c = 5, 2
    ours = F.conv2d(torch.from_numpy(x)[None, None], conv.weight[o:o + 1, c:c + 1].double(),
                    stride=conv.stride, padding=conv.padding)[0, 0].detach().numpy()
    expected = true_conv_same(x, w_theano[o, c].astype(np.float64), stride)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)
    # the test can fail: the same numbers used without the flip give a cross-correlation, not this convolution
    unflipped = F.conv2d(torch.from_numpy(x)[None, None], torch.from_numpy(w_theano[o:o + 1, c:c + 1]).double(),
                         stride=conv.stride, padding=conv.padding)[0, 0].numpy()
    assert np.abs(unflipped - expected).max() > 1e-2


def test_first_discriminator_block_matches_scipy_over_all_channels(imagenet_release):
    _, arrays, _, _, _, disc = imagenet_release
    w = arrays["discrim", 1].astype(np.float64)  # (128, 3, 3, 3), conv1 3x3 stride 1 pad 1, no BN
    x = np.random.default_rng(4).uniform(-1, 1, (1, 3, 32, 32))
    disc.eval()
    with torch.no_grad():
        first = disc.feature_maps(torch.from_numpy(x).float())[0][0].double().numpy()
    for o in (0, 17, 127):
        pre = sum(true_conv_same(x[0, c], w[o, c], 1) for c in range(3))
        np.testing.assert_allclose(first[o], np.where(pre > 0, pre, 0.2 * pre), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("release", "index", "number", "stride"),
    [("svhn", 0, 4, 2), ("svhn", 2, 10, 2), ("imagenet", 2, 10, 2), ("imagenet", 3, 13, 1)],
    ids=["svhn-deconv1-5x5-s2", "svhn-deconv3-5x5-s2", "imagenet-deconv3-3x3-s2", "imagenet-deconv4-3x3-s1"],
)
def test_generator_deconv_is_the_adjoint_of_the_true_convolution(release, index, number, stride, request):
    """ConvTranspose2d with the flipped kernel == Theano's deconv, pixel for pixel (no one-pixel shift)."""
    _, arrays, _, _, gen, _ = request.getfixturevalue(f"{release}_release")
    layer = gen.body[3 * index]
    assert isinstance(layer, torch.nn.ConvTranspose2d) and layer.stride == (stride, stride)
    w_theano = arrays["gen", number].astype(np.float64)
    pad = layer.padding[0]
    assert pad == (w_theano.shape[-1] - 1) // 2

    # one channel pair against scipy: the transposed matrix of the strided true convolution
    rng = np.random.default_rng(5)
    h = rng.standard_normal((4, 4))
    ci, co = 1, 2
    ours = F.conv_transpose2d(torch.from_numpy(h)[None, None], layer.weight[ci:ci + 1, co:co + 1].double(),
                              stride=layer.stride, padding=layer.padding, output_padding=layer.output_padding)
    expected = theano_deconv_scipy(h, w_theano[ci, co], stride)
    assert ours.shape[-2:] == expected.shape == (4 * stride, 4 * stride)
    np.testing.assert_allclose(ours[0, 0].detach().numpy(), expected, rtol=0, atol=1e-10)

    # the whole layer against the autograd adjoint, in float32 as the module runs
    hh = torch.from_numpy(rng.standard_normal((2, w_theano.shape[0], 4, 4)).astype(np.float32))
    with torch.no_grad():
        ours_layer = layer(hh)
    expected_layer = theano_deconv_autograd(hh, torch.from_numpy(arrays["gen", number]), stride, pad)
    torch.testing.assert_close(ours_layer, expected_layer, rtol=0, atol=1e-5)

    # the alternatives are wrong: no flip, or a one-pixel shift of the right answer
    unflipped = F.conv_transpose2d(torch.from_numpy(h)[None, None], torch.from_numpy(w_theano[ci:ci + 1, co:co + 1]),
                                   stride=layer.stride, padding=layer.padding, output_padding=layer.output_padding)
    assert np.abs(unflipped[0, 0].numpy() - expected).max() > 1e-2
    assert np.abs(np.roll(expected, 1, axis=(0, 1)) - expected).max() > 1e-2


def test_dense_layers_known_weights(tmp_path):
    """Theano T.dot(h, w), w (in, out): Linear weight w.T; units in C-major (C, 4, 4) order in both directions."""
    g_dense = np.zeros((100, 4096), np.float32)
    g_dense[3, 5 * 16 + 2 * 4 + 1] = 7.0  # z unit 3 -> channel 5, row 2, column 1 of the 256x4x4 map
    g_dense[0, 255 * 16 + 15] = -1.5  # z unit 0 -> channel 255, row 3, column 3
    d_dense = np.zeros((4096, 1), np.float32)
    d_dense[200 * 16 + 3 * 4 + 1, 0] = 2.0  # channel 200, row 3, column 1 of the 256x4x4 map
    d_dense[7, 0] = -0.5  # channel 0, row 1, column 3
    folder = tmp_path / "svhn_known"
    write_release(folder, SVHN32, 200, overrides={("gen", 1): g_dense, ("discrim", 8): d_dense})
    run_import(folder, tmp_path / "known.pt")
    gen, disc, _ = build_from_checkpoint(load_checkpoint(tmp_path / "known.pt"))
    with torch.no_grad():
        z = torch.zeros(2, 100)
        z[0, 3] = 1.0
        z[1, 0] = 2.0
        projected = gen.project[0](z)
        maps = projected.view(-1, gen.base_channels, 4, 4)  # what ConvGenerator.forward does
        assert maps[0, 5, 2, 1] == 7.0 and maps[0].abs().sum() == 7.0
        assert maps[1, 255, 3, 3] == -3.0 and maps[1].abs().sum() == 3.0
        np.testing.assert_array_equal(maps.numpy(), (z.numpy() @ g_dense).reshape(2, 256, 4, 4))  # Theano reshape
        h = torch.zeros(2, 256, 4, 4)
        h[0, 200, 3, 1] = 1.0
        h[1, 0, 1, 3] = 4.0
        assert disc.head(h).view(-1).tolist() == [2.0, -2.0]


def test_missing_files_are_refused_with_their_names(tmp_path, imagenet_release):
    folder = tmp_path / IMAGENET32.folder
    linked_copy(imagenet_release[0], folder, IMAGENET_MISSING)
    with pytest.raises(CheckpointError) as info:
        run_import(folder, tmp_path / "x.pt")
    message = str(info.value)
    assert "\n" not in message and "--allow-partial" in message
    for name in ("30_discrim_params.jl_11.npy", "30_discrim_params.jl_14.npy", "30_gen_params.jl_01.npy",
                 "30_gen_params.jl_04.npy", "30_gen_params.jl_07.npy"):
        assert name in message
    assert not (tmp_path / "x.pt").exists()


def test_allow_partial_keeps_the_complete_leading_layers(tmp_path, imagenet_release):
    folder = tmp_path / IMAGENET32.folder
    linked_copy(imagenet_release[0], folder, IMAGENET_MISSING)
    arrays = imagenet_release[1]
    summary = run_import(folder, tmp_path / "partial.pt", allow_partial=True)
    assert summary["model"] == "dcgan32-partial" and summary["partial"] is True and len(summary["missing"]) == 5
    assert "PARTIAL" in format_import_summary(summary)
    ckpt = load_checkpoint(tmp_path / "partial.pt")
    assert ckpt["G"] is None and ckpt["model"]["partial"] is True and ckpt["model"]["kwargs"]["n_layers"] == 4
    prov = ckpt["provenance"]
    assert prov["partial"] is True and prov["source"] == "dcgan_code" and len(prov["missing"]) == 5
    assert {"30_discrim_params.jl_12.npy", "30_discrim_params.jl_13.npy", "30_discrim_params.jl_15.npy",
            "30_discrim_params.jl_16.npy", "30_discrim_params.jl_17.npy", "30_gen_params.jl_19.npy"} <= set(
        prov["dropped"])
    assert len(prov["files"]) == 36 - 5
    gen, disc, variant = build_from_checkpoint(ckpt)
    assert variant.name == "dcgan32-partial"
    assert disc.layer_shapes() == [(128, 32, 32), (128, 16, 16), (256, 16, 16), (256, 8, 8)]
    assert disc.feature_dim() == (128 + 128 + 256 + 256) * 16 == 12288
    assert torch.equal(disc.blocks[3][0].weight, torch.from_numpy(arrays["discrim", 8]).flip(-2, -1))
    assert torch.equal(disc.blocks[3][1].weight, torch.from_numpy(arrays["discrim", 9]))
    assert all(m.eps == AUTHORS_BN_EPS for m in disc.modules() if isinstance(m, torch.nn.BatchNorm2d))
    full_keys = set(get_variant("dcgan32").build()[1].state_dict())
    assert set(disc.state_dict()) < full_keys  # same module names as dcgan32's first four blocks
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert [tuple(m.shape) for m in disc.feature_maps(x)] == [(2, 128, 32, 32), (2, 128, 16, 16), (2, 256, 16, 16),
                                                             (2, 256, 8, 8)]
    with pytest.raises(ModelError, match="partial discriminator: no classifier head"):
        disc(x)
    with pytest.raises(ModelError, match="no generator"):
        gen(gen.sample_z(2))


def test_partial_variants_are_registered():
    gen, disc = get_variant("dcgan32-partial").build()
    assert len(disc.blocks) == 4 and gen.nz == 256 and gen.z_dist == "uniform"
    assert len(get_variant("dcgan32-partial").build(n_layers=2)[1].feature_maps(torch.zeros(2, 3, 32, 32))) == 2
    assert get_variant("dcgan-svhn32-partial").build(n_layers=2)[1].layer_shapes() == [(64, 16, 16), (128, 8, 8)]
    with pytest.raises(ModelError):
        get_variant("dcgan32-partial").build(n_layers=7)


def test_unknown_layouts_and_bad_folders_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not a folder"):
        run_import(tmp_path / "nowhere", tmp_path / "x.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="has no <epoch>_discrim_params"):
        run_import(tmp_path / "empty", tmp_path / "x.pt")
    odd = tmp_path / "odd"
    write_release(odd, SVHN32, 200, overrides={("discrim", 1): np.zeros((32, 3, 5, 5), np.float32)})
    with pytest.raises(CheckpointError) as info:
        run_import(odd, tmp_path / "x.pt")
    message = str(info.value)
    assert "unknown dcgan_code layout" in message and "200_discrim_params.jl_01.npy is (32, 3, 5, 5)" in message
    assert "not dcgan32" in message and "not dcgan-svhn32" in message
    pickled = tmp_path / "pickled"
    write_release(pickled, SVHN32, 200)
    np.save(pickled / "200_gen_params.jl_02.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match="not a plain numeric .npy array"):
        run_import(pickled, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="holds several released models"):
        run_import(tmp_path, tmp_path / "x.pt")


# ---------------------------------------------------------------- opt-in: the authors' real files


def _shared_models() -> Path | None:
    value = os.environ.get("GANBENCH_SHARED")
    folder = Path(value) / "models" / "dcgan_code" if value else None
    return folder if folder is not None and folder.is_dir() else None


SHARED_MODELS = _shared_models()
needs_release = pytest.mark.skipif(
    SHARED_MODELS is None,
    reason="opt-in real-data test: set GANBENCH_SHARED to the folder holding models/dcgan_code/ "
    "(e.g. GANBENCH_SHARED=../shared)",
)


@needs_release
def test_real_svhn_model_generates_digits_its_discriminator_prefers(tmp_path):
    summary = import_dcgan_code(SHARED_MODELS / SVHN32.folder, tmp_path / "svhn.pt")
    assert summary["model"] == "dcgan-svhn32" and summary["partial"] is False and summary["epoch"] == 200
    gen, disc, _ = build_from_checkpoint(load_checkpoint(tmp_path / "svhn.pt"))
    assert disc.feature_dim() == 7168 and gen.z_dist == "normal"  # the folder name says gaussian z
    gen.train()  # no running statistics in the release: batch statistics, as the authors sampled
    disc.train()
    with torch.no_grad():
        x = gen(gen.sample_z(64, generator=torch.Generator().manual_seed(0)))
        logits = disc(x)  # BN statistics of the samples themselves, as D saw generated batches in training
        rotated = disc(x.flip(2, 3))
        noise = disc(torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    save_png_grid(x, tmp_path / "grid.png")
    save_png_grid(x, Path("/tmp/svhn_import_grid.png"))
    per_image_std = x.flatten(1).std(1)
    p = torch.sigmoid(logits)
    print(f"SVHN samples: range [{x.min():.3f}, {x.max():.3f}], per-image std min {per_image_std.min():.3f} "
          f"mean {per_image_std.mean():.3f}; D(G(z)) mean {p.mean():.4f}, median logit {logits.median():.2f} "
          f"(rotated 180 deg {rotated.median():.2f}, uniform noise {noise.median():.2f})")
    assert x.abs().max() <= 1.0 and per_image_std.min() > 0.03
    assert (x - x.mean(0)).flatten(1).std(1).mean() > 0.05  # the 64 images differ from one another
    assert 1e-3 < p.mean() < 0.99
    # the imported D ranks its G's samples above their rotations and far above noise (a mis-flipped D does not)
    assert logits.median() > rotated.median() + 0.5 and logits.median() > noise.median() + 5


@needs_release
def test_real_imagenet_model_is_partial(tmp_path):
    folder = SHARED_MODELS / IMAGENET32.folder
    with pytest.raises(CheckpointError) as info:
        import_dcgan_code(folder, tmp_path / "x.pt")
    for name in ("30_discrim_params.jl_11.npy", "30_discrim_params.jl_14.npy", "30_gen_params.jl_01.npy",
                 "30_gen_params.jl_04.npy", "30_gen_params.jl_07.npy"):
        assert name in str(info.value)
    summary = import_dcgan_code(folder, tmp_path / "partial.pt", allow_partial=True)
    assert summary["model"] == "dcgan32-partial" and summary["partial"] is True and summary["epoch"] == 30
    ckpt = load_checkpoint(tmp_path / "partial.pt")
    assert ckpt["G"] is None and len(ckpt["provenance"]["files"]) == 31
    assert ckpt["provenance"]["training"]["dataset"] == "imagenet"
    _, disc, _ = build_from_checkpoint(ckpt)
    assert len(disc.blocks) == 4 and disc.feature_dim() == 12288
    disc.train()
    with torch.no_grad():
        maps = disc.feature_maps(torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    assert [tuple(m.shape[1:]) for m in maps] == [(128, 32, 32), (128, 16, 16), (256, 16, 16), (256, 8, 8)]
    assert all(torch.isfinite(m).all() for m in maps)


def _shared_cifar() -> Path | None:
    value = os.environ.get("GANBENCH_SHARED")
    path = Path(value) / "data" / "cifar10-jpg.tar.gz" if value else None
    return path if path is not None and path.is_file() else None


@needs_release
@pytest.mark.skipif(_shared_cifar() is None, reason="opt-in real-data test: set GANBENCH_SHARED to the folder "
                    "holding data/cifar10-jpg.tar.gz (e.g. GANBENCH_SHARED=../shared)")
def test_torch_solver_agrees_with_linearsvc_on_real_cifar_features(tmp_path, monkeypatch):
    """Issue 4's bar on real features: the authors' ImageNet D (layers 1-4) on the JPEG CIFAR-10 copy."""
    from ganbench.data import load_images
    from ganbench.features import FeatureSpec, extract_features, train_batch_statistics
    from ganbench.probe import L2SVM, fit_path

    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    import_dcgan_code(SHARED_MODELS / IMAGENET32.folder, tmp_path / "imnet.pt", allow_partial=True)
    _, disc, _ = build_from_checkpoint(load_checkpoint(tmp_path / "imnet.pt"))
    train = load_images("cifar10", _shared_cifar(), "train", image_size=32, max_images=1500, progress=False)
    test = load_images("cifar10", _shared_cifar(), "test", image_size=32, max_images=1000, progress=False)
    stats = train_batch_statistics(disc, np.asarray(train.images), 128)
    spec = FeatureSpec("imnet-partial", [1, 2, 3, 4], "train-batches", "float32", 4, "test")
    X = extract_features(disc, train, spec, bn_stats_values=stats, progress=False, use_cache=False)
    Xt = extract_features(disc, test, spec, bn_stats_values=stats, progress=False, use_cache=False)
    y, yt = np.asarray(train.labels), np.asarray(test.labels)
    assert X.shape == (1500, 12288) and np.bincount(y).min() >= 100  # evenly spaced: every class present
    Cs = [1e-4, 1e-3]
    ours = fit_path(X, y, Cs, backend="torch")
    for C, model in zip(Cs, ours):
        ref = L2SVM(C=C, backend="sklearn").fit(X, y)
        acc, acc_ref = 100 * model.score(Xt, yt), 100 * ref.score(Xt, yt)
        print(f"C={C:g}: ganbench {acc:.2f}%, LinearSVC {acc_ref:.2f}%")
        assert abs(acc - acc_ref) <= 0.3
        assert 30 < acc_ref < 90  # real features: far above chance (10%), far below perfect on 1,500 images
        # the same optimum, not just the same accuracy: decision values agree closely
        d, d_ref = model.decision_function(Xt), ref.decision_function(Xt)
        assert np.abs(d - d_ref).max() <= 0.02 * np.abs(d_ref).max()
