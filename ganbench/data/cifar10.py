"""CIFAR-10 (60,000 32x32 colour images in 10 classes; splits ``train`` 50,000 and ``test`` 10,000).

Accepted layouts under the data root:

- torchvision's ``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``, ``test_batch``: the
  official python pickles), or the root being that folder itself; ``--download`` fetches this one;
- image folders ``{train,test}/<class>/*.png|jpg`` named with the 10 standard classes, directly
  under the root or one directory down (``root/cifar10-jpg/train/...``);
- a ``.tar``/``.tar.gz`` archive holding either of the above, passed as the root and read in place.

Labels follow the standard class order (airplane=0 .. truck=9) whatever the layout.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from ganbench.data.imagefolder import DiskTree, FolderIndex, TarTree, decode_index, find_split, index_split
from ganbench.data.imagefolder import is_archive as _is_archive
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

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PICKLE_DIR = "cifar-10-batches-py"
BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
LAYOUTS = (
    f"{PICKLE_DIR}/{{data_batch_1..5,test_batch}} (torchvision layout), {{train,test}}/<class>/*.png|jpg "
    f"image folders with the 10 CIFAR-10 class names, or a .tar/.tar.gz of either given as the root"
)
HOW_TO_GET = f"pass --download to fetch it ({URL})"

# Global names a CIFAR-10 batch may reference: numpy's array reconstruction, plus the two that
# Python 3 uses to write bytes in protocol-2 pickles (re-exported batches contain them).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("builtins", "bytes"),
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except numpy array reconstruction, so a batch cannot run code."""

    def __init__(self, file, name: str):
        super().__init__(file, encoding="bytes")
        self._name = name

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise DataError(
                f"cifar10: {self._name} references {module}.{name}, which a CIFAR-10 batch never does; "
                f"refusing to unpickle it: replace the file ({HOW_TO_GET})"
            )
        return super().find_class(module, name)


def load_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 from the bytes of one CIFAR-10 pickle batch."""
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), name).load()
    except DataError:
        raise
    except Exception as exc:  # unpickling truncated bytes raises many types
        raise DataError(
            f"cifar10: cannot unpickle {name} ({reason(exc)}): the file is truncated or corrupt; "
            f"delete it and {HOW_TO_GET}"
        ) from None
    if not isinstance(batch, dict):
        raise DataError(f"cifar10: {name} does not hold a CIFAR-10 batch dict; replace it ({HOW_TO_GET})")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(
            f"cifar10: {name} has no uint8 (N, 3072) 'data' array as CIFAR-10 batches do; "
            f"replace it ({HOW_TO_GET})"
        )
    if labels is None or len(labels) != len(data):
        raise DataError(
            f"cifar10: {name} has {0 if labels is None else len(labels)} labels for {len(data)} images; "
            f"replace it ({HOW_TO_GET})"
        )
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"cifar10: {name} has labels outside 0..9; replace it ({HOW_TO_GET})")
    return data.reshape(-1, 3, 32, 32), labels


class Cifar10Reader(Reader):
    """CIFAR-10 from the torchvision pickles, image folders, or an archive of either."""

    name = "cifar10"
    version = "1"
    splits = ("train", "test")
    channels = 3
    native_size = 32
    downloadable = True

    def locate(self, root: Path | None, split: str, download: bool) -> Located:
        """Find the files of ``split`` in any accepted layout, downloading the pickles if asked."""
        self.check_split(split)
        assert root is not None
        if root.is_file():
            if not _is_archive(root):
                raise DataError(
                    f"cifar10: {root} is a file but not a .tar/.tar.gz archive; expected under a data root: "
                    f"{LAYOUTS}; {HOW_TO_GET}"
                )
            return Located(split, root, fingerprint_files(root.parent, [root]), ("archive", root))
        try:
            found = self._find_on_disk(root, split) if root.is_dir() else None
        except DataError:
            if not download:
                raise
            found = None
        if found is None and download:
            self._download(root, split)
            found = self._find_on_disk(root, split)
        if found is None:
            where = f"no CIFAR-10 {split} split in {root}" if root.is_dir() else f"{root} does not exist"
            raise DataError(f"cifar10: {where}; expected {LAYOUTS}; {HOW_TO_GET}")
        return found

    def _find_on_disk(self, root: Path, split: str) -> Located | None:
        all_batches = BATCHES["train"] + BATCHES["test"]
        if root.name == PICKLE_DIR or any((root / b).exists() for b in all_batches):
            pickle_dir = root
        else:
            pickle_dir = root / PICKLE_DIR
        if pickle_dir.is_dir():
            files = [pickle_dir / b for b in BATCHES[split]]
            for f in files:
                if not f.is_file():
                    raise DataError(
                        f"cifar10: missing {f} (the {split} split needs {', '.join(BATCHES[split])} in "
                        f"{pickle_dir}); the copy is incomplete: delete {pickle_dir} and {HOW_TO_GET}"
                    )
            return Located(
                split, root, fingerprint_files(root, files, {"layout": "pickle"}), ("pickle", files)
            )
        tree = DiskTree(root)
        split_rel = find_split(tree, split)
        if split_rel is None:
            return None
        index = _index_classes(tree, split_rel)
        files = [root / p for p in index.paths]
        fingerprint = fingerprint_files(root, files, {"layout": "folder"})
        return Located(split, root, fingerprint, ("folder", index))

    def _download(self, root: Path, split: str) -> None:
        fix = f"fetch cifar-10-python.tar.gz from {URL} and extract it there, so that {root / PICKLE_DIR} exists"
        torchvision_download(self.name, root, "CIFAR10", fix, train=split == "train")

    def read(self, located: Located, image_size: int, max_images: int | None) -> Decoded:
        """Decode the located split to (N, 3, image_size, image_size) uint8, resizing from 32 if needed."""
        kind, what = located.handle
        if kind == "pickle":
            batches = [(f.read_bytes(), str(f)) for f in what]
            return _decode_batches(batches, image_size, max_images)
        if kind == "folder":
            return decode_index(what, 3, image_size, "stretch", max_images)
        return _read_archive(what, located.split, image_size, max_images)


def _index_classes(tree: DiskTree | TarTree, split_rel: str) -> FolderIndex:
    found = tree.subdirs(split_rel)
    missing = [c for c in CLASSES if c not in found]
    extra = [c for c in found if c not in CLASSES]
    if missing or extra:
        problem = f"missing {', '.join(missing)}" if missing else f"unexpected {', '.join(extra)}"
        raise DataError(
            f"cifar10: class folders in {tree.describe(split_rel)} do not match CIFAR-10 ({problem}); "
            f"expected exactly {', '.join(CLASSES)}; {HOW_TO_GET}"
        )
    index = index_split(tree, split_rel, CLASSES)
    if not index.paths:
        raise DataError(
            f"cifar10: no images (.png, .jpg, ...) in {tree.describe(split_rel)}/<class>/; expected {LAYOUTS}"
        )
    return index


def _decode_batches(batches: list[tuple[bytes, str]], image_size: int, max_images: int | None) -> Decoded:
    images, labels = [], []
    for raw, name in batches:
        data, lab = load_batch(raw, name)
        images.append(data)
        labels.append(lab)
    all_images = np.concatenate(images)
    all_labels = np.concatenate(labels)
    keep = subset_indices(len(all_images), max_images)
    if keep is not None:
        all_images, all_labels = all_images[keep], all_labels[keep]

    def chunks():
        for start, stop in ranges(len(all_images), 1000):
            yield slice(start, stop), resize_batch(all_images[start:stop], image_size)

    return Decoded(len(all_images), 3, CLASSES, all_labels, chunks())


def _read_archive(archive: Path, split: str, image_size: int, max_images: int | None) -> Decoded:
    tree = TarTree(archive, "cifar10")
    pickles = {n.rsplit("/", 1)[-1]: n for n in tree.members if n.rsplit("/", 1)[-1] in BATCHES[split]}
    if pickles:
        missing = [b for b in BATCHES[split] if b not in pickles]
        if missing:
            raise DataError(
                f"cifar10: archive {archive} lacks {missing[0]} (the {split} split needs "
                f"{', '.join(BATCHES[split])}); download cifar-10-python.tar.gz again ({URL})"
            )
        batches = []
        try:
            with tarfile.open(archive) as tf:
                for b in BATCHES[split]:
                    handle = tf.extractfile(tree.members[pickles[b]])
                    batches.append((handle.read() if handle else b"", f"{archive}:{pickles[b]}"))
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(
                f"cifar10: cannot read archive {archive} ({reason(exc)}): it is truncated or corrupt; "
                f"download cifar-10-python.tar.gz again ({URL})"
            ) from None
        return _decode_batches(batches, image_size, max_images)
    split_rel = find_split(tree, split)
    if split_rel is None:
        raise DataError(
            f"cifar10: archive {archive} holds no {split}/<class>/ image folders; expected {LAYOUTS}; "
            f"{HOW_TO_GET}"
        )
    return decode_index(_index_classes(tree, split_rel), 3, image_size, "stretch", max_images)


READER = Cifar10Reader()
