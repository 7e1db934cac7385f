"""Any image-folder tree (``folder``) and ImageNet (``imagenet``, the same reader with ImageNet's splits).

Layout: ``<root>/<split>/<class>/<images>``, or, for the split ``train``, ``<root>/<class>/<images>``;
both also one directory down when the root holds nothing but that directory. The root may be a
``.tar``/``.tar.gz`` archive of such a tree, read in place. Classes are the class directories sorted
alphabetically (label = position); images may sit at any depth below their class directory.

Every image is converted to RGB, its shorter side resized to the requested size (bicubic) and the
centre square kept, as the DCGAN paper prepared ImageNet (sec. 4.3).
"""

from __future__ import annotations

from pathlib import Path

from ganbench.data.imagefolder import (
    DiskTree,
    FolderIndex,
    TarTree,
    available_splits,
    decode_index,
    find_split,
    index_split,
    is_archive,
)
from ganbench.data.imageops import IMAGE_EXTENSIONS
from ganbench.data.reader import Decoded, Located, Reader, fingerprint_files
from ganbench.errors import DataError

_EXTENSIONS = ", ".join(sorted(IMAGE_EXTENSIONS))


class FolderReader(Reader):
    """Images sorted into class directories, on disk or in a tar archive."""

    version = "1"
    channels = 3

    def __init__(self, name: str, splits: tuple[str, ...], how_to_get: str):
        self.name = name
        self.splits = splits
        self.how_to_get = how_to_get

    def _layout(self, where: str) -> str:
        return (
            f"expected {where}/<split>/<class>/<images> or, for train, {where}/<class>/<images> "
            f"(images: {_EXTENSIONS}), or a .tar/.tar.gz of such a tree given as the root; {self.how_to_get}"
        )

    def check_split(self, split: str) -> str:
        """Any directory name may be a split here; only reject names that cannot be one."""
        if not split or "/" in split or "\\" in split or split in (".", ".."):
            raise DataError(
                f"{self.name}: invalid split {split!r}; splits are directory names such as "
                f"{', '.join(self.splits)}"
            )
        return split

    def locate(self, root: Path | None, split: str, download: bool) -> Located:
        """Find the split's class directories and fingerprint every image file in them."""
        self.check_split(split)
        if root is None:
            raise DataError(f"{self.name}: no data root given; {self._layout('<root>')}")
        if download and not root.exists():
            raise DataError(
                f"{self.name}: {root} does not exist and there is no downloader; {self.how_to_get}"
            )
        if root.is_file():
            if not is_archive(root):
                raise DataError(
                    f"{self.name}: {root} is a file but not a tar archive; {self._layout('<root>')}"
                )
            return Located(split, root, fingerprint_files(root.parent, [root]), root)
        if not root.is_dir():
            raise DataError(f"{self.name}: data root {root} does not exist; {self._layout(str(root))}")
        index = self._index(DiskTree(root), split)
        files = [root / p for p in index.paths]
        fingerprint = fingerprint_files(root, files, {"classes": list(index.classes)})
        return Located(split, root, fingerprint, index)

    def _index(self, tree: DiskTree | TarTree, split: str) -> FolderIndex:
        split_rel = find_split(tree, split)
        where = tree.describe("")
        if split_rel is None:
            found = available_splits(tree)
            have = f"splits found: {', '.join(found)}" if found else "no class directories with images found"
            raise DataError(f"{self.name}: no {split} split in {where} ({have}); {self._layout(where)}")
        index = index_split(tree, split_rel)
        if not index.paths:
            raise DataError(
                f"{self.name}: no images in {tree.describe(split_rel)} (empty tree); {self._layout(where)}"
            )
        return index

    def read(self, located: Located, image_size: int, max_images: int | None) -> Decoded:
        """Decode (an evenly spaced ``max_images`` of) the split's images, resized and centre-cropped."""
        index = located.handle
        if isinstance(index, Path):
            index = self._index(TarTree(index, self.name), located.split)
        return decode_index(index, 3, image_size, "crop", max_images)


FOLDER = FolderReader("folder", ("train", "<any subdirectory>"), "point the data root at your image tree")
IMAGENET = FolderReader(
    "imagenet",
    ("train", "val"),
    "get ImageNet from https://image-net.org (no download option: its licence requires an account); "
    "sort val/ into class folders (e.g. with torchvision's ImageNet devkit tools)",
)
