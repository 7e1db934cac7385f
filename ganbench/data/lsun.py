"""LSUN scenes (e.g. the 3 million bedrooms the DCGAN paper trained on), from LMDB databases.

Layout (torchvision's, as the LSUN download script writes it): the root holds
``<category>_train_lmdb/`` and ``<category>_val_lmdb/`` directories, each an LMDB environment whose
values are encoded images (webp, jpeg or png); the root may also be one such directory itself.
Splits: ``<category>`` (its train set), ``<category>_train``, ``<category>_val``, or ``train``/``val``
when the root holds exactly one database of that kind. The images are unlabelled (label -1).

Every image is converted to RGB, its shorter side resized to the requested size and the centre
square kept. ``max_images`` keeps the first images in key order, so a capped read stops early
instead of touching the whole database. Needs the optional ``lmdb`` package
(``pip install 'ganbench[lsun]'``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganbench.data.imageops import decode_stream
from ganbench.data.reader import Decoded, Located, Reader, fingerprint_files, reason
from ganbench.errors import DataError

HOW_TO_GET = (
    "torchvision has no LSUN downloader: fetch the category with the LSUN download script "
    "(https://github.com/fyu/lsun, e.g. python download.py -c bedroom) and unzip it into the data root"
)
SUFFIX = "_lmdb"


def _databases(root: Path) -> dict[str, Path]:
    if root.name.endswith(SUFFIX) and (root / "data.mdb").is_file():
        return {root.name[: -len(SUFFIX)]: root}
    return {
        p.name[: -len(SUFFIX)]: p
        for p in sorted(root.iterdir())
        if p.is_dir() and p.name.endswith(SUFFIX) and not p.name.startswith(".")
    }


def _category(db_name: str) -> str:
    for tail in ("_train", "_val"):
        if db_name.endswith(tail):
            return db_name[: -len(tail)]
    return db_name


class LsunReader(Reader):
    """LSUN categories from torchvision-layout LMDB databases."""

    name = "lsun"
    version = "1"
    splits = ("<category>", "<category>_train", "<category>_val", "train", "val")
    channels = 3

    def _layout(self, root: Path) -> str:
        return f"expected {root}/<category>_train_lmdb/ (or _val_lmdb/) holding data.mdb; {HOW_TO_GET}"

    def locate(self, root: Path | None, split: str, download: bool) -> Located:
        """Pick the database that ``split`` names and fingerprint its data.mdb."""
        if root is None:
            raise DataError(f"lsun: no data root given; {self._layout(Path('<root>'))}")
        if not root.is_dir():
            raise DataError(f"lsun: data root {root} does not exist; {self._layout(root)}")
        dbs = _databases(root)
        if not dbs:
            raise DataError(f"lsun: no *_lmdb directories in {root}; {self._layout(root)}")
        name = self._pick(dbs, split, root)
        data = dbs[name] / "data.mdb"
        if not data.is_file():
            raise DataError(f"lsun: missing {data} (the database is incomplete); {HOW_TO_GET}")
        return Located(name, root, fingerprint_files(root, [data]), dbs[name])

    def _pick(self, dbs: dict[str, Path], split: str, root: Path) -> str:
        if split in dbs:
            return split
        if f"{split}_train" in dbs:
            return f"{split}_train"
        if split in ("train", "val"):
            matches = [k for k in dbs if k.endswith(f"_{split}")]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise DataError(
                    f"lsun: split {split!r} is ambiguous in {root} ({', '.join(matches)}); "
                    f"name one of them (valid splits: {', '.join(sorted(dbs))})"
                )
        categories = sorted({_category(k) for k in dbs})
        raise DataError(
            f"lsun: no database for split {split!r} in {root} (expected {root}/{split}_train_lmdb/); "
            f"valid splits: {', '.join(sorted(dbs) + categories)}; {HOW_TO_GET}"
        )

    def read(self, located: Located, image_size: int, max_images: int | None) -> Decoded:
        """Decode the database's first ``max_images`` (default all) images, resized and centre-cropped."""
        path: Path = located.handle
        try:
            import lmdb
        except ImportError:
            raise DataError(
                "lsun: reading LSUN needs the lmdb package: pip install 'ganbench[lsun]'"
            ) from None
        try:
            env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False)
            entries = env.stat()["entries"]
        except lmdb.Error as exc:
            raise DataError(
                f"lsun: cannot open the LMDB database {path} ({reason(exc)}): it is truncated or corrupt; "
                f"{HOW_TO_GET}"
            ) from None
        n = entries if max_images is None else min(entries, max_images)
        category = _category(located.split)

        def items():
            try:
                with env.begin(write=False) as txn:
                    for i, (key, value) in enumerate(txn.cursor()):
                        if i >= n:
                            break
                        yield f"{path} key {key.decode('utf-8', 'replace')}", bytes(value)
            except lmdb.Error as exc:
                raise DataError(
                    f"lsun: cannot read the LMDB database {path} ({reason(exc)}): it is corrupt; {HOW_TO_GET}"
                ) from None

        def chunks():
            start = 0
            try:
                for pixels in decode_stream(items(), n, 3, image_size, "crop"):
                    yield slice(start, start + len(pixels)), pixels
                    start += len(pixels)
            finally:
                env.close()

        labels = np.full(n, -1, dtype=np.int64)
        return Decoded(n, 3, (category,), labels, chunks())


READER = LsunReader()
