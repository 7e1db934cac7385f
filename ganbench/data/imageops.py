"""Pixel work shared by the readers: decoding image files, the DCGAN resize-and-crop, whole-image resizing.

Two ways to bring an image to ``size`` x ``size``:

- ``"crop"`` (photographs of any shape: imagenet, folder, lsun): resize the shorter side to ``size``
  with bicubic filtering, then take the centre square, as in the DCGAN paper (sec. 4.3).
- ``"stretch"`` (sources with a native square size: cifar10, svhn, mnist): resize the whole image to
  ``size`` x ``size`` with bicubic filtering; nothing happens when it already has that size.

PIL antialiases when it reduces, so downsizing does not alias.
"""

from __future__ import annotations

import io
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image

from ganbench.data.reader import reason
from ganbench.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"})

# Below this many images, starting worker processes costs more than decoding in this one.
PARALLEL_MIN = 2000
# Images per task sent to a worker: large enough to amortise pickling, small enough to keep all busy.
CHUNK = 256


def is_image_name(name: str) -> bool:
    """True when the file name has one of the accepted image extensions (any case)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def resize_square(img: Image.Image, size: int) -> Image.Image:
    """The whole image resized to ``size`` x ``size`` with bicubic filtering (unchanged if already so)."""
    if img.size == (size, size):
        return img
    return img.resize((size, size), Image.Resampling.BICUBIC)


def resize_shorter_crop(img: Image.Image, size: int) -> Image.Image:
    """Shorter side resized to ``size`` (bicubic), then the centre ``size`` x ``size`` square."""
    w, h = img.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return img.crop((left, top, left + size, top + size))


def to_chw(img: Image.Image, channels: int) -> np.ndarray:
    """A PIL image as a uint8 (C, H, W) array, converted to RGB (3 channels) or greyscale (1)."""
    mode = "RGB" if channels == 3 else "L"
    if img.mode != mode:
        img = img.convert(mode)
    pixels = np.asarray(img, dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def fit_image(img: Image.Image, channels: int, size: int, fit: str) -> np.ndarray:
    """Convert, then resize ``img`` by the ``fit`` rule ("crop" or "stretch"), as a (C, size, size) array."""
    # Convert before resizing: palette and 1-bit images only support nearest-neighbour resampling.
    mode = "RGB" if channels == 3 else "L"
    if img.mode != mode:
        img = img.convert(mode)
    img = resize_shorter_crop(img, size) if fit == "crop" else resize_square(img, size)
    return to_chw(img, channels)


def decode_image(payload: str | bytes, name: str, channels: int, size: int, fit: str) -> np.ndarray:
    """Decode one image file (a path, or its bytes) to a uint8 (C, size, size) array."""
    try:
        source = payload if isinstance(payload, str) else io.BytesIO(payload)
        with Image.open(source) as img:
            # load() decodes now, so a truncated file fails here and under our message.
            img.load()
            return fit_image(img, channels, size, fit)
    except Exception as exc:  # PIL raises many types (OSError, ValueError, SyntaxError, ...)
        raise DataError(
            f"cannot decode image {name}: {reason(exc)}; the file is corrupt or not an image: "
            f"delete or replace it"
        ) from None


def decode_batch(items: list[tuple[str, str | bytes]], channels: int, size: int, fit: str) -> np.ndarray:
    """Decode ``(name, path-or-bytes)`` items into one uint8 (N, C, size, size) array."""
    out = np.empty((len(items), channels, size, size), dtype=np.uint8)
    for i, (name, payload) in enumerate(items):
        out[i] = decode_image(payload, name, channels, size, fit)
    return out


def resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    """Each image of a uint8 (N, C, H, W) array resized whole to ``size`` x ``size`` (bicubic)."""
    n, channels, h, w = images.shape
    if (h, w) == (size, size):
        return images
    out = np.empty((n, channels, size, size), dtype=np.uint8)
    for i in range(n):
        plane = images[i, 0] if channels == 1 else np.ascontiguousarray(images[i].transpose(1, 2, 0))
        out[i] = to_chw(resize_square(Image.fromarray(plane), size), channels)
    return out


def worker_count() -> int:
    """CPU cores this process may use, capped at 16."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(16, cores))


def _batched(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def decode_stream(
    items: Iterable[tuple[str, str | bytes]], total: int, channels: int, size: int, fit: str
) -> Iterator[np.ndarray]:
    """Decode ``(name, path-or-bytes)`` items in order, yielding uint8 (k, C, size, size) chunks.

    With more than PARALLEL_MIN images the work is spread over worker processes; ``items`` is
    consumed lazily either way, so bytes read from an archive never pile up in memory.
    """
    workers = worker_count()
    if total <= PARALLEL_MIN or workers < 2:
        for batch in _batched(items, CHUNK):
            yield decode_batch(batch, channels, size, fit)
        return
    # fork starts workers in milliseconds and, unlike spawn, does not re-import the caller's
    # __main__ (a user script without a main guard would otherwise run again in every worker).
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork") if os.name == "posix" and "fork" in methods else None
    pool = ProcessPoolExecutor(workers, mp_context=context)
    pending: deque = deque()
    try:
        for batch in _batched(items, CHUNK):
            pending.append(pool.submit(decode_batch, batch, channels, size, fit))
            # A bounded queue keeps memory flat and still lets every worker stay busy.
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
