"""Tests of ganbench.data: every reader on small files written in the real formats, errors, and the cache."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganbench.data import SOURCES, ImageStore, cache_dir, imageops, load_images
from ganbench.errors import DataError

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


pytestmark = pytest.mark.usefixtures("isolated_cache")  # tests/conftest.py


def random_images(n, channels, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, channels, h, w), dtype=np.uint8)


def error_of(excinfo, *fragments):
    """The message of a raised DataError, checked to be one line that mentions every fragment."""
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for fragment in fragments:
        assert str(fragment) in msg, (fragment, msg)
    return msg


def count_reads(monkeypatch, source):
    """Wrap the reader's read() to count how often the store decodes."""
    reader = SOURCES[source]
    calls = []
    original = type(reader).read

    def counted(located, image_size, max_images):
        calls.append(1)
        return original(reader, located, image_size, max_images)

    monkeypatch.setattr(reader, "read", counted)
    return calls


# ---------------------------------------------------------------- writers of the real formats


def write_cifar_pickles(folder: Path, per_batch: int = 6) -> dict:
    """Batches as the official cifar-10-batches-py files: dicts pickled with protocol 2, bytes keys."""
    folder.mkdir(parents=True)
    truth = {"train": ([], []), "test": ([], [])}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        images = random_images(per_batch, 3, 32, 32, seed)
        labels = [(seed + i) % 10 for i in range(per_batch)]
        batch = {
            b"batch_label": f"batch {seed} of 6".encode(),
            b"labels": labels,
            b"data": images.reshape(per_batch, 3072),
            b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(per_batch)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        split = "test" if name == "test_batch" else "train"
        truth[split][0].append(images)
        truth[split][1].extend(labels)
    return {s: (np.concatenate(i), np.asarray(lab)) for s, (i, lab) in truth.items()}


def write_png_tree(
    root: Path, classes, per_class: int, size=(32, 32), seed=0
) -> tuple[np.ndarray, np.ndarray]:
    """``root/<class>/NNN.png`` RGB images; returns pixels (N, 3, H, W) and labels in class order."""
    rng = np.random.default_rng(seed)
    pixels, labels = [], []
    for label, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(img).save(root / cls / f"{i:03d}.png")
            pixels.append(img.transpose(2, 0, 1))
            labels.append(label)
    return np.stack(pixels), np.asarray(labels)


def make_tar(src: Path, archive: Path, arcname: str) -> Path:
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(src, arcname=arcname)
    return archive


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    raw = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def write_mnist(folder: Path, prefix: str, n: int, gz: bool, seed=0) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    tail = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{tail}", images, 0x803)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{tail}", labels, 0x801)
    return images, labels


def banded_image(w=40, h=20) -> Image.Image:
    """Left quarter red, middle half green, right quarter blue."""
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[:, : w // 4] = (255, 0, 0)
    img[:, w // 4 : 3 * w // 4] = (0, 255, 0)
    img[:, 3 * w // 4 :] = (0, 0, 255)
    return Image.fromarray(img)


# ---------------------------------------------------------------- registry and argument errors


def test_sources_are_the_documented_ones():
    assert set(SOURCES) == {"cifar10", "svhn", "imagenet", "folder", "lsun", "mnist", "digits", "fake"}


def test_cache_dir_follows_env(tmp_path, monkeypatch):
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("GANBENCH_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "ganbench"


def test_unknown_source_lists_known_ones():
    with pytest.raises(DataError) as excinfo:
        load_images("cifar11", None, image_size=32)
    error_of(excinfo, "cifar11", "cifar10", "svhn", "lsun", "fake")


@pytest.mark.parametrize("source", ["cifar10", "svhn", "mnist", "digits", "fake"])
def test_bad_split_lists_valid_ones(source, tmp_path):
    with pytest.raises(DataError) as excinfo:
        load_images(source, tmp_path, "validation", image_size=32)
    error_of(excinfo, "validation", "train")


def test_bad_image_size_and_max_images():
    with pytest.raises(DataError):
        load_images("fake", None, image_size=0)
    with pytest.raises(DataError):
        load_images("fake", None, image_size=8, max_images=0)


# ---------------------------------------------------------------- cifar10


@pytest.mark.parametrize("point_at_batches_dir", [False, True])
def test_cifar_pickles_round_trip(tmp_path, point_at_batches_dir):
    truth = write_cifar_pickles(tmp_path / "data" / "cifar-10-batches-py")
    root = tmp_path / "data" / "cifar-10-batches-py" if point_at_batches_dir else tmp_path / "data"
    for split, n in (("train", 30), ("test", 6)):
        store = load_images("cifar10", root, split, image_size=32)
        assert isinstance(store, ImageStore) and len(store) == n
        assert store.images.shape == (n, 3, 32, 32) and store.images.dtype == np.uint8
        assert store.labels.dtype == np.int64
        np.testing.assert_array_equal(store.images, truth[split][0])
        np.testing.assert_array_equal(store.labels, truth[split][1])
        assert store.classes == CIFAR_CLASSES
        meta = store.meta
        assert meta["source"] == "cifar10" and meta["split"] == split and meta["root"] == str(root)
        assert meta["image_size"] == 32 and meta["channels"] == 3 and meta["n"] == n
        assert len(meta["fingerprint"]) == 64 and Path(meta["cache_path"]).is_file()
        json.dumps(meta)


def test_cifar_resizes_with_bicubic(tmp_path):
    truth = write_cifar_pickles(tmp_path / "cifar-10-batches-py")
    store = load_images("cifar10", tmp_path, "test", image_size=16)
    assert store.images.shape == (6, 3, 16, 16)
    expected = Image.fromarray(truth["test"][0][2].transpose(1, 2, 0)).resize(
        (16, 16), Image.Resampling.BICUBIC
    )
    np.testing.assert_array_equal(store.images[2], np.asarray(expected).transpose(2, 0, 1))


def test_cifar_max_images_is_evenly_spaced(tmp_path):
    truth = write_cifar_pickles(tmp_path / "cifar-10-batches-py")
    store = load_images("cifar10", tmp_path, "train", image_size=32, max_images=10)
    np.testing.assert_array_equal(store.images, truth["train"][0][::3])


def test_cifar_missing_dir(tmp_path):
    with pytest.raises(DataError) as excinfo:
        load_images("cifar10", tmp_path / "nowhere", image_size=32)
    error_of(excinfo, tmp_path / "nowhere", "cifar-10-batches-py", "--download")


def test_cifar_missing_batch(tmp_path):
    write_cifar_pickles(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError) as excinfo:
        load_images("cifar10", tmp_path, "train", image_size=32)
    error_of(excinfo, tmp_path / "cifar-10-batches-py" / "data_batch_3", "--download")
    assert len(load_images("cifar10", tmp_path, "test", image_size=32)) == 6


def test_cifar_truncated_pickle(tmp_path):
    write_cifar_pickles(tmp_path / "cifar-10-batches-py")
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError) as excinfo:
        load_images("cifar10", tmp_path, "train", image_size=32)
    error_of(excinfo, path, "truncated")


def test_cifar_pickle_cannot_run_code(tmp_path):
    write_cifar_pickles(tmp_path / "cifar-10-batches-py")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil()}, f, protocol=2)
    with pytest.raises(DataError) as excinfo:
        load_images("cifar10", tmp_path, "test", image_size=32)
    error_of(excinfo, "test_batch", "refusing")
    assert not marker.exists()


@pytest.mark.parametrize("nested", [False, True])
def test_cifar_image_folders(tmp_path, nested):
    root = tmp_path / "root"
    base = root / "cifar10-png" if nested else root
    train = write_png_tree(base / "train", CIFAR_CLASSES, 2, seed=1)
    test = write_png_tree(base / "test", CIFAR_CLASSES, 1, seed=2)
    for split, (pixels, labels) in (("train", train), ("test", test)):
        store = load_images("cifar10", root, split, image_size=32)
        np.testing.assert_array_equal(store.images, pixels)
        np.testing.assert_array_equal(store.labels, labels)
    assert store.labels[-1] == 9 and store.classes[9] == "truck"


def test_cifar_folder_missing_class(tmp_path):
    write_png_tree(tmp_path / "train", CIFAR_CLASSES[:9], 1)
    with pytest.raises(DataError) as excinfo:
        load_images("cifar10", tmp_path, "train", image_size=32)
    error_of(excinfo, "truck", tmp_path / "train")


def test_cifar_folder_extra_class(tmp_path):
    write_png_tree(tmp_path / "train", (*CIFAR_CLASSES, "zebra"), 1)
    with pytest.raises(DataError) as excinfo:
        load_images("cifar10", tmp_path, "train", image_size=32)
    error_of(excinfo, "zebra")


def test_cifar_tar_gz(tmp_path):
    train = write_png_tree(tmp_path / "tree" / "train", CIFAR_CLASSES, 2, seed=3)
    test = write_png_tree(tmp_path / "tree" / "test", CIFAR_CLASSES, 1, seed=4)
    archive = make_tar(tmp_path / "tree", tmp_path / "cifar10-png.tar.gz", "cifar10-png")
    for split, (pixels, labels) in (("train", train), ("test", test)):
        store = load_images("cifar10", archive, split, image_size=32)
        np.testing.assert_array_equal(store.images, pixels)
        np.testing.assert_array_equal(store.labels, labels)
        assert store.meta["root"] == str(archive)


def test_cifar_truncated_tar(tmp_path):
    write_png_tree(tmp_path / "tree" / "train", CIFAR_CLASSES, 2)
    archive = make_tar(tmp_path / "tree", tmp_path / "c.tar.gz", "c")
    archive.write_bytes(archive.read_bytes()[:2000])
    with pytest.raises(DataError) as excinfo:
        load_images("cifar10", archive, "train", image_size=32)
    error_of(excinfo, archive)


def test_cifar_corrupt_image(tmp_path):
    write_png_tree(tmp_path / "train", CIFAR_CLASSES, 1)
    bad = tmp_path / "train" / "cat" / "000.png"
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(DataError) as excinfo:
        load_images("cifar10", tmp_path, "train", image_size=32)
    error_of(excinfo, bad)


def stub_torchvision(monkeypatch, **classes):
    """Stand-ins for torchvision.datasets classes, so download paths run offline and without torch."""
    import types

    package = types.ModuleType("torchvision")
    datasets = types.ModuleType("torchvision.datasets")
    for name, cls in classes.items():
        setattr(datasets, name, cls)
    package.datasets = datasets
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)


def test_download_uses_torchvision_layout(tmp_path, monkeypatch):
    calls = []

    class CIFAR10:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            write_cifar_pickles(Path(root) / "cifar-10-batches-py")

    class MNIST:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            write_mnist(Path(root) / "MNIST" / "raw", "train" if train else "t10k", 4, gz=True)

    stub_torchvision(monkeypatch, CIFAR10=CIFAR10, MNIST=MNIST)
    store = load_images("cifar10", None, "test", image_size=32, download=True)
    assert len(store) == 6 and calls == [(str(cache_dir() / "datasets" / "cifar10"), False, True)]
    assert store.meta["root"] == str(cache_dir() / "datasets" / "cifar10")
    assert len(load_images("mnist", tmp_path / "m", "train", image_size=28, download=True)) == 4
    assert calls[-1] == (str(tmp_path / "m"), True, True)


def test_failed_download_is_one_line(tmp_path, monkeypatch):
    class SVHN:
        def __init__(self, root, split, download):
            raise OSError("network unreachable\nsecond line")

    stub_torchvision(monkeypatch, SVHN=SVHN)
    with pytest.raises(DataError) as excinfo:
        load_images("svhn", tmp_path, "test", image_size=32, download=True)
    error_of(excinfo, "test_32x32.mat", "network unreachable second line")


# ---------------------------------------------------------------- svhn


def write_svhn(root: Path, split: str, n: int = 12, seed=0):
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)  # 1..10, 10 meaning the digit 0
    savemat(root / f"{split}_32x32.mat", {"X": x, "y": y})
    return x, y


def test_svhn_round_trip_and_label_10_is_0(tmp_path):
    x, y = write_svhn(tmp_path, "train")
    store = load_images("svhn", tmp_path, "train", image_size=32)
    assert store.images.shape == (12, 3, 32, 32) and store.images.dtype == np.uint8
    np.testing.assert_array_equal(store.images, x.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(store.labels, y.ravel() % 10)
    assert store.labels[9] == 0 and set(store.labels.tolist()) == set(range(10))


def test_svhn_missing_and_corrupt(tmp_path):
    with pytest.raises(DataError) as excinfo:
        load_images("svhn", tmp_path, "extra", image_size=32)
    error_of(excinfo, tmp_path / "extra_32x32.mat", "--download")
    write_svhn(tmp_path, "test")
    path = tmp_path / "test_32x32.mat"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError) as excinfo:
        load_images("svhn", tmp_path, "test", image_size=32)
    error_of(excinfo, path, "corrupt")
    path.write_bytes(b"not a mat file at all" * 20)
    with pytest.raises(DataError) as excinfo:
        load_images("svhn", tmp_path, "test", image_size=32)
    error_of(excinfo, path)


# ---------------------------------------------------------------- folder / imagenet


def test_folder_shorter_side_resize_and_centre_crop(tmp_path):
    (tmp_path / "train" / "bands").mkdir(parents=True)
    banded_image(40, 20).save(tmp_path / "train" / "bands" / "wide.png")
    banded_image(40, 20).transpose(Image.Transpose.ROTATE_90).save(tmp_path / "train" / "bands" / "tall.png")
    exact = load_images("folder", tmp_path, image_size=20)
    # No resizing needed: the crop keeps columns 10..29 of the wide image, exactly the green band.
    wide = exact.images[1]
    assert wide.shape == (3, 20, 20)
    assert (wide[1] == 255).all() and (wide[0] == 0).all() and (wide[2] == 0).all()
    tall = exact.images[0]
    assert (tall[1] == 255).all() and (tall[[0, 2]] == 0).all()

    small = load_images("folder", tmp_path, image_size=10).images[1]
    assert small.shape == (3, 10, 10)
    # Resized to 20x10 then cropped to columns 5..14; away from the band edges the filter sees pure green.
    assert (small[1, :, 2:8] == 255).all() and (small[[0, 2], :, 2:8] == 0).all()
    # Near the edges, red (left) and blue (right) bleed in, so the crop really is centred.
    assert small[0, :, 0].mean() > small[2, :, 0].mean()
    assert small[2, :, 9].mean() > small[0, :, 9].mean()


def test_folder_layouts_labels_and_formats(tmp_path):
    root = tmp_path / "root"
    pixels, labels = write_png_tree(root, ("b_dogs", "a_cats"), 2, size=(16, 16))
    # Upper-case extension, greyscale JPEG, nested directory, and a non-image file that is ignored.
    Image.fromarray(np.full((16, 16), 77, dtype=np.uint8)).save(root / "a_cats" / "grey.JPG", quality=100)
    (root / "a_cats" / "deeper").mkdir()
    Image.fromarray(pixels[0].transpose(1, 2, 0)).save(root / "a_cats" / "deeper" / "x.png")
    (root / "a_cats" / "notes.txt").write_text("not an image")
    store = load_images("folder", root, image_size=16)
    assert store.classes == ("a_cats", "b_dogs")
    assert len(store) == 6 and store.images.shape == (6, 3, 16, 16)
    assert store.labels.tolist() == [0, 0, 0, 0, 1, 1]
    # a_cats sorted: 000.png, 001.png, deeper/x.png, grey.JPG; then b_dogs.
    np.testing.assert_array_equal(store.images[:2], pixels[2:])
    np.testing.assert_array_equal(store.images[2], pixels[0])
    assert np.abs(store.images[3].astype(int) - 77).max() <= 1
    np.testing.assert_array_equal(store.images[4:], pixels[:2])

    # The same tree under train/ works for "train" and, via imagenet, names the split dir.
    (tmp_path / "inet").mkdir()
    root.rename(tmp_path / "inet" / "train")
    again = load_images("imagenet", tmp_path / "inet", "train", image_size=16)
    np.testing.assert_array_equal(again.images, store.images)
    with pytest.raises(DataError) as excinfo:
        load_images("imagenet", tmp_path / "inet", "val", image_size=16)
    error_of(excinfo, "val", "splits found: train")


def test_folder_errors(tmp_path):
    with pytest.raises(DataError) as excinfo:
        load_images("folder", tmp_path / "missing", image_size=8)
    error_of(excinfo, tmp_path / "missing", "<class>")
    (tmp_path / "empty" / "train" / "cls").mkdir(parents=True)
    with pytest.raises(DataError) as excinfo:
        load_images("folder", tmp_path / "empty", image_size=8)
    error_of(excinfo, tmp_path / "empty" / "train", "no images")
    write_png_tree(tmp_path / "bad", ("x",), 2, size=(8, 8))
    bad = tmp_path / "bad" / "x" / "001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError) as excinfo:
        load_images("folder", tmp_path / "bad", image_size=8)
    error_of(excinfo, bad)
    with pytest.raises(DataError) as excinfo:
        load_images("folder", None, image_size=8)
    error_of(excinfo, "data root")


def test_imagenet_style_archive(tmp_path):
    classes = ("n01440764", "n01443537", "n09999999")
    tree = tmp_path / "tree"
    for i, wnid in enumerate(classes):
        (tree / wnid).mkdir(parents=True)
        img = Image.fromarray(np.full((30, 45, 3), 40 * i + 20, dtype=np.uint8))
        img.save(tree / wnid / f"{wnid}_thing.JPEG", quality=95)
    archive = make_tar(tree, tmp_path / "imagenet-samples.tar.gz", "imagenet-samples")
    store = load_images("imagenet", archive, "train", image_size=24)
    assert store.images.shape == (3, 3, 24, 24) and store.classes == classes
    assert store.labels.tolist() == [0, 1, 2]
    disk = load_images("imagenet", tree, "train", image_size=24)
    np.testing.assert_array_equal(store.images, disk.images)
    with pytest.raises(DataError) as excinfo:
        load_images("imagenet", archive, "val", image_size=24)
    error_of(excinfo, archive, "val")


@pytest.mark.parametrize("archived", [False, True])
def test_parallel_decoding_matches_sequential(tmp_path, monkeypatch, archived):
    write_png_tree(tmp_path / "tree", ("a", "b", "c"), 7, size=(20, 13))
    root = make_tar(tmp_path / "tree", tmp_path / "t.tar", "t") if archived else tmp_path / "tree"
    sequential = np.array(load_images("folder", root, image_size=8).images)
    monkeypatch.setattr(imageops, "PARALLEL_MIN", 5)
    monkeypatch.setattr(imageops, "CHUNK", 4)
    monkeypatch.setattr(imageops, "worker_count", lambda: 2)
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache2"))
    parallel = load_images("folder", root, image_size=8)
    np.testing.assert_array_equal(parallel.images, sequential)
    # An error in a worker still arrives as a one-line DataError.
    bad = tmp_path / "tree" / "b" / "003.png"
    bad.write_bytes(b"broken")
    if not archived:
        with pytest.raises(DataError) as excinfo:
            load_images("folder", root, image_size=8)
        error_of(excinfo, bad)


# ---------------------------------------------------------------- lsun


def write_lmdb(path: Path, images: list[Image.Image], formats: list[str]) -> list[bytes]:
    lmdb = pytest.importorskip("lmdb")
    env = lmdb.open(str(path), map_size=1 << 24)
    values = []
    with env.begin(write=True) as txn:
        for i, (img, fmt) in enumerate(zip(images, formats, strict=True)):
            buf = io.BytesIO()
            img.save(buf, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
            values.append(buf.getvalue())
            txn.put(f"{i:040x}".encode(), buf.getvalue())
    env.close()
    return values


def test_lsun_lmdb(tmp_path):
    rng = np.random.default_rng(5)
    arrays = [rng.integers(0, 256, size=(16, 24, 3), dtype=np.uint8) for _ in range(3)]
    images = [Image.fromarray(a) for a in arrays]
    values = write_lmdb(tmp_path / "bedroom_train_lmdb", images, ["PNG", "JPEG", "WEBP"])
    write_lmdb(tmp_path / "bedroom_val_lmdb", images[:1], ["PNG"])
    store = load_images("lsun", tmp_path, "bedroom", image_size=16)
    assert store.images.shape == (3, 3, 16, 16) and store.images.dtype == np.uint8
    assert store.labels.tolist() == [-1, -1, -1] and store.classes == ("bedroom",)
    assert store.meta["split"] == "bedroom_train"
    # Lossless values at the shorter side's size: only the centre crop (columns 4..19) happens.
    np.testing.assert_array_equal(store.images[0], arrays[0][:, 4:20].transpose(2, 0, 1))
    np.testing.assert_array_equal(store.images[2], arrays[2][:, 4:20].transpose(2, 0, 1))
    jpeg = np.asarray(Image.open(io.BytesIO(values[1])).convert("RGB"))
    np.testing.assert_array_equal(store.images[1], jpeg[:, 4:20].transpose(2, 0, 1))
    assert len(load_images("lsun", tmp_path, "train", image_size=8, max_images=2)) == 2
    assert len(load_images("lsun", tmp_path, "bedroom_val", image_size=8)) == 1
    assert len(load_images("lsun", tmp_path / "bedroom_val_lmdb", "bedroom_val", image_size=8)) == 1
    with pytest.raises(DataError) as excinfo:
        load_images("lsun", tmp_path, "kitchen", image_size=8)
    error_of(excinfo, "kitchen_train_lmdb", "bedroom_train", "fyu/lsun")


def test_lsun_errors(tmp_path, monkeypatch):
    with pytest.raises(DataError) as excinfo:
        load_images("lsun", tmp_path / "none", "bedroom", image_size=8)
    error_of(excinfo, tmp_path / "none", "_train_lmdb", "fyu/lsun")
    write_lmdb(tmp_path / "church_outdoor_train_lmdb", [Image.new("RGB", (9, 9))], ["PNG"])
    monkeypatch.setitem(sys.modules, "lmdb", None)
    with pytest.raises(DataError) as excinfo:
        load_images("lsun", tmp_path, "church_outdoor", image_size=8)
    error_of(excinfo, "pip install 'ganbench[lsun]'")


def test_lsun_corrupt_value(tmp_path):
    lmdb = pytest.importorskip("lmdb")
    env = lmdb.open(str(tmp_path / "tower_train_lmdb"), map_size=1 << 20)
    with env.begin(write=True) as txn:
        txn.put(b"key-one", b"this is no image")
    env.close()
    with pytest.raises(DataError) as excinfo:
        load_images("lsun", tmp_path, "tower", image_size=8)
    error_of(excinfo, "tower_train_lmdb", "key-one")


# ---------------------------------------------------------------- mnist


@pytest.mark.parametrize(("gz", "sub"), [(False, ""), (True, ""), (True, "MNIST/raw")])
def test_mnist_idx_round_trip(tmp_path, gz, sub):
    images, labels = write_mnist(tmp_path / sub if sub else tmp_path, "t10k", 9, gz)
    store = load_images("mnist", tmp_path, "test", image_size=28)
    assert store.images.shape == (9, 1, 28, 28) and store.images.dtype == np.uint8
    np.testing.assert_array_equal(store.images[:, 0], images)
    np.testing.assert_array_equal(store.labels, labels)
    big = load_images("mnist", tmp_path, "test", image_size=32)
    expected = Image.fromarray(images[4]).resize((32, 32), Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(big.images[4, 0], np.asarray(expected))


def test_mnist_errors(tmp_path):
    write_mnist(tmp_path, "t10k", 5, gz=False)
    with pytest.raises(DataError) as excinfo:
        load_images("mnist", tmp_path, "train", image_size=28)
    error_of(excinfo, tmp_path / "train-images-idx3-ubyte", "--download")

    path = tmp_path / "t10k-images-idx3-ubyte"
    good = path.read_bytes()
    path.write_bytes(good[:-100])
    with pytest.raises(DataError) as excinfo:
        load_images("mnist", tmp_path, "test", image_size=28)
    error_of(excinfo, path, "truncated")

    path.write_bytes(struct.pack(">I", 0x801) + good[4:])
    with pytest.raises(DataError) as excinfo:
        load_images("mnist", tmp_path, "test", image_size=28)
    error_of(excinfo, path, "magic", "0x00000803")

    path.unlink()
    write_mnist(tmp_path, "t10k", 5, gz=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 28, 28), np.uint8), 0x803)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(5, np.uint8), 0x801)
    gz = tmp_path / "t10k-labels-idx1-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:15])
    with pytest.raises(DataError) as excinfo:
        load_images("mnist", tmp_path, "test", image_size=28)
    error_of(excinfo, gz)


# ---------------------------------------------------------------- digits and fake


def test_digits():
    from sklearn.datasets import load_digits

    raw = load_digits()
    native = load_images("digits", None, "all", image_size=8)
    assert native.images.shape == (1797, 1, 8, 8) and native.meta["root"] is None
    np.testing.assert_array_equal(native.images[:, 0], np.floor(raw.images * 255 / 16 + 0.5))
    np.testing.assert_array_equal(native.labels, raw.target)
    big = load_images("digits", "/ignored", "train", image_size=32, progress=False)
    assert big.images.shape == (1797, 1, 32, 32) and big.images.dtype == np.uint8
    assert big.images.max() == 255 and big.classes == tuple("0123456789")


def test_fake_is_deterministic_and_learnable():
    train = load_images("fake", None, "train", image_size=16)
    test = load_images("fake", None, "test", image_size=16)
    assert train.images.shape == (1024, 3, 16, 16) and test.images.shape == (256, 3, 16, 16)
    assert np.bincount(train.labels).tolist() == [103] * 4 + [102] * 6
    small = load_images("fake", None, "train", image_size=16, max_images=20)
    assert len(small) == 20 and not np.array_equal(train.images[:20], test.images[:20])
    from ganbench.data import fake

    again = fake.READER.read(fake.READER.locate(None, "train", False), 16, None)
    first = next(iter(again.chunks))[1]
    np.testing.assert_array_equal(first, train.images[:256])
    # A nearest-class-mean classifier fitted on train must beat chance on test by far.
    x_train = train.images.reshape(len(train), -1).astype(float)
    x_test = test.images.reshape(len(test), -1).astype(float)
    means = np.stack([x_train[train.labels == c].mean(0) for c in range(10)])
    predicted = ((x_test[:, None] - means[None]) ** 2).sum(-1).argmin(1)
    assert (predicted == test.labels).mean() > 0.5


def test_progress_bar_only_when_asked(capsys):
    load_images("fake", None, "train", image_size=4, max_images=600)
    assert "decoding fake" in capsys.readouterr().err
    load_images("fake", None, "test", image_size=4, max_images=600, progress=False)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- cache


def test_second_load_is_a_memmap_without_decoding(tmp_path, monkeypatch):
    write_cifar_pickles(tmp_path / "cifar-10-batches-py")
    first = load_images("cifar10", tmp_path, "train", image_size=32)
    assert isinstance(first.images, np.memmap)

    def boom(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(SOURCES["cifar10"], "read", boom)
    second = load_images("cifar10", tmp_path, "train", image_size=32)
    assert isinstance(second.images, np.memmap) and not second.images.flags.writeable
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.labels, first.labels)
    assert second.classes == first.classes and second.meta == first.meta
    stores = cache_dir() / "stores"
    assert sorted(p.name for p in stores.iterdir()) == sorted(
        Path(first.meta["cache_path"]).name.replace(".npy", s) for s in (".npy", ".labels.npy", ".json")
    )
    assert json.loads(Path(first.meta["cache_path"]).with_suffix(".json").read_text())["complete"] is True


def test_changed_input_invalidates(tmp_path, monkeypatch):
    write_cifar_pickles(tmp_path / "cifar-10-batches-py")
    calls = count_reads(monkeypatch, "cifar10")
    first = load_images("cifar10", tmp_path, "test", image_size=32)
    load_images("cifar10", tmp_path, "test", image_size=32)
    assert len(calls) == 1
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    st = batch.stat()
    os.utime(batch, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    second = load_images("cifar10", tmp_path, "test", image_size=32)
    assert len(calls) == 2 and second.meta["fingerprint"] != first.meta["fingerprint"]
    # The store of the old file version is pruned: it could never be hit again.
    assert not Path(first.meta["cache_path"]).exists()
    write_cifar_pickles(tmp_path / "other" / "cifar-10-batches-py", per_batch=7)
    os.replace(tmp_path / "other" / "cifar-10-batches-py" / "test_batch", batch)
    third = load_images("cifar10", tmp_path, "test", image_size=32)
    assert len(calls) == 3 and len(third) == 7
    load_images("cifar10", tmp_path, "test", image_size=16)
    load_images("cifar10", tmp_path, "test", image_size=32, max_images=3)
    assert len(calls) == 5


@pytest.mark.parametrize("damage", ["no_sidecar", "truncated_npy", "truncated_labels", "incomplete", "temp"])
def test_partial_cache_is_rebuilt(tmp_path, monkeypatch, damage):
    write_mnist(tmp_path, "t10k", 6, gz=False)
    calls = count_reads(monkeypatch, "mnist")
    first = load_images("mnist", tmp_path, "test", image_size=28)
    expected = np.array(first.images)
    images_path = Path(first.meta["cache_path"])
    sidecar = images_path.with_suffix(".json")
    labels_path = images_path.with_name(images_path.name.replace(".npy", ".labels.npy"))
    del first
    if damage == "no_sidecar":
        sidecar.unlink()
    elif damage == "truncated_npy":
        images_path.write_bytes(images_path.read_bytes()[:-50])
    elif damage == "truncated_labels":
        labels_path.write_bytes(labels_path.read_bytes()[:-8])
    elif damage == "incomplete":
        info = json.loads(sidecar.read_text())
        sidecar.write_text(json.dumps({**info, "complete": False}))
    else:
        # A crashed writer leaves only a temp file; it never shadows a final name.
        (images_path.parent / f".{images_path.name}.123.tmp").write_bytes(b"half")
    again = load_images("mnist", tmp_path, "test", image_size=28)
    assert len(calls) == (1 if damage == "temp" else 2)
    np.testing.assert_array_equal(again.images, expected)
    assert json.loads(sidecar.read_text())["complete"] is True


def test_failed_build_leaves_no_store(tmp_path, monkeypatch):
    write_png_tree(tmp_path / "train", CIFAR_CLASSES, 1)
    bad = tmp_path / "train" / "truck" / "000.png"
    bad.write_bytes(b"nope")
    with pytest.raises(DataError):
        load_images("cifar10", tmp_path, "train", image_size=32)
    stores = cache_dir() / "stores"
    assert list(stores.iterdir()) == []


# ---------------------------------------------------------------- opt-in: the real shared data


def _shared() -> Path | None:
    value = os.environ.get("GANBENCH_SHARED")
    return Path(value) if value and (Path(value) / "data").is_dir() else None


SHARED = _shared()
needs_shared = pytest.mark.skipif(
    SHARED is None,
    reason="opt-in real-data test: set GANBENCH_SHARED to the folder holding data/cifar10-jpg.tar.gz, "
    "data/imagenet-1k-samples-80px.tar.gz and data/mnist/ (e.g. GANBENCH_SHARED=../shared)",
)


@needs_shared
def test_real_cifar10_jpg_archive():
    archive = SHARED / "data" / "cifar10-jpg.tar.gz"
    started = time.perf_counter()
    train = load_images("cifar10", archive, "train", image_size=32, progress=False)
    test = load_images("cifar10", archive, "test", image_size=32, progress=False)
    assert train.images.shape == (50_000, 3, 32, 32) and test.images.shape == (10_000, 3, 32, 32)
    assert np.bincount(train.labels).tolist() == [5000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
    means = train.images.mean(axis=(0, 2, 3))
    np.testing.assert_allclose(means, (125.3, 123.0, 113.9), atol=1.0)
    print(f"cifar10 archive decoded in {time.perf_counter() - started:.1f} s")


@needs_shared
def test_real_imagenet_samples():
    archive = SHARED / "data" / "imagenet-1k-samples-80px.tar.gz"
    store = load_images("imagenet", archive, "train", image_size=32, progress=False)
    assert store.images.shape == (1000, 3, 32, 32)
    assert len(store.classes) == 1000 and sorted(set(store.labels.tolist())) == list(range(1000))


@needs_shared
def test_real_mnist_test_set():
    store = load_images("mnist", SHARED / "data" / "mnist", "test", image_size=28, progress=False)
    assert store.images.shape == (10_000, 1, 28, 28)
    assert np.bincount(store.labels, minlength=10).sum() == 10_000
