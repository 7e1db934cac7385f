"""Synthetic colour images for smoke tests and examples: no files, no download, the root is ignored.

Ten classes, each a smooth two-colour gradient at a class-specific angle with a soft blob of a
third class colour, varied per image (angle, blob place and size, brightness) plus pixel noise, so
a classifier can learn the classes but not trivially. Class looks are fixed; the per-image
variation comes from a PCG64 generator seeded by the split (train 0, test 1), so the images are
identical on every machine. ``train`` holds 1,024 images and ``test`` 256 unless ``max_images`` says
how many to make.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganbench.data.reader import Decoded, Located, Reader, ranges

CLASSES = tuple(f"pattern{i}" for i in range(10))
SEEDS = {"train": 0, "test": 1}
DEFAULT_COUNT = {"train": 1024, "test": 256}
# Class looks come from their own fixed seed so that train and test share them.
_LOOK_SEED = 20151119


def _class_looks() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(_LOOK_SEED))
    colours = rng.uniform(20, 235, size=(len(CLASSES), 3, 3))  # per class: gradient start, end, blob
    angles = np.arange(len(CLASSES)) * (2 * np.pi / len(CLASSES))
    return colours, angles


def render(rng: np.random.Generator, labels: np.ndarray, size: int) -> np.ndarray:
    """Images of the given class labels as uint8 (N, 3, size, size), drawing variation from ``rng``."""
    colours, angles = _class_looks()
    k = len(labels)
    coords = (np.arange(size) + 0.5) / size - 0.5
    yy, xx = coords[None, :, None], coords[None, None, :]
    theta = angles[labels] + rng.normal(0.0, 0.2, k)
    t = np.cos(theta)[:, None, None] * xx + np.sin(theta)[:, None, None] * yy + 0.5
    t = np.clip(t, 0.0, 1.0)[:, None]
    start = colours[labels, 0][:, :, None, None]
    end = colours[labels, 1][:, :, None, None]
    blob = colours[labels, 2][:, :, None, None]
    cx, cy = rng.uniform(-0.25, 0.25, size=(2, k))
    radius = rng.uniform(0.08, 0.2, size=k)
    dist2 = (xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2
    weight = np.exp(-dist2 / (2 * radius[:, None, None] ** 2))[:, None]
    img = (start * (1 - t) + end * t) * (1 - weight) + blob * weight
    img = img * rng.uniform(0.8, 1.2, size=k)[:, None, None, None]
    img = img + rng.normal(0.0, 10.0, size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


class FakeReader(Reader):
    """Deterministic synthetic images in ten classes."""

    name = "fake"
    version = "1"
    splits = ("train", "test")
    channels = 3
    needs_root = False

    def locate(self, root: Path | None, split: str, download: bool) -> Located:
        """Nothing to find: the images are defined by the seed."""
        self.check_split(split)
        return Located(split, None, {"generator": "PCG64", "seed": SEEDS[split]})

    def read(self, located: Located, image_size: int, max_images: int | None) -> Decoded:
        """Render ``max_images`` (default 1,024 train / 256 test) images of size ``image_size``."""
        n = max_images or DEFAULT_COUNT[located.split]
        rng = np.random.Generator(np.random.PCG64(SEEDS[located.split]))
        labels = rng.permutation(np.arange(n, dtype=np.int64) % len(CLASSES))

        def chunks():
            for start, stop in ranges(n, 256):
                yield slice(start, stop), render(rng, labels[start:stop], image_size)

        return Decoded(n, 3, CLASSES, labels, chunks())


READER = FakeReader()
