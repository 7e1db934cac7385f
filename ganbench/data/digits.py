"""scikit-learn's embedded handwritten digits: 1,797 real 8x8 greyscale images of the digits 0..9.

They ship inside scikit-learn (``sklearn.datasets.load_digits``), so no data root or download is
needed: the root is ignored. There is a single set of images; the splits ``train`` and ``all`` both
name all 1,797 of them. Pixel values 0..16 are scaled to 0..255 (``round(v * 255 / 16)``), then each
image is resized to the requested size with bilinear filtering.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ganbench.data.reader import Decoded, Located, Reader, reason, subset_indices
from ganbench.errors import DataError

CLASSES = tuple(str(d) for d in range(10))


class DigitsReader(Reader):
    """The 8x8 digits embedded in scikit-learn."""

    name = "digits"
    version = "1"
    splits = ("train", "all")
    channels = 1
    native_size = 8
    needs_root = False

    def locate(self, root: Path | None, split: str, download: bool) -> Located:
        """Nothing to find: the data is scikit-learn's, identified by its version."""
        self.check_split(split)
        try:
            import sklearn
        except ImportError as exc:
            raise DataError(
                f"digits: scikit-learn is needed ({reason(exc)}); pip install scikit-learn"
            ) from None
        return Located(split, None, {"sklearn": sklearn.__version__})

    def read(self, located: Located, image_size: int, max_images: int | None) -> Decoded:
        """All 1,797 digits (or an evenly spaced ``max_images``) as (N, 1, image_size, image_size) uint8."""
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = np.floor(bunch.images * (255.0 / 16.0) + 0.5).clip(0, 255).astype(np.uint8)
        labels = np.asarray(bunch.target, dtype=np.int64)
        keep = subset_indices(len(labels), max_images)
        if keep is not None:
            images, labels = images[keep], labels[keep]
        out = np.empty((len(labels), 1, image_size, image_size), dtype=np.uint8)
        for i, img in enumerate(images):
            pil = Image.fromarray(img)
            if pil.size != (image_size, image_size):
                pil = pil.resize((image_size, image_size), Image.Resampling.BILINEAR)
            out[i, 0] = np.asarray(pil)
        return Decoded(len(labels), 1, CLASSES, labels, [(slice(0, len(labels)), out)])


READER = DigitsReader()
