"""MNIST handwritten digits (28x28 greyscale; splits ``train`` 60,000 and ``test`` 10,000).

Read from the original idx files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, plain or gzipped (``.gz``), found in the
data root or in ``root/MNIST/raw`` (where torchvision's ``MNIST`` downloads them).
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from ganbench.data.imageops import resize_batch
from ganbench.data.reader import (
    Decoded,
    Located,
    Reader,
    fingerprint_files,
    ranges,
    reason,
    subset_indices,
    torchvision_download,
)
from ganbench.errors import DataError

URL = "https://yann.lecun.com/exdb/mnist/"
CLASSES = tuple(str(d) for d in range(10))
PREFIX = {"train": "train", "test": "t10k"}
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
HOW_TO_GET = f"pass --download to fetch it ({URL})"


def _candidates(root: Path, stem: str) -> list[Path]:
    # Some mirrors spell the stem with a dot ("train-images.idx3-ubyte"); accept both spellings.
    names = [stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"]
    return [d / n for d in (root, root / "MNIST" / "raw") for n in names]


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array stored in an idx file (plain or gzipped), after checking magic number and size."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"mnist: cannot read {path} ({reason(exc)}): it is truncated or corrupt; "
            f"delete it and {HOW_TO_GET}"
        ) from None
    if len(raw) < 4 or int.from_bytes(raw[:4], "big") != magic:
        found = f"0x{int.from_bytes(raw[:4], 'big'):08x}" if len(raw) >= 4 else "none"
        raise DataError(
            f"mnist: {path} is not an idx file of the expected kind (magic number {found}, expected "
            f"0x{magic:08x}); replace it with the original MNIST file ({HOW_TO_GET})"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"mnist: {path} is truncated (header cut short); delete it and {HOW_TO_GET}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(dims)
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(
            f"mnist: {path} is {problem} ({len(raw)} bytes, header {dims} needs {expected}); "
            f"delete it and {HOW_TO_GET}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


class MnistReader(Reader):
    """MNIST from the original idx files, plain or gzipped."""

    name = "mnist"
    version = "1"
    splits = ("train", "test")
    channels = 1
    native_size = 28
    downloadable = True

    def locate(self, root: Path | None, split: str, download: bool) -> Located:
        """Find the split's image and label idx files, downloading them if asked."""
        self.check_split(split)
        assert root is not None
        files = self._find(root, split)
        if None in files and download:
            self._download(root, split)
            files = self._find(root, split)
        needs = " and ".join(s + "[.gz]" for s in self._stems(split))
        for stem, found in zip(self._stems(split), files, strict=True):
            if found is None:
                raise DataError(
                    f"mnist: missing {root / stem}[.gz] (also looked in {root / 'MNIST' / 'raw'}); "
                    f"the {split} split needs {needs}; {HOW_TO_GET}"
                )
        return Located(split, root, fingerprint_files(root, files), files)

    @staticmethod
    def _stems(split: str) -> tuple[str, str]:
        return f"{PREFIX[split]}-images-idx3-ubyte", f"{PREFIX[split]}-labels-idx1-ubyte"

    def _find(self, root: Path, split: str) -> list[Path | None]:
        return [next((p for p in _candidates(root, s) if p.is_file()), None) for s in self._stems(split)]

    def _download(self, root: Path, split: str) -> None:
        fix = f"fetch the idx .gz files from {URL} and put them in {root}"
        torchvision_download(self.name, root, "MNIST", fix, train=split == "train")

    def read(self, located: Located, image_size: int, max_images: int | None) -> Decoded:
        """Decode the idx files to (N, 1, image_size, image_size) uint8, resizing from 28 if needed."""
        images_path, labels_path = located.handle
        images = read_idx(images_path, IMAGES_MAGIC)
        labels = read_idx(labels_path, LABELS_MAGIC).astype(np.int64)
        if len(images) != len(labels):
            raise DataError(
                f"mnist: {images_path} holds {len(images)} images but {labels_path} {len(labels)} labels; "
                f"the two files come from different sets: replace them ({HOW_TO_GET})"
            )
        if labels.size and labels.max() > 9:
            raise DataError(f"mnist: {labels_path} has labels above 9; replace it ({HOW_TO_GET})")
        keep = subset_indices(len(labels), max_images)
        if keep is not None:
            images, labels = images[keep], labels[keep]
        n = len(labels)

        def chunks():
            for start, stop in ranges(n, 2000):
                yield slice(start, stop), resize_batch(images[start:stop, None], image_size)

        return Decoded(n, 1, CLASSES, labels, chunks())


READER = MnistReader()
