"""A small CNN for 1x32x32 digits, and the "digits-IS" / "digits-FID" it gives the offline demo.

The demo trains on scikit-learn's 1,797 8x8 digits, for which no Inception weights are needed or
meaningful. These scores use the same formulas as the Inception Score and FID but with this
classifier's 10-way softmax and 128-d penultimate features (the approach of e.g. MNIST-trained
"classifier scores"); their values are on a different scale from Inception numbers and must be
reported under their own names (digits_is_*, digits_fid), never as IS / FID.

The shipped weights (``ganbench/assets/digits_classifier.pt``) come from
``python -m ganbench.metrics.train_digits_classifier --out ganbench/assets/digits_classifier.pt``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganbench.metrics.errors import MetricInputError, one_line
from ganbench.metrics.fid import feature_statistics, frechet_distance
from ganbench.metrics.inception_score import inception_score

__all__ = [
    "ARCH",
    "DEFAULT_WEIGHTS",
    "DigitsClassifier",
    "digits_features",
    "digits_fid",
    "digits_images",
    "digits_is",
    "digits_metrics",
    "load_digits_classifier",
    "split_indices",
]

ARCH = "ganbench-digits-cnn-v1"
IMAGE_SIZE = 32
FEATURE_DIM = 128
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "digits_classifier.pt"


class DigitsClassifier(nn.Module):
    """conv16-pool-conv32-pool-conv64-pool -> fc128 (features) -> fc10 (logits), for (N, 1, 32, 32) input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 4 * 4, FEATURE_DIM)
        self.fc2 = nn.Linear(FEATURE_DIM, 10)
        self.dropout = nn.Dropout(0.3)

    @staticmethod
    def preprocess(images: Any) -> torch.Tensor:
        """(N, 1, 32, 32) uint8 0..255 or float in [-1, 1] (the demo generator's tanh) -> float32 [-1, 1]."""
        x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4 or x.shape[1] != 1 or tuple(x.shape[2:]) != (IMAGE_SIZE, IMAGE_SIZE):
            raise MetricInputError(
                f"the digits classifier takes (N, 1, {IMAGE_SIZE}, {IMAGE_SIZE}) images, "
                f"got {tuple(x.shape)}; "
                "use the demo's 1-channel 32x32 digits"
            )
        if x.dtype == torch.uint8:
            return x.to(torch.float32).div(127.5).sub(1.0)
        if not x.is_floating_point():
            raise MetricInputError(f"digit images must be uint8 or float in [-1, 1], got {x.dtype}")
        x = x.to(torch.float32)
        if not torch.isfinite(x).all():
            raise MetricInputError("digit images contain NaN or infinite values; check the generator output")
        lo, hi = float(x.min()), float(x.max())
        if lo < -1.0 - 1e-3 or hi > 1.0 + 1e-3:
            raise MetricInputError(
                f"float digit images must lie in [-1, 1], got [{lo:.3g}, {hi:.3g}]; "
                "pass uint8 0..255 or tanh output"
            )
        return x.clamp(-1.0, 1.0)

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(penultimate 128-d ReLU features, 10-way logits) of preprocessed input."""
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        h = F.max_pool2d(F.relu(self.conv3(h)), 2)
        feats = F.relu(self.fc1(h.flatten(1)))
        return feats, self.fc2(self.dropout(feats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(x)[1]


def digits_images(size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 digits as (N, 1, size, size) uint8 and labels, prepared like the demo's data.

    Same recipe as ``ganbench.data.digits``: 0..16 -> round(v * 255 / 16), then PIL bilinear resize.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = np.floor(bunch.images * (255.0 / 16.0) + 0.5).clip(0, 255).astype(np.uint8)
    out = np.empty((len(small), 1, size, size), dtype=np.uint8)
    for i, img in enumerate(small):
        out[i, 0] = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))
    return out, np.asarray(bunch.target, dtype=np.int64)


def split_indices(
    labels: np.ndarray, seed: int = 0, test_fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified (train, test) index split; the shipped classifier's accuracy is on this test part."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    train, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=labels)
    return np.sort(train), np.sort(test)


_LOADED: dict[tuple[str, int], tuple[DigitsClassifier, dict[str, Any]]] = {}


def load_digits_classifier(path: str | os.PathLike | None = None) -> tuple[DigitsClassifier, dict[str, Any]]:
    """(model in eval mode, metadata) from the shipped weights or ``path``; loaded with weights_only=True."""
    p = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not p.is_file():
        raise MetricInputError(
            f"digits classifier weights {p} not found; rebuild them with "
            f"python -m ganbench.metrics.train_digits_classifier --out {p}"
        )
    key = (str(p.resolve()), p.stat().st_mtime_ns)
    if key in _LOADED:
        return _LOADED[key]
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("meta", {}).get("arch") != ARCH:
            raise ValueError(f"not a {ARCH} file")
        model = DigitsClassifier()
        model.load_state_dict(blob["state_dict"])
    except Exception as exc:
        raise MetricInputError(
            f"cannot load digits classifier {p} ({type(exc).__name__}: {one_line(exc, 100)}); "
            "rebuild it with "
            f"python -m ganbench.metrics.train_digits_classifier --out {p}"
        ) from None
    model.eval().requires_grad_(False)
    _LOADED[key] = (model, dict(blob["meta"]))
    return _LOADED[key]


@torch.no_grad()
def digits_features(
    images: Any, model: DigitsClassifier | None = None, batch_size: int = 512
) -> dict[str, np.ndarray]:
    """{"features": (N, 128), "logits": (N, 10)} float32 for (N, 1, 32, 32) uint8 / [-1, 1] images."""
    net = model if model is not None else load_digits_classifier()[0]
    net.eval()
    x = DigitsClassifier.preprocess(images)
    if x.shape[0] == 0:
        raise MetricInputError("no digit images given; pass at least 2")
    feats, logits = [], []
    for batch in x.split(batch_size):
        f, lg = net.features_and_logits(batch)
        feats.append(f.numpy())
        logits.append(lg.numpy())
    return {"features": np.concatenate(feats), "logits": np.concatenate(logits)}


def digits_is(
    images: Any, splits: int = 10, seed: int | None = 0, model: DigitsClassifier | None = None
) -> tuple[float, float]:
    """digits-IS (mean, std): the Inception Score formula on the classifier's 10-way softmax (at most 10)."""
    return inception_score(digits_features(images, model)["logits"], splits=splits, seed=seed)


def digits_fid(real_images: Any, fake_images: Any, model: DigitsClassifier | None = None) -> float:
    """digits-FID: Frechet distance between the classifier's 128-d penultimate features of two image sets."""
    real = digits_features(real_images, model)["features"]
    fake = digits_features(fake_images, model)["features"]
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


def digits_metrics(
    real_images: Any,
    fake_images: Any,
    splits: int = 10,
    seed: int | None = 0,
    path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """{"digits_fid", "digits_is_mean", "digits_is_std", "n_real", "n_fake", "classifier"} for the demo."""
    model, meta = load_digits_classifier(path)
    real = digits_features(real_images, model)
    fake = digits_features(fake_images, model)
    is_mean, is_std = inception_score(fake["logits"], splits=splits, seed=seed)
    fid = frechet_distance(*feature_statistics(real["features"]), *feature_statistics(fake["features"]))
    return {
        "digits_fid": fid,
        "digits_is_mean": is_mean,
        "digits_is_std": is_std,
        "n_real": int(real["features"].shape[0]),
        "n_fake": int(fake["features"].shape[0]),
        "classifier": f"{ARCH} (held-out accuracy {meta.get('test_accuracy', float('nan')):.4f})",
    }
