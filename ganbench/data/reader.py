"""The contract between an image source and the store, and the small helpers every source shares.

A reader works in two steps so that a cached store can be reused without decoding anything:
``locate`` finds the input files and fingerprints them from ``os.stat`` alone, and ``read``
decodes them, handing the store its images chunk by chunk so that a large source never has to
sit in memory twice.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ganbench.errors import DataError, one_line

# A chunk is written into the store as ``images[index] = pixels``; index is a slice for sources read in
# order, an index array for sources (tar archives) whose storage order differs from the store's order.
Chunk = tuple[slice | np.ndarray, np.ndarray]


@dataclass
class Located:
    """Input files of one split, found and fingerprinted without decoding them."""

    split: str
    root: Path | None
    fingerprint: dict
    handle: Any = None


@dataclass
class Decoded:
    """What a reader hands the store: sizes and labels up front, pixels as a stream of chunks."""

    n: int
    channels: int
    classes: tuple[str, ...]
    labels: np.ndarray
    chunks: Iterable[Chunk]


class Reader:
    """Base of the image sources; subclasses fill in the class attributes, ``locate`` and ``read``."""

    name: str = ""
    version: str = "1"
    splits: tuple[str, ...] = ("train", "test")
    channels: int = 3
    native_size: int | None = None
    needs_root: bool = True
    downloadable: bool = False

    def locate(self, root: Path | None, split: str, download: bool) -> Located:
        """Find the files of ``split`` under ``root`` (downloading them if asked) and fingerprint them."""
        raise NotImplementedError

    def read(self, located: Located, image_size: int, max_images: int | None) -> Decoded:
        """Decode the located files into ``image_size`` x ``image_size`` uint8 images."""
        raise NotImplementedError

    def check_split(self, split: str) -> str:
        """Return ``split`` if this source has it, else raise DataError listing the valid ones."""
        if split not in self.splits:
            raise DataError(f"{self.name}: unknown split {split!r}; valid splits: {', '.join(self.splits)}")
        return split

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} splits={self.splits}>"


def reason(exc: BaseException) -> str:
    """Short one-line description of an exception for use inside a DataError message."""
    text = one_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def torchvision_download(name: str, root: Path, dataset: str, fix: str, **kwargs: Any) -> None:
    """Fetch a dataset with torchvision's downloader (checksummed) into root, or raise one DataError line.

    dataset: the torchvision.datasets class name; kwargs: its split arguments; fix: what to do by hand instead.
    """
    try:
        import torchvision.datasets

        root.mkdir(parents=True, exist_ok=True)
        getattr(torchvision.datasets, dataset)(str(root), download=True, **kwargs)
    except Exception as exc:
        raise DataError(f"{name}: download into {root} failed ({reason(exc)}); {fix}") from None


def fingerprint_files(base: Path, files: Iterable[Path], extra: dict | None = None) -> dict:
    """Digest of each file's path relative to ``base``, size and mtime_ns (what identifies the inputs)."""
    digest = hashlib.sha256()
    count = 0
    for path in files:
        st = os.stat(path)
        try:
            rel = Path(path).relative_to(base).as_posix()
        except ValueError:
            rel = Path(path).as_posix()
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        count += 1
    out = {"files": count, "stat_sha256": digest.hexdigest()}
    if extra:
        out.update(extra)
    return out


def subset_indices(total: int, max_images: int | None) -> np.ndarray | None:
    """Evenly spaced indices of ``max_images`` out of ``total`` (None when everything is kept).

    Spacing them evenly rather than taking the first ones keeps class-sorted sources
    (image folders) balanced across classes.
    """
    if max_images is None or max_images >= total:
        return None
    return (np.arange(max_images, dtype=np.int64) * total) // max_images


def ranges(n: int, step: int) -> Iterator[tuple[int, int]]:
    """Consecutive ``(start, stop)`` pairs covering ``range(n)`` in steps of ``step``."""
    for start in range(0, n, step):
        yield start, min(n, start + step)


def pick(seq: Sequence, indices: np.ndarray | None) -> list:
    """Items of ``seq`` at ``indices`` (all of them when indices is None)."""
    return list(seq) if indices is None else [seq[i] for i in indices]
