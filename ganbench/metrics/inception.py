"""The FID Inception network (pytorch-fid's port of TF's 2015-12-05 InceptionV3 graph) and its weights.

The network itself is pytorch-fid's (``pytorch_fid.inception``: torchvision's Inception3 with the
FIDInception* blocks that reproduce the TF graph); this module only builds it without pytorch-fid's
automatic download, finds and checks the weights file, and runs ONE forward pass that yields

* ``pool3``: the 2048-d final average-pool features used by FID / KID / precision-recall,
* ``logits``: the 1008-way ``pool3 @ fc.weight.T`` *without the bias*, which is what the reference
  Inception Score code (openai/improved-gan ``inception_score.py``, ``softmax/logits/MatMul``) and
  torch-fidelity (``logits_unbiased``) use,
* optionally the 64/192/768-d spatially averaged block outputs that ``pytorch-fid --dims`` offers.

Preprocessing matches pytorch-fid's ``get_activations`` + ``InceptionV3.forward`` operation for
operation: uint8 -> float32 / 255 (torchvision ``ToTensor``), greyscale repeated to RGB (PIL's
``convert('RGB')``), ``F.interpolate(size=299, mode='bilinear', align_corners=False)``, then
``2 * x - 1``: the ``pytorch-fid`` input mode, the default.

The ``tf1`` input mode reproduces the input of the original TensorFlow code (openai/improved-gan's
Inception Score, TTUR's FID), as torch-fidelity does: TF 1.x's ``resize_bilinear`` (align_corners=False,
no half-pixel centres) on 0..255 values, then ``(x - 128) / 128``. Published Inception Scores come from
that code; on images that are not 299x299 the two modes give features (and scores) a few percent apart,
so a number is only comparable with numbers of the same mode.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganbench.choices import FID_DIMS as _FID_DIMS
from ganbench.files import file_sha256
from ganbench.metrics.errors import InceptionWeightsError, MetricInputError, one_line
from ganbench.progress import progress_bar

__all__ = [
    "ENV_WEIGHTS",
    "FID_DIMS",
    "INPUT_MODES",
    "WEIGHTS_FILENAME",
    "WEIGHTS_URL",
    "InceptionFeatures",
    "build_fid_inception",
    "extract",
    "file_sha256",
    "hub_weights_path",
    "iter_image_folder",
    "list_image_files",
    "load_inception_state_dict",
    "locate_inception_weights",
    "no_tf32",
    "resize_bilinear_tf1",
]

WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
# pytorch-fid's FID_WEIGHTS_URL; kept literally so that this module imports without touching the network code.
WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_FILENAME
# torch.hub names files "<name>-<first 8 hex digits of sha256>.<ext>"; the official file's sha256 starts so.
OFFICIAL_SHA256_PREFIX = "6726825d"
ENV_WEIGHTS = "GANBENCH_INCEPTION_WEIGHTS"
NETWORK_NAME = "pytorch-fid FID-InceptionV3 (TF inception-2015-12-05 port)"
FID_DIMS = _FID_DIMS
IMAGE_EXTENSIONS = ("bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp")  # pytorch-fid's list
INPUT_SIZE = 299
# How images become the network's input (see the module doc); the record stores the mode's name.
INPUT_MODES = {
    "pytorch-fid": "pytorch-fid: x/255, torch bilinear resize to 299 (align_corners=False), then 2x - 1",
    "tf1": "tf1 (original TF code, as torch-fidelity): TF1 resize_bilinear to 299 on 0..255 values, "
           "then (x - 128) / 128",
}


def check_input_mode(mode: str) -> str:
    """The mode's name, or a one-line error naming the choices."""
    if mode not in INPUT_MODES:
        raise MetricInputError(f"unknown Inception input mode {mode!r}; choose one of {', '.join(INPUT_MODES)}")
    return mode


def resize_bilinear_tf1(x: torch.Tensor, size: int) -> torch.Tensor:
    """TensorFlow 1.x ``tf.image.resize_bilinear(align_corners=False)`` of a float (N, C, H, W) batch.

    TF1's kernel (tensorflow/core/kernels/resize_bilinear_op.cc, image_resizer_state.h) maps output index
    i to the source coordinate ``i * scale`` with ``scale = in_size / out_size`` in float32 (no half-pixel
    offset, unlike torch's align_corners=False), takes ``lo = floor``, ``hi = min(lo + 1, in_size - 1)``,
    and interpolates first along x, then along y: ``top + (bottom - top) * y_lerp`` with
    ``top = tl + (tr - tl) * x_lerp``. Written here from that definition, in float32 as TF computes it.
    """

    def axis(in_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scale = torch.tensor(in_size / size, dtype=torch.float32)
        src = torch.arange(size, dtype=torch.float32) * scale
        lo = src.floor().long()
        hi = (lo + 1).clamp(max=in_size - 1)
        return lo.to(x.device), hi.to(x.device), (src - lo.float()).to(x.device)

    y_lo, y_hi, y_lerp = axis(x.shape[2])
    x_lo, x_hi, x_lerp = axis(x.shape[3])
    rows_lo, rows_hi = x.index_select(2, y_lo), x.index_select(2, y_hi)
    x_lerp = x_lerp.view(1, 1, 1, size)
    top_left, top_right = rows_lo.index_select(3, x_lo), rows_lo.index_select(3, x_hi)
    bottom_left, bottom_right = rows_hi.index_select(3, x_lo), rows_hi.index_select(3, x_hi)
    top = top_left + (top_right - top_left) * x_lerp
    bottom = bottom_left + (bottom_right - bottom_left) * x_lerp
    return top + (bottom - top) * y_lerp.view(1, 1, size, 1)


# ---------------------------------------------------------------------------------------------- weights


def hub_weights_path() -> Path:
    """``$TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid's cache too)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILENAME


def _where_to_put() -> str:
    return (
        f"download {WEIGHTS_URL} and put it in {hub_weights_path().parent}/ "
        f"(or point {ENV_WEIGHTS} or --inception-weights at the file)"
    )


def locate_inception_weights(
    path: str | os.PathLike | None = None, allow_download: bool = True, progress: bool = True
) -> tuple[Path, str]:
    """Find the weights file; returns (path, source) with source one of argument, env, hub-cache, download.

    Order: ``path``; ``$GANBENCH_INCEPTION_WEIGHTS``; torch hub's cache; a download with torch.hub (into
    that cache, hash-checked) when ``allow_download``. An explicit path or env var that names a missing
    file is an error rather than a silent fallback.
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise InceptionWeightsError(
                f"Inception weights file {p} not found; check the path or {_where_to_put()}"
            )
        return p, "argument"
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise InceptionWeightsError(
                f"{ENV_WEIGHTS}={env} names no file; fix or unset it, or {_where_to_put()}"
            )
        return p, "env"
    cached = hub_weights_path()
    if cached.is_file():
        return cached, "hub-cache"
    if not allow_download:
        raise InceptionWeightsError(
            f"Inception weights {WEIGHTS_FILENAME} not found in {cached.parent} and downloading is off; "
            + _where_to_put()
        )
    try:
        torch.hub.load_state_dict_from_url(
            WEIGHTS_URL, progress=progress, check_hash=True, map_location="cpu", weights_only=True
        )
    except Exception as exc:  # URLError, HTTPError, timeouts, hash mismatch, disk full ...
        raise InceptionWeightsError(
            f"Inception weights {WEIGHTS_FILENAME} are not cached and could not be downloaded "
            f"({type(exc).__name__}: {one_line(exc, 100)}); {_where_to_put()}"
        ) from None
    if not cached.is_file():
        raise InceptionWeightsError(f"torch.hub did not leave {cached} after downloading; {_where_to_put()}")
    return cached, "download"


def build_fid_inception() -> nn.Module:
    """pytorch-fid's FID-Inception architecture (``fid_inception_v3`` minus its download), not initialised.

    torchvision's Inception3 with 1008 classes and no aux head, with the four block types swapped for
    pytorch-fid's FIDInceptionA/C/E_1/E_2 exactly as ``pytorch_fid.inception.fid_inception_v3`` does.
    """
    import torchvision
    from pytorch_fid import inception as pfi

    net = torchvision.models.inception_v3(
        weights=None, num_classes=1008, aux_logits=False, init_weights=False
    )
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    return net


def load_inception_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """torch.load(path, weights_only=True) with one-line errors for unreadable or foreign files."""
    p = Path(path)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InceptionWeightsError(
            f"cannot read Inception weights {p} ({type(exc).__name__}: {one_line(exc, 100)}); the file is "
            f"corrupt or not a weights-only state dict: delete it and {_where_to_put()}"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InceptionWeightsError(
            f"{p} is not a state dict of tensors; use pytorch-fid's {WEIGHTS_FILENAME} ({WEIGHTS_URL})"
        )
    return state


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Full float32 matmuls/convolutions on CUDA (TF32 shifts FID in the 3rd-4th digit); restores flags."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


# ---------------------------------------------------------------------------------------------- network


class InceptionFeatures(nn.Module):
    """pytorch-fid's FID-Inception in eval mode; ``forward`` gives pool3, bias-free logits and block features.

    ``weights``: a path (else the lookup of :func:`locate_inception_weights`). ``input_mode``: how images
    become the network's input, ``pytorch-fid`` (default) or ``tf1`` (see the module doc). ``info``
    describes the network, the input mode and the weights file (path, source, sha256, whether official).
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        allow_download: bool = True,
        progress: bool = True,
        input_mode: str = "pytorch-fid",
    ) -> None:
        super().__init__()
        self.input_mode = check_input_mode(input_mode)
        path, source = locate_inception_weights(weights, allow_download=allow_download, progress=progress)
        state = load_inception_state_dict(path)
        net = build_fid_inception()
        fc = state.get("fc.weight")
        if fc is None or tuple(fc.shape) != (1008, 2048):
            raise InceptionWeightsError(
                f"{path} has no 1008x2048 'fc.weight' (got {None if fc is None else tuple(fc.shape)}); "
                "it is not "
                f"the FID Inception's state dict: use {WEIGHTS_FILENAME} from {WEIGHTS_URL}"
            )
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise InceptionWeightsError(
                f"{path} does not fit pytorch-fid's FID-Inception ({one_line(exc, 160)}); "
                f"use {WEIGHTS_FILENAME} from {WEIGHTS_URL}"
            ) from None
        # The same four blocks as pytorch_fid.inception.InceptionV3 (64, 192, 768, 2048 features).
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(
                    net.Conv2d_1a_3x3,
                    net.Conv2d_2a_3x3,
                    net.Conv2d_2b_3x3,
                    nn.MaxPool2d(kernel_size=3, stride=2),
                ),
                nn.Sequential(net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2)),
                nn.Sequential(
                    net.Mixed_5b,
                    net.Mixed_5c,
                    net.Mixed_5d,
                    net.Mixed_6a,
                    net.Mixed_6b,
                    net.Mixed_6c,
                    net.Mixed_6d,
                    net.Mixed_6e,
                ),
                nn.Sequential(
                    net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, nn.AdaptiveAvgPool2d(output_size=(1, 1))
                ),
            ]
        )
        self.fc_weight = nn.Parameter(net.fc.weight.detach().clone(), requires_grad=False)  # (1008, 2048)
        self.requires_grad_(False)
        self.eval()
        self.to(device)
        sha = file_sha256(path)
        import pytorch_fid

        self.info: dict[str, Any] = {
            "network": NETWORK_NAME,
            "weights_path": str(path),
            "weights_source": source,
            "weights_sha256": sha,
            "weights_official": sha.startswith(OFFICIAL_SHA256_PREFIX),
            "pytorch_fid_version": getattr(pytorch_fid, "__version__", "unknown"),
            "input_mode": self.input_mode,
            "resize": INPUT_MODES[self.input_mode],
            "logits": "pool3 @ fc.weight.T, no bias, 1008 classes (as the TF Inception Score reference)",
        }

    @property
    def device(self) -> torch.device:
        return self.fc_weight.device

    def train(self, mode: bool = True) -> InceptionFeatures:
        """Always eval: batch-norm must use the stored statistics, never batch statistics."""
        return super().train(False)

    def preprocess(self, images: Any) -> torch.Tensor:
        """(N, C, H, W) uint8 0..255 or float 0..1, C in {1, 3} -> float32 (N, 3, 299, 299) in [-1, 1].

        Both modes read uint8 as 0..255 and floats as 0..1 (x 255 in ``tf1`` mode, where torch-fidelity
        reads uint8 only: pass uint8 images to reproduce it exactly)."""
        x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise MetricInputError(
                f"images must be (N, C, H, W) with C = 1 or 3, got shape {tuple(x.shape)}; "
                "transpose HWC images to CHW"
            )
        if x.shape[0] == 0 or x.shape[2] < 1 or x.shape[3] < 1:
            raise MetricInputError(f"empty image batch of shape {tuple(x.shape)}; pass at least one image")
        x = x.to(self.device)
        tf1 = self.input_mode == "tf1"
        if x.dtype == torch.uint8:
            # pytorch-fid: torchvision ToTensor (x / 255); tf1: the 0..255 values themselves, as TF1's graph
            x = x.to(torch.float32) if tf1 else x.to(torch.float32).div(255)
        elif x.is_floating_point():
            x = x.to(torch.float32)
            if not torch.isfinite(x).all():
                raise MetricInputError("images contain NaN or infinite values; check the generator output")
            lo, hi = float(x.min()), float(x.max())
            if lo < 0.0 or hi > 1.0:
                raise MetricInputError(
                    f"float images must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]; map [-1, 1] generator "
                    "output with (x + 1) / 2 or pass uint8 0..255"
                )
            if tf1:
                x = x * 255
        else:
            raise MetricInputError(f"images must be uint8 or float in [0, 1], got {x.dtype}; convert them")
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)  # PIL convert('RGB') of an 'L' image copies the grey value
        if tf1:
            return (resize_bilinear_tf1(x, INPUT_SIZE) - 128) / 128  # the TF graph's own normalisation
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2 * x - 1

    @torch.no_grad()
    def forward(self, images: Any, dims: Sequence[int] = ()) -> dict[str, Any]:
        """One pass: {"pool3": (N, 2048), "logits": (N, 1008), "dims": {d: (N, d)}} as float32 tensors."""
        want = _check_dims(dims)
        with no_tf32():
            x = self.preprocess(images)
            lower: dict[int, torch.Tensor] = {}
            for dim, block in zip(FID_DIMS, self.blocks, strict=True):
                x = block(x)
                if dim in want and dim != 2048:
                    # pytorch-fid's get_activations averages non-1x1 block outputs spatially.
                    lower[dim] = F.adaptive_avg_pool2d(x, output_size=(1, 1)).flatten(1)
            pool3 = x.flatten(1)
            logits = pool3 @ self.fc_weight.T
        if 2048 in want:
            lower[2048] = pool3
        return {"pool3": pool3, "logits": logits, "dims": lower}


def _check_dims(dims: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(d) for d in dims)
    bad = [d for d in out if d not in FID_DIMS]
    if bad:
        raise MetricInputError(f"fid dims {bad} not available; choose from {list(FID_DIMS)}")
    return out


# ---------------------------------------------------------------------------------------------- inputs


def list_image_files(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder``, in pytorch-fid's order (sorted paths, its extensions)."""
    root = Path(folder)
    if not root.is_dir():
        raise MetricInputError(f"image folder {root} not found; check the path")
    files = sorted(f for ext in IMAGE_EXTENSIONS for f in root.glob(f"*.{ext}"))
    if not files:
        raise MetricInputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {root}; check the folder")
    return files


def iter_image_folder(folder: str | os.PathLike, files: Sequence[Path] | None = None) -> Iterator[np.ndarray]:
    """Each image of ``folder`` (or of ``files``, a part of its list) as (3, H, W) uint8, decoded like pytorch-fid
    (PIL ``convert('RGB')``)."""
    from PIL import Image

    for f in list_image_files(folder) if files is None else files:
        try:
            with Image.open(f) as img:
                arr = np.asarray(img.convert("RGB"))
        except Exception as exc:
            raise MetricInputError(
                f"cannot decode image {f} ({one_line(exc, 100)}); remove or replace it"
            ) from None
        yield np.ascontiguousarray(arr.transpose(2, 0, 1))


class _Source:
    """Turn an array / tensor / folder / iterable of images or batches into same-shape batches."""

    def __init__(self, images: Any, batch_size: int) -> None:
        self.batch_size = batch_size
        self.total: int | None = None
        if isinstance(images, (str, os.PathLike)):
            self.total = len(list_image_files(images))
            self.items: Iterable[Any] = iter_image_folder(images)
        elif isinstance(images, (np.ndarray, torch.Tensor)):
            if images.ndim != 4:
                raise MetricInputError(
                    f"an image array must be (N, C, H, W), got shape {tuple(images.shape)}; "
                    "add the batch axis"
                )
            self.total = int(images.shape[0])
            self.items = (images[i : i + batch_size] for i in range(0, self.total, batch_size))
        else:
            self.items = images  # its len() may count batches rather than images: the bar shows no total

    def __iter__(self) -> Iterator[torch.Tensor]:
        pending: list[torch.Tensor] = []
        count = 0
        for item in self.items:
            t = item if isinstance(item, torch.Tensor) else torch.from_numpy(np.asarray(item))
            if t.dim() == 3:
                t = t.unsqueeze(0)
            if t.dim() != 4:
                raise MetricInputError(
                    "each item must be an image (C, H, W) or a batch (N, C, H, W), "
                    f"got shape {tuple(t.shape)}"
                )
            for row in t.split(1):
                if pending and (row.shape[1:] != pending[0].shape[1:] or row.dtype != pending[0].dtype):
                    yield torch.cat(pending)  # interpolation is per image, so a short batch changes nothing
                    pending = []
                pending.append(row)
                count += 1
                if len(pending) == self.batch_size:
                    yield torch.cat(pending)
                    pending = []
        if pending:
            yield torch.cat(pending)
        if count == 0:
            raise MetricInputError("no images to extract features from; pass at least 2 images")


def extract(
    images: Any,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    progress: bool = True,
    dims: Sequence[int] = (),
    model: InceptionFeatures | None = None,
    weights: str | os.PathLike | None = None,
    allow_download: bool = True,
    input_mode: str = "pytorch-fid",
) -> dict[str, Any]:
    """Inception features of many images in batches, with a progress bar (images/s and ETA).

    ``images``: (N, C, H, W) uint8 / [0, 1] float array or tensor, a folder of image files (read as
    pytorch-fid reads them), or an iterable of images (C, H, W) or batches (B, C, H, W). Returns
    ``{"pool3": (N, 2048), "logits": (N, 1008), "dims": {d: (N, d)}}`` as float32 numpy arrays, plus
    ``"n"`` and the network's ``"info"``. ``model`` reuses a loaded network (else ``weights``/``device``/
    ``input_mode``, see :class:`InceptionFeatures`).
    """
    if batch_size < 1:
        raise MetricInputError(f"batch size must be >= 1, got {batch_size}")
    want = _check_dims(dims)
    net = (
        model
        if model is not None
        else InceptionFeatures(weights, device=device, allow_download=allow_download, input_mode=input_mode)
    )
    source = _Source(images, batch_size)
    pool3: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    lower: dict[int, list[np.ndarray]] = {d: [] for d in want}
    with progress_bar(source.total, "Inception features", "img", enabled=progress) as bar:
        for batch in source:
            out = net(batch, dims=want)
            pool3.append(out["pool3"].cpu().numpy())
            logits.append(out["logits"].cpu().numpy())
            for d in want:
                lower[d].append(out["dims"][d].cpu().numpy())
            bar.update(batch.shape[0])
    return {
        "pool3": np.concatenate(pool3),
        "logits": np.concatenate(logits),
        "dims": {d: np.concatenate(v) for d, v in lower.items()},
        "n": int(sum(len(p) for p in pool3)),
        "info": dict(net.info),
    }


def write_random_inception_weights(path: str | os.PathLike, seed: int = 0, logit_scale: float = 4.0) -> Path:
    """Save a seeded random state dict of the FID-Inception architecture: a stand-in for tests and benchmarks.

    NOT a feature extractor for real scores. Convolutions get He-normal weights (fan-in, ReLU gain), which
    keeps activations from vanishing through the ~50 layers so that features differ between images;
    batch-norm layers keep the identity statistics (mean 0, var 1, scale 1, shift 0). ``fc`` gets Gaussian
    rows made orthogonal to the mean pool3 vector of a few probe images and scaled so the logits have std
    ``logit_scale`` on them: the 1008-way softmax then varies from image to image.
    """
    gen = torch.Generator().manual_seed(seed)
    net = build_fid_inception()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu", generator=gen)
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
        net.fc.weight.normal_(0.0, 1.0, generator=gen)
        net.fc.bias.normal_(0.0, 0.1, generator=gen)
        # Calibrate the logit scale on a few seeded smooth random images.
        net.eval()
        probe = torch.rand(4, 3, 8, 8, generator=gen)
        probe = (
            F.interpolate(probe, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False) * 2 - 1
        )
        feats = net.avgpool(_trunk(net, probe)).flatten(1)
        # pool3 of any image is mostly a shared positive vector; remove that direction from fc's rows so the
        # (bias-free) logits follow what differs between images instead of naming one class for all of them.
        common = feats.mean(0)
        w = net.fc.weight
        w.sub_(torch.outer(w @ common, common) / common.dot(common))
        logits = feats @ w.T
        w.mul_(logit_scale / float(logits.std()))
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), p)
    return p


def _trunk(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    for name in (
        "Conv2d_1a_3x3",
        "Conv2d_2a_3x3",
        "Conv2d_2b_3x3",
        "maxpool1",
        "Conv2d_3b_1x1",
        "Conv2d_4a_3x3",
        "maxpool2",
        "Mixed_5b",
        "Mixed_5c",
        "Mixed_5d",
        "Mixed_6a",
        "Mixed_6b",
        "Mixed_6c",
        "Mixed_6d",
        "Mixed_6e",
        "Mixed_7a",
        "Mixed_7b",
        "Mixed_7c",
    ):
        x = getattr(net, name)(x)
    return x
