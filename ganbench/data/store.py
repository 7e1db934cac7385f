"""The uint8 image store: each source is decoded once, kept on disk as .npy files and memory-mapped after.

A store lives in ``cache_dir()/stores/`` as three files sharing one stem,
``<source>-<split>-<image_size>-<key16>``: ``.npy`` (images, N x C x H x W uint8), ``.labels.npy``
(int64) and ``.json`` (metadata with ``"complete": true``). The key hashes everything the pixels
depend on: source, split, root, reader version, image size, max_images and the size and mtime of
every input file, so editing the data makes a new store rather than reusing a stale one. Each file
is written under a temporary name and renamed into place, the sidecar last: a store whose sidecar
is present is whole, and anything else found under the stem is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ganbench.data import cifar10, digits, fake, folder, lsun, mnist, svhn
from ganbench.data.reader import Reader, reason
from ganbench.errors import DataError
from ganbench.files import reserved_memmap
from ganbench.progress import progress_bar

SOURCES: dict[str, Reader] = {
    "cifar10": cifar10.READER,
    "svhn": svhn.READER,
    "imagenet": folder.IMAGENET,
    "folder": folder.FOLDER,
    "lsun": lsun.READER,
    "mnist": mnist.READER,
    "digits": digits.READER,
    "fake": fake.READER,
}

# Below this many images a progress bar would flash by and only clutter the output.
PROGRESS_MIN = 500
# What ImageStore.meta holds; the sidecar adds classes, the input fingerprint and "complete".
_META_KEYS = (
    "source",
    "split",
    "root",
    "image_size",
    "channels",
    "n",
    "fingerprint",
    "cache_path",
    "max_images",
    "reader_version",
)


@dataclass
class ImageStore:
    """Decoded images (uint8 N x C x H x W, possibly a read-only memmap), their labels and metadata."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)


def cache_dir() -> Path:
    """Root of ganbench's caches: $GANBENCH_CACHE if set, else ~/.cache/ganbench."""
    env = os.environ.get("GANBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ganbench"


def load_images(
    source: str,
    root: str | os.PathLike | None,
    split: str = "train",
    *,
    image_size: int,
    download: bool = False,
    max_images: int | None = None,
    progress: bool = True,
) -> ImageStore:
    """Images of one split of a source at ``image_size`` x ``image_size``, decoded once and cached.

    root: the data directory or archive; None means ``cache_dir()/datasets/<source>`` for sources
    that can be downloaded, and is ignored by ``digits`` and ``fake``.
    max_images: keep only this many images (an evenly spaced subset; the first ones for ``lsun``).
    """
    reader = SOURCES.get(source)
    if reader is None:
        raise DataError(f"unknown image source {source!r}; known sources: {', '.join(SOURCES)}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise DataError(f"{source}: image_size must be a positive integer, got {image_size!r}")
    if max_images is not None and (
        isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1
    ):
        raise DataError(f"{source}: max_images must be a positive integer or None, got {max_images!r}")

    root_path = _resolve_root(reader, root)
    located = reader.locate(root_path, split, download)
    inputs = {
        "source": source,
        "split": located.split,
        "root": None if located.root is None else str(located.root),
        "reader_version": reader.version,
        "image_size": image_size,
        "max_images": max_images,
        "inputs": located.fingerprint,
    }
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    stores = cache_dir() / "stores"
    try:
        stores.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the store directory {stores} ({reason(exc)}); set GANBENCH_CACHE to a writable "
            f"directory"
        ) from None
    stem = f"{source}-{_safe(located.split)}-{image_size}-{key[:16]}"
    store = _open(stores, stem, key)
    if store is None:
        store = _build(reader, located, inputs, key, stores, stem, progress)
    return store


def _resolve_root(reader: Reader, root: str | os.PathLike | None) -> Path | None:
    if not reader.needs_root:
        return None
    if root is None:
        if not reader.downloadable:
            return None
        return cache_dir() / "datasets" / reader.name
    # abspath, not resolve(): keep the user's symlinked path in the metadata they will read.
    return Path(os.path.abspath(os.path.expanduser(os.fspath(root))))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def _paths(stores: Path, stem: str) -> tuple[Path, Path, Path]:
    return stores / f"{stem}.npy", stores / f"{stem}.labels.npy", stores / f"{stem}.json"


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink()
        except OSError:
            pass  # absent, or still mapped elsewhere (Windows): a later build replaces it


def _open(stores: Path, stem: str, key: str) -> ImageStore | None:
    images_path, labels_path, sidecar = _paths(stores, stem)
    if not sidecar.is_file():
        # Without a sidecar the arrays are leftovers or still being renamed into place by another
        # process; either way _build replaces them.
        return None
    try:
        info = json.loads(sidecar.read_text())
        meta = {k: info[k] for k in _META_KEYS}
        if info.get("complete") is not True or meta["fingerprint"] != key:
            raise ValueError("incomplete or foreign sidecar")
        n, channels, size = meta["n"], meta["channels"], meta["image_size"]
        images = np.load(images_path, mmap_mode="r")
        labels = np.load(labels_path)
        if images.shape != (n, channels, size, size) or images.dtype != np.uint8:
            raise ValueError("image array does not match its sidecar")
        if labels.shape != (n,) or labels.dtype != np.int64:
            raise ValueError("label array does not match its sidecar")
        classes = tuple(info["classes"])
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        # A damaged or half-written store is rebuilt, not reported: the inputs are still there.
        _remove(sidecar, images_path, labels_path)
        return None
    meta["cache_path"] = str(images_path)
    return ImageStore(images, labels, classes, meta)


def _build(
    reader: Reader, located, inputs: dict, key: str, stores: Path, stem: str, progress: bool
) -> ImageStore:
    images_path, labels_path, sidecar = _paths(stores, stem)
    _remove(sidecar, images_path, labels_path)
    decoded = reader.read(located, inputs["image_size"], inputs["max_images"])
    n, size = decoded.n, inputs["image_size"]
    if n == 0:
        where = located.root if located.root is not None else reader.name
        raise DataError(f"{reader.name}: the {located.split} split in {where} holds no images")
    labels = np.asarray(decoded.labels, dtype=np.int64)
    if labels.shape != (n,):
        raise RuntimeError(f"reader {reader.name} returned {labels.shape} labels for {n} images")

    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp_images = stores / f".{stem}.npy.{token}.tmp"
    tmp_labels = stores / f".{stem}.labels.npy.{token}.tmp"
    tmp_sidecar = stores / f".{stem}.json.{token}.tmp"
    bar = None
    try:
        images = reserved_memmap(tmp_images, np.uint8, (n, decoded.channels, size, size))
        if progress and n > PROGRESS_MIN:
            bar = progress_bar(n, f"decoding {reader.name} {located.split}", "img", file=sys.stderr,
                               dynamic_ncols=False)
        filled = 0
        for index, pixels in decoded.chunks:
            images[index] = pixels
            filled += len(pixels)
            if bar is not None:
                bar.update(len(pixels))
        if filled != n:
            raise RuntimeError(f"reader {reader.name} produced {filled} images, announced {n}")
        images.flush()
        del images
        # Mapped before the rename too, so that a concurrent rebuild removing the final name between
        # the rename and the reopen below cannot take the file away from the store returned here.
        early = np.load(tmp_images, mmap_mode="r")
        with open(tmp_labels, "wb") as f:
            np.save(f, labels)
        meta = {
            "source": reader.name,
            "split": located.split,
            "root": inputs["root"],
            "image_size": size,
            "channels": decoded.channels,
            "n": n,
            "fingerprint": key,
            "cache_path": str(images_path),
            "max_images": inputs["max_images"],
            "reader_version": reader.version,
        }
        sidecar_data = {
            **meta,
            "classes": list(decoded.classes),
            "inputs": inputs["inputs"],
            "complete": True,
        }
        tmp_sidecar.write_text(json.dumps(sidecar_data, indent=1))
        os.replace(tmp_images, images_path)
        os.replace(tmp_labels, labels_path)
        os.replace(tmp_sidecar, sidecar)
    except OSError as exc:
        raise DataError(
            f"{reader.name}: cannot write the image store in {stores} ({reason(exc)}); free disk space or "
            f"set GANBENCH_CACHE to another directory"
        ) from None
    finally:
        if bar is not None:
            bar.close()
        # Stops worker processes and closes archives now rather than whenever the traceback is freed.
        close = getattr(decoded.chunks, "close", None)
        if close is not None:
            close()
        _remove(tmp_images, tmp_labels, tmp_sidecar)
    _prune(stores, meta, stem)
    try:
        result = np.load(images_path, mmap_mode="r")  # under its final name, for anyone reading .filename
    except (OSError, ValueError):
        result = early
    return ImageStore(result, labels, tuple(decoded.classes), meta)


def _prune(stores: Path, meta: dict, keep: str) -> None:
    """Delete stores made from older versions of the same inputs: they can never be hit again."""
    prefix = f"{meta['source']}-{_safe(meta['split'])}-{meta['image_size']}-"
    for sidecar in stores.glob(f"{prefix}*.json"):
        stem = sidecar.name[: -len(".json")]
        if stem == keep:
            continue
        try:
            other = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        if other.get("root") == meta["root"] and other.get("max_images") == meta["max_images"]:
            _remove(sidecar, *_paths(stores, stem)[:2])
