"""Image-folder trees (``<split>/<class>/<images>``) on disk or inside a tar archive.

Both kinds of tree answer the same three questions (which sub-directories, are there images here,
which images lie below), so the layout rules are written once: a split directory ``<split>/``,
else (for ``train``) class directories right at the top, each also tried one level down when the
top holds a single directory, as archives usually do.
"""

from __future__ import annotations

import os
import tarfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganbench.data.imageops import decode_stream, is_image_name
from ganbench.data.reader import Decoded, reason, subset_indices
from ganbench.errors import DataError

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def is_archive(path: Path) -> bool:
    """True when ``path`` names a tar archive (plain or compressed) by its suffix."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _hidden(name: str) -> bool:
    # Skips dot-files and macOS resource forks ("._x.jpg", "__MACOSX/") that tools add to archives.
    return name.startswith(".") or name == "__MACOSX"


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


class DiskTree:
    """An image tree in a directory; paths are posix strings relative to ``base``."""

    def __init__(self, base: Path):
        self.base = base

    def _entries(self, rel: str) -> list[os.DirEntry]:
        try:
            with os.scandir(self.base / rel) as it:
                return [e for e in it if not _hidden(e.name)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def subdirs(self, rel: str) -> list[str]:
        """Sorted names of the directories in ``rel``."""
        return sorted(e.name for e in self._entries(rel) if e.is_dir())

    def has_images(self, rel: str) -> bool:
        """True when ``rel`` directly holds an image file."""
        return any(is_image_name(e.name) and e.is_file() for e in self._entries(rel))

    def images_under(self, rel: str) -> list[str]:
        """Sorted relative paths of every image file below ``rel``, at any depth."""
        found = []
        for dirpath, dirnames, filenames in os.walk(self.base / rel, followlinks=True):
            dirnames[:] = [d for d in dirnames if not _hidden(d)]
            here = Path(dirpath).relative_to(self.base).as_posix()
            found.extend(_join(here, f) for f in filenames if is_image_name(f) and not _hidden(f))
        return sorted(found)

    def describe(self, rel: str) -> str:
        """How to name ``rel`` in a message."""
        return str(self.base / rel) if rel else str(self.base)


class TarTree:
    """An image tree inside a tar archive, listed once; members are read back by ``read_members``."""

    def __init__(self, archive: Path, what: str):
        self.archive = archive
        self.members: dict[str, tarfile.TarInfo] = {}
        self._dirs: dict[str, set[str]] = defaultdict(set)
        self._files: dict[str, list[str]] = defaultdict(list)
        try:
            with tarfile.open(archive) as tf:
                infos = tf.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(
                f"{what}: cannot read archive {archive}: {reason(exc)}; the archive is truncated or "
                f"corrupt: download it again"
            ) from None
        for info in infos:
            name = info.name.removeprefix("./").strip("/")
            parts = name.split("/")
            if not info.isfile() or any(_hidden(p) for p in parts):
                continue
            self.members[name] = info
            for depth in range(len(parts) - 1):
                self._dirs["/".join(parts[:depth])].add(parts[depth])
            self._files["/".join(parts[:-1])].append(name)

    def subdirs(self, rel: str) -> list[str]:
        """Sorted names of the directories in ``rel``."""
        return sorted(self._dirs.get(rel, ()))

    def has_images(self, rel: str) -> bool:
        """True when ``rel`` directly holds an image file."""
        return any(is_image_name(n) for n in self._files.get(rel, ()))

    def images_under(self, rel: str) -> list[str]:
        """Sorted member names of every image file below ``rel``, at any depth."""
        prefix = f"{rel}/" if rel else ""
        return sorted(n for n in self.members if n.startswith(prefix) and is_image_name(n))

    def describe(self, rel: str) -> str:
        """How to name ``rel`` in a message."""
        return f"{self.archive}:{rel}/" if rel else str(self.archive)


Tree = DiskTree | TarTree


def candidate_bases(tree: Tree, split: str) -> list[str]:
    """Where a layout for ``split`` may start: the top, and the single directory below it if that is all.

    A single top directory that itself holds class directories is only a wrapper worth entering for
    ``train``; for other splits it is a split directory, and its class directories are not splits.
    """
    bases = [""]
    top = tree.subdirs("")
    if len(top) == 1 and not tree.has_images(""):
        if split == "train" or not holds_classes(tree, top[0]):
            bases.append(top[0])
    return bases


def holds_classes(tree: Tree, rel: str) -> bool:
    """True when some directory in ``rel`` directly holds images, i.e. ``rel`` looks like ``<class>/*``."""
    return any(tree.has_images(_join(rel, d)) for d in tree.subdirs(rel))


def find_split(tree: Tree, split: str) -> str | None:
    """The directory holding the class directories of ``split``, or None when there is none."""
    for base in candidate_bases(tree, split):
        if split in tree.subdirs(base):
            return _join(base, split)
        if split == "train" and holds_classes(tree, base):
            return base
    return None


def available_splits(tree: Tree) -> list[str]:
    """Names that ``find_split`` would accept, for error messages."""
    names = set()
    for base in candidate_bases(tree, ""):
        names.update(d for d in tree.subdirs(base) if holds_classes(tree, _join(base, d)))
    if find_split(tree, "train") is not None:
        names.add("train")
    return sorted(names)


@dataclass
class FolderIndex:
    """The images of one split: their paths (relative to the tree), labels and the class names."""

    tree: Tree
    split_rel: str
    classes: tuple[str, ...]
    paths: list[str]
    labels: np.ndarray


def index_split(tree: Tree, split_rel: str, classes: tuple[str, ...] | None = None) -> FolderIndex:
    """Every image of the split at ``split_rel``, labelled by class directory.

    classes: the class names in label order; default, the directories found, sorted alphabetically.
    """
    classes = tuple(tree.subdirs(split_rel)) if classes is None else classes
    paths: list[str] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        found = tree.images_under(_join(split_rel, cls))
        paths.extend(found)
        labels.extend([label] * len(found))
    return FolderIndex(tree, split_rel, classes, paths, np.asarray(labels, dtype=np.int64))


def decode_index(index: FolderIndex, channels: int, size: int, fit: str, max_images: int | None) -> Decoded:
    """Decode the images of ``index`` (or an evenly spaced ``max_images`` of them) lazily, chunk by chunk."""
    keep = subset_indices(len(index.paths), max_images)
    paths = index.paths if keep is None else [index.paths[i] for i in keep]
    labels = index.labels if keep is None else index.labels[keep]
    n = len(paths)
    if isinstance(index.tree, TarTree):
        chunks = _tar_chunks(index.tree, paths, channels, size, fit)
    else:
        chunks = _disk_chunks(index.tree, paths, channels, size, fit)
    return Decoded(n, channels, index.classes, labels, chunks)


def _disk_chunks(tree: DiskTree, paths: list[str], channels: int, size: int, fit: str) -> Iterator:
    items = ((str(tree.base / p), str(tree.base / p)) for p in paths)
    start = 0
    for pixels in decode_stream(items, len(paths), channels, size, fit):
        yield slice(start, start + len(pixels)), pixels
        start += len(pixels)


def _tar_chunks(tree: TarTree, paths: list[str], channels: int, size: int, fit: str) -> Iterator:
    # Members are read in archive order (a compressed tar cannot seek backwards cheaply) and each
    # decoded chunk is scattered to its place in the store's sorted order.
    infos = [tree.members[p] for p in paths]
    order = np.argsort(np.asarray([i.offset for i in infos], dtype=np.int64), kind="stable")

    def items():
        try:
            with tarfile.open(tree.archive) as tf:
                for position in order:
                    info = infos[position]
                    name = f"{tree.archive}:{paths[position]}"
                    handle = tf.extractfile(info)
                    yield name, handle.read() if handle is not None else b""
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(
                f"cannot read archive {tree.archive}: {reason(exc)}; the archive is truncated or corrupt: "
                f"download it again"
            ) from None

    start = 0
    for pixels in decode_stream(items(), len(paths), channels, size, fit):
        yield order[start : start + len(pixels)], pixels
        start += len(pixels)
