"""Importer of the DCGAN authors' released Theano checkpoints (Newmu/dcgan_code, MIT) into ganbench checkpoints.

The release stores each network as a joblib index (`<epoch>_discrim_params.jl`, `<epoch>_gen_params.jl`) plus one
`.npy` file per parameter, numbered in the order the authors' `gen(...)` / `discrim(...)` functions take them.
The index files are pickles: they are never opened here. Parameter order comes from the file numbers, checked
against a table of expected shapes per released model (the two tables below).

How the Theano weights map onto PyTorch modules:

- `dnn_conv(X, w)` (conv_mode 'conv') is a true convolution; `nn.Conv2d` is a cross-correlation, so discriminator
  kernels (out, in, k, k) are flipped in both spatial axes.
- `deconv(X, w)` (lib/ops.py) is cuDNN's gradient w.r.t. the input of `dnn_conv(., w)`, a true convolution from
  w.shape[1] to w.shape[0] channels. `nn.ConvTranspose2d` with weight K is, by definition, the gradient w.r.t. the
  input of the cross-correlation `conv2d(., K)`. The two agree when K is the cross-correlation kernel of that same
  forward convolution: K = flip(w), channel axes untouched ((in, out, k, k) in both). With padding p and
  output_padding 1 the transposed conv is the exact adjoint of the stride-2 conv on the 2x larger map, which is what
  the authors' deconv allocates, so outputs line up pixel for pixel (tests/test_dcgan_code.py checks both against
  scipy).
- `T.dot(h, w)` with w (in, out): `nn.Linear.weight = w.T`. Both frameworks flatten / reshape NCHW in C order
  (`T.flatten(h, 2)`, `h.reshape((N, C, 4, 4))`), so dense weights need no permutation.
- BN gains / biases become BatchNorm weight / bias. The release has no running statistics: they stay 0 / 1 and
  must be computed from training images (`--bn-stats train-batches`); the authors' epsilon 1e-8 is kept.

The ImageNet 32x32 release is incomplete. With `allow_partial=True` its discriminator is imported as
`dcgan32-partial` (ganbench/models/partial.py): the leading conv blocks whose weights exist (layers 1-4), no
classifier head, and no generator.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganbench import __version__
from ganbench.checkpoint import file_sha256, model_record, save_checkpoint
from ganbench.errors import CheckpointError
from ganbench.models.partial import AUTHORS_BN_EPS
from ganbench.registry import get_variant

BN_STATS_NOTE = "absent: compute with --bn-stats train-batches"
_FILE_RE = re.compile(r"^(\d+)_(discrim|gen)_params\.jl_(\d+)\.npy$")

Shape = tuple[int, ...]


# ---------------------------------------------------------------- the released models


@dataclass(frozen=True)
class ReleasedModel:
    """One released checkpoint: its ganbench variant and the expected (file number, role, shape) of every array.

    Roles: D "convK.w", "bnK.g", "bnK.b", "dense.w"; G "dense.w", "bn0.g", "bn0.b" (BatchNorm1d over the dense
    units), "deconvK.w", "bnK.g", "bnK.b" (K counts conv layers from the input side, from 1).
    """

    variant: str
    dataset: str
    folder: str  # the folder name in the authors' release
    kwargs: dict[str, Any]
    discrim: tuple[tuple[int, str, Shape], ...]
    gen: tuple[tuple[int, str, Shape], ...]

    def n_conv(self) -> int:
        return sum(role.endswith(".w") and role.startswith("conv") for _, role, _ in self.discrim)


# authors' imagenet/load_pretrained.py: discrim(X, w, w2, g2, b2, ..., w6, g6, b6, wy), gen(Z, w, g, b, ..., wx)
IMAGENET32 = ReleasedModel(
    "dcgan32", "imagenet", "imagenet_gan_pretrain_128f_relu_lrelu_7l_3x3_256z",
    {"nz": 256, "ngf": 128, "ndf": 128, "channels": 3},
    discrim=(
        (1, "conv1.w", (128, 3, 3, 3)),
        (2, "conv2.w", (128, 128, 3, 3)), (3, "bn2.g", (128,)), (4, "bn2.b", (128,)),
        (5, "conv3.w", (256, 128, 3, 3)), (6, "bn3.g", (256,)), (7, "bn3.b", (256,)),
        (8, "conv4.w", (256, 256, 3, 3)), (9, "bn4.g", (256,)), (10, "bn4.b", (256,)),
        (11, "conv5.w", (512, 256, 3, 3)), (12, "bn5.g", (512,)), (13, "bn5.b", (512,)),
        (14, "conv6.w", (512, 512, 3, 3)), (15, "bn6.g", (512,)), (16, "bn6.b", (512,)),
        (17, "dense.w", (8192, 1)),
    ),
    gen=(
        (1, "dense.w", (256, 8192)), (2, "bn0.g", (8192,)), (3, "bn0.b", (8192,)),
        (4, "deconv1.w", (512, 512, 3, 3)), (5, "bn1.g", (512,)), (6, "bn1.b", (512,)),
        (7, "deconv2.w", (512, 256, 3, 3)), (8, "bn2.g", (256,)), (9, "bn2.b", (256,)),
        (10, "deconv3.w", (256, 256, 3, 3)), (11, "bn3.g", (256,)), (12, "bn3.b", (256,)),
        (13, "deconv4.w", (256, 128, 3, 3)), (14, "bn4.g", (128,)), (15, "bn4.b", (128,)),
        (16, "deconv5.w", (128, 128, 3, 3)), (17, "bn5.g", (128,)), (18, "bn5.b", (128,)),
        (19, "deconv6.w", (128, 3, 3, 3)),
    ),
)

# authors' svhn/svhn_semisup_analysis.py: discrim(X, w, w2, g2, b2, w3, g3, b3, wy); the generator's order follows
# the authors' other generators (gw, gg, gb, gw2, gg2, gb2, ..., gwx), which the file shapes confirm
SVHN32 = ReleasedModel(
    "dcgan-svhn32", "svhn", "svhn_unsup_all_conv_dcgan_100z_gaussian_lr_0.0005_64mb",
    {"nz": 100, "ngf": 64, "ndf": 64, "channels": 3},
    discrim=(
        (1, "conv1.w", (64, 3, 5, 5)),
        (2, "conv2.w", (128, 64, 5, 5)), (3, "bn2.g", (128,)), (4, "bn2.b", (128,)),
        (5, "conv3.w", (256, 128, 5, 5)), (6, "bn3.g", (256,)), (7, "bn3.b", (256,)),
        (8, "dense.w", (4096, 1)),
    ),
    gen=(
        (1, "dense.w", (100, 4096)), (2, "bn0.g", (4096,)), (3, "bn0.b", (4096,)),
        (4, "deconv1.w", (256, 128, 5, 5)), (5, "bn1.g", (128,)), (6, "bn1.b", (128,)),
        (7, "deconv2.w", (128, 64, 5, 5)), (8, "bn2.g", (64,)), (9, "bn2.b", (64,)),
        (10, "deconv3.w", (64, 3, 5, 5)),
    ),
)

RELEASED_MODELS = (IMAGENET32, SVHN32)


# ---------------------------------------------------------------- role -> ganbench parameter


def _d_key(role: str) -> str:
    layer, kind = role.split(".")
    if layer == "dense":
        return "head.1.weight"
    i = int(layer.removeprefix("conv").removeprefix("bn")) - 1
    if layer.startswith("conv"):
        return f"blocks.{i}.0.weight"
    return f"blocks.{i}.1.{'weight' if kind == 'g' else 'bias'}"


def _g_key(role: str) -> str:
    layer, kind = role.split(".")
    if layer == "dense":
        return "project.0.weight"
    if layer == "bn0":
        return f"project.1.{'weight' if kind == 'g' else 'bias'}"
    # ConvGenerator.body: (deconv, BN, ReLU) per layer, then the last deconv and tanh
    i = int(layer.removeprefix("deconv").removeprefix("bn")) - 1
    if layer.startswith("deconv"):
        return f"body.{3 * i}.weight"
    return f"body.{3 * i + 1}.{'weight' if kind == 'g' else 'bias'}"


def theano_to_torch(role: str, array: np.ndarray) -> torch.Tensor:
    """One Theano parameter as the matching PyTorch tensor: kernels flipped, dense weights transposed."""
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if role.startswith(("conv", "deconv")):
        return t.flip(-2, -1).contiguous()  # true convolution -> cross-correlation (both, see module docstring)
    if role == "dense.w":
        return t.t().contiguous()
    return t


# ---------------------------------------------------------------- reading the folder


def _scan(src: Path, epoch: int | None) -> tuple[int, dict[str, dict[int, Path]]]:
    """The epoch and {"discrim": {number: path}, "gen": {...}} of the numbered .npy files in src."""
    if not src.is_dir():
        raise CheckpointError(f"{src} is not a folder; pass the folder holding <epoch>_discrim_params.jl_NN.npy files")
    found: dict[int, dict[str, dict[int, Path]]] = {}
    for path in sorted(src.iterdir()):
        m = _FILE_RE.match(path.name)
        if m and path.is_file():
            found.setdefault(int(m[1]), {"discrim": {}, "gen": {}})[m[2]][int(m[3])] = path
    if not found:
        inner = sorted(p.name for p in src.iterdir() if p.is_dir() and any(_FILE_RE.match(q.name) for q in p.iterdir()))
        if inner:
            raise CheckpointError(f"{src} holds several released models; pass one of its folders: {', '.join(inner)}")
        raise CheckpointError(
            f"{src} has no <epoch>_discrim_params.jl_NN.npy / <epoch>_gen_params.jl_NN.npy files; "
            "pass a model folder of the authors' release (Newmu/dcgan_code models/...)"
        )
    if epoch is None:
        if len(found) > 1:
            raise CheckpointError(f"{src} holds epochs {', '.join(map(str, sorted(found)))}; choose one with epoch=")
        epoch = next(iter(found))
    elif epoch not in found:
        raise CheckpointError(f"{src} has no files of epoch {epoch}; it has {', '.join(map(str, sorted(found)))}")
    return epoch, found[epoch]


def _load_arrays(files: dict[str, dict[int, Path]]) -> dict[str, dict[int, np.ndarray]]:
    arrays: dict[str, dict[int, np.ndarray]] = {"discrim": {}, "gen": {}}
    for net, numbered in files.items():
        for number, path in numbered.items():
            try:
                a = np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise CheckpointError(f"{path} is not a plain numeric .npy array ({msg[:120]})") from None
            if not np.issubdtype(a.dtype, np.floating):
                raise CheckpointError(f"{path} holds {a.dtype} values, expected floating point weights")
            if not np.all(np.isfinite(a)):
                raise CheckpointError(f"{path} contains NaN or infinite values")
            arrays[net][number] = a
    return arrays


def _first_mismatch(model: ReleasedModel, arrays: dict[str, dict[int, np.ndarray]], epoch: int) -> str | None:
    """Why the files are not this model (None when every present file has the expected number and shape)."""
    for net, table in (("discrim", model.discrim), ("gen", model.gen)):
        expected = {n: shape for n, _, shape in table}
        for number, a in sorted(arrays[net].items()):
            name = f"{epoch}_{net}_params.jl_{number:02d}.npy"
            if number not in expected:
                return f"{name} is beyond its {len(table)} {net} parameters"
            if tuple(a.shape) != expected[number]:
                return f"{name} is {tuple(a.shape)}, expected {expected[number]}"
    return None


def _recognise(src: Path, arrays: dict[str, dict[int, np.ndarray]], epoch: int) -> ReleasedModel:
    reasons = {m.variant: _first_mismatch(m, arrays, epoch) for m in RELEASED_MODELS}
    fits = [m for m in RELEASED_MODELS if reasons[m.variant] is None]
    if len(fits) > 1:  # only possible with very few files: let the folder name decide
        named = [m for m in fits if m.folder == src.name]
        fits = named or fits
    if len(fits) == 1:
        return fits[0]
    if fits:
        raise CheckpointError(
            f"{src}: the {sum(map(len, arrays.values()))} parameter files fit several released models "
            f"({', '.join(m.variant for m in fits)}); keep the authors' folder name to choose"
        )
    found = f"{len(arrays['discrim'])} discrim and {len(arrays['gen'])} gen files of epoch {epoch}"
    why = "; ".join(f"not {name} ({reason})" for name, reason in reasons.items())
    raise CheckpointError(f"{src}: unknown dcgan_code layout, {found}: {why}")


def _leading_complete_layers(model: ReleasedModel, present: set[int]) -> int:
    """How many conv blocks from the input side have all their discriminator parameters."""
    by_layer: dict[int, list[int]] = {}
    for number, role, _ in model.discrim:
        layer = role.split(".")[0]
        if layer != "dense":
            by_layer.setdefault(int(layer.removeprefix("conv").removeprefix("bn")), []).append(number)
    n = 0
    for layer in sorted(by_layer):
        if not set(by_layer[layer]) <= present:
            break
        n = layer
    return n


# ---------------------------------------------------------------- the import


def _state_dict(net: torch.nn.Module, entries: list[tuple[str, torch.Tensor]], what: str) -> dict[str, torch.Tensor]:
    """net's state dict with every parameter replaced by an imported tensor (all parameters must be covered)."""
    state = net.state_dict()
    params = {k for k, _ in net.named_parameters()}
    for key, tensor in entries:
        if key not in params or state[key].shape != tensor.shape:
            raise CheckpointError(f"internal mapping error for {what}: {key} {tuple(tensor.shape)}")
        state[key] = tensor
    missing = sorted(params - {k for k, _ in entries})
    if missing:
        raise CheckpointError(f"internal mapping error for {what}: no imported value for {', '.join(missing)}")
    net.load_state_dict(state)  # validates the whole dict against the module once more
    return net.state_dict()


def import_dcgan_code(src_dir: str | os.PathLike, out_path: str | os.PathLike, *, allow_partial: bool = False,
                      epoch: int | None = None) -> dict[str, Any]:
    """Convert one model folder of the authors' release into a ganbench checkpoint at out_path.

    allow_partial: with parameter files missing, import the discriminator's complete leading conv layers as the
    "<variant>-partial" model (no head, no generator) instead of refusing.
    epoch: which epoch's files to read when the folder holds several.
    Returns a summary: model, kwargs, dataset, epoch, imported parts, missing files, partial, out, source_dir.
    """
    src = Path(src_dir).expanduser().resolve()
    epoch, files = _scan(src, epoch)
    arrays = _load_arrays(files)
    model = _recognise(src, arrays, epoch)

    def fname(net: str, number: int) -> str:
        return f"{epoch}_{net}_params.jl_{number:02d}.npy"

    missing = [fname(net, n) for net, table in (("discrim", model.discrim), ("gen", model.gen))
               for n, _, _ in table if n not in arrays[net]]
    if missing and not allow_partial:
        raise CheckpointError(
            f"{src} lacks {len(missing)} parameter file(s) of {model.variant}: {', '.join(missing)}; "
            "pass --allow-partial to import the discriminator's complete leading layers only"
        )

    d_entries = [(n, role) for n, role, _ in model.discrim if n in arrays["discrim"]]
    dropped: dict[str, str] = {}
    if not missing:
        variant = get_variant(model.variant)
        kwargs = variant.model_kwargs(**model.kwargs, bn_eps=AUTHORS_BN_EPS)
        gen, disc = variant.build(**kwargs)
        g_state = _state_dict(gen, [(_g_key(role), theano_to_torch(role, arrays["gen"][n]))
                                    for n, role, _ in model.gen], "G")
        imported = {"G": "complete", "D": f"complete: {model.n_conv()} conv layers and the dense head"}
    else:
        n_layers = _leading_complete_layers(model, set(arrays["discrim"]))
        if n_layers == 0:
            raise CheckpointError(f"{src}: the discriminator's first conv layer is incomplete, nothing to import "
                                  f"(missing: {', '.join(missing)})")
        variant = get_variant(f"{model.variant}-partial")
        kwargs = variant.model_kwargs(nz=model.kwargs["nz"], ndf=model.kwargs["ndf"],
                                      channels=model.kwargs["channels"], n_layers=n_layers, bn_eps=AUTHORS_BN_EPS)
        gen, disc = variant.build(**kwargs)
        g_state = None
        keep = []
        for n, role in d_entries:
            layer = role.split(".")[0]
            if layer != "dense" and int(layer.removeprefix("conv").removeprefix("bn")) <= n_layers:
                keep.append((n, role))
            elif layer == "dense":
                dropped[fname("discrim", n)] = f"{role}: classifier head, not kept by a partial model"
            else:
                dropped[fname("discrim", n)] = f"{role}: layer {layer[-1]} is incomplete or follows one that is"
        d_entries = keep
        for n, role, _ in model.gen:
            if n in arrays["gen"]:
                dropped[fname("gen", n)] = f"{role}: generator incomplete, not imported"
        imported = {"G": "absent (G: None)",
                    "D": f"conv layers 1-{n_layers} of {model.n_conv()}, no classifier head (forward raises)"}
    d_state = _state_dict(disc, [(_d_key(role), theano_to_torch(role, arrays["discrim"][n])) for n, role in d_entries],
                          "D")

    training = {"source": "dcgan_code import", "dataset": model.dataset, "steps": None, "epoch": epoch}
    provenance = {
        "source": "dcgan_code",
        "repository": "Newmu/dcgan_code",
        "source_dir": str(src),
        "source_model": src.name,
        "epoch": epoch,
        "files": {p.name: file_sha256(p) for net in ("discrim", "gen") for _, p in sorted(files[net].items())},
        "index_files_not_read": {p.name: file_sha256(p) for p in sorted(src.glob(f"{epoch}_*_params.jl"))},
        "missing": missing,
        "partial": bool(missing),
        "imported": imported,
        "dropped": dropped,
        "bn_eps": AUTHORS_BN_EPS,
        "bn_running_stats": BN_STATS_NOTE,
        "z_dist": gen.z_dist,
        "conversion": "conv and deconv kernels flipped in both spatial axes (Theano dnn_conv is a true convolution; "
                      "deconv is its input gradient), channel axes kept; dense weights transposed",
        "training": training,
        "ganbench": __version__, "torch": str(torch.__version__), "python": platform.python_version(),
    }
    record = model_record(variant, kwargs)
    record.update(source="dcgan_code", partial=bool(missing))
    out = save_checkpoint({
        "model": record, "G": g_state, "D": d_state, "step": 0, "config": {}, "provenance": provenance,
    }, out_path)
    return {
        "model": variant.name, "kwargs": dict(kwargs), "dataset": model.dataset, "epoch": epoch,
        "imported": imported, "missing": missing, "partial": bool(missing), "out": str(out), "source_dir": str(src),
    }


def format_import_summary(summary: dict[str, Any]) -> str:
    """One line for the CLI: what was imported from where into which checkpoint."""
    parts = [f"imported {summary['source_dir']} (epoch {summary['epoch']}, {summary['dataset']}) as "
             f"{summary['model']} -> {summary['out']}",
             f"D: {summary['imported']['D']}", f"G: {summary['imported']['G']}"]
    if summary["partial"]:
        parts.append(f"PARTIAL, missing {', '.join(summary['missing'])}")
    parts.append(f"BN running statistics {BN_STATS_NOTE}")
    return "; ".join(parts)
