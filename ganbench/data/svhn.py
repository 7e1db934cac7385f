"""SVHN, the Street View House Numbers (format 2: 32x32 colour digit crops).

Splits ``train`` (73,257), ``test`` (26,032) and ``extra`` (531,131), read from the official MATLAB
files ``train_32x32.mat``, ``test_32x32.mat`` and ``extra_32x32.mat`` in the data root (the layout
torchvision's ``SVHN`` downloads to). Each holds ``X`` (H x W x C x N, uint8) and ``y`` (N x 1).

The files label the digit 0 as 10; like torchvision, this reader maps 10 to 0, so labels are the
digits themselves, 0..9.
"""

from __future__ import annotations

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

URL = "http://ufldl.stanford.edu/housenumbers/"
CLASSES = tuple(str(d) for d in range(10))


def _file_name(split: str) -> str:
    return f"{split}_32x32.mat"


class SvhnReader(Reader):
    """SVHN format 2 from the official ``<split>_32x32.mat`` files."""

    name = "svhn"
    version = "1"
    splits = ("train", "test", "extra")
    channels = 3
    native_size = 32
    downloadable = True

    def locate(self, root: Path | None, split: str, download: bool) -> Located:
        """Find ``<split>_32x32.mat`` in the root, downloading it if asked."""
        self.check_split(split)
        assert root is not None
        path = root / _file_name(split)
        if not path.is_file() and download:
            self._download(root, split)
        if not path.is_file():
            where = "does not exist" if not root.exists() else "has no such file"
            raise DataError(
                f"svhn: missing {path} ({root} {where}); expected the format-2 files train_32x32.mat, "
                f"test_32x32.mat, extra_32x32.mat in the data root; pass --download to fetch it ({URL})"
            )
        return Located(split, root, fingerprint_files(root, [path]), path)

    def _download(self, root: Path, split: str) -> None:
        fix = f"fetch {_file_name(split)} from {URL} and put it in {root}"
        torchvision_download(self.name, root, "SVHN", fix, split=split)

    def read(self, located: Located, image_size: int, max_images: int | None) -> Decoded:
        """Decode the .mat file to (N, 3, image_size, image_size) uint8, resizing from 32 if needed."""
        path: Path = located.handle
        bad = f"svhn: {path} is truncated or corrupt"
        again = f"delete it and pass --download, or fetch it again from {URL}"
        try:
            from scipy.io import loadmat

            mat = loadmat(str(path), variable_names=["X", "y"])
        except Exception as exc:  # scipy raises many types for a damaged file
            raise DataError(f"{bad} ({reason(exc)}); {again}") from None
        x, y = mat.get("X"), mat.get("y")
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[2] != 3 or x.dtype != np.uint8:
            raise DataError(f"{bad}: no uint8 H x W x 3 x N array 'X' in it; {again}")
        if not isinstance(y, np.ndarray) or y.size != x.shape[3]:
            raise DataError(f"{bad}: 'y' does not hold one label per image; {again}")
        labels = y.reshape(-1).astype(np.int64)
        if labels.size and (labels.min() < 0 or labels.max() > 10):
            raise DataError(f"{bad}: labels outside 1..10; {again}")
        labels[labels == 10] = 0
        keep = subset_indices(len(labels), max_images)
        if keep is not None:
            x, labels = x[..., keep], labels[keep]
        n = len(labels)

        def chunks():
            for start, stop in ranges(n, 2000):
                batch = np.ascontiguousarray(x[..., start:stop].transpose(3, 2, 0, 1))
                yield slice(start, stop), resize_batch(batch, image_size)

        return Decoded(n, 3, CLASSES, labels, chunks())


READER = SvhnReader()
