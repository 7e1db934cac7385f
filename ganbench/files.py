"""Atomic file writes: a reader never sees half a file, and a killed writer leaves the old file (or none); memory
maps whose disk space is allocated before they are written, so a full disk is an error, not a SIGBUS."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

try:  # POSIX; elsewhere the locks below are no-ops
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside target for a writer that takes a path (savefig, save_image); renamed over target
    when the block ends, removed if it raises. suffix: an extension the writer needs to pick its format."""
    target = Path(target)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{suffix or target.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # flush the writer's data to disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def reserve_space(fd: int, size: int, name: str | os.PathLike) -> None:
    """Allocate size bytes of the open file fd on disk before a memory map of it is written.

    A memory-mapped write to a sparse file on a full disk is not an error the program can catch: the kernel kills
    the process with SIGBUS. Allocating the blocks first turns a full disk into an OSError (ENOSPC, naming the
    file) raised here, which the CLI reports as one line. Filesystems that cannot allocate ahead are left sparse."""
    if size <= 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # e.g. some network filesystems
            return
        raise OSError(exc.errno, exc.strerror, str(name)) from None


def reserved_memmap(path: str | os.PathLike, dtype: Any, shape: tuple[int, ...]) -> np.memmap:
    """A writable .npy memory map at path (np.lib.format.open_memmap) whose blocks are allocated on disk first
    (reserve_space): a full disk raises OSError ENOSPC here rather than killing the process mid-write."""
    matrix = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    fd = os.open(path, os.O_RDWR)
    try:
        reserve_space(fd, os.fstat(fd).st_size, path)
    finally:
        os.close(fd)
    return matrix


def scratch_memmap(folder: str | os.PathLike, dtype: Any, shape: tuple[int, ...]) -> np.memmap:
    """A writable memory map of an unnamed scratch file in folder, its blocks allocated first (reserve_space).

    The file has no name from the start, so nothing is left behind: the system takes its space back when the
    array is released or the process ends, killed or not. For matrices used once (features nobody will look up)."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    with tempfile.TemporaryFile(dir=folder, prefix=".scratch-") as fh:
        reserve_space(fh.fileno(), size, Path(folder) / "(scratch file)")
        fh.truncate(size)
        return np.memmap(fh, dtype=dtype, mode="w+", shape=shape)  # the mapping outlives the closed file


def atomic_write(target: str | os.PathLike, data: bytes | str) -> Path:
    """Write bytes or UTF-8 text to target atomically (a temporary file beside it, fsync, rename); returns target.

    A plain open (not mkstemp, which makes 0600 files) so the file gets the usual umask permissions."""
    target = Path(target)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        fh.write(payload)
    return target


class LockBusy(Exception):
    """Another process holds the lock (raised by exclusive_lock with wait=False)."""


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive OS lock (flock) on the file at path for the block: the kernel releases it when the holder
    exits or is killed (kill -9 included), so a crash never leaves a stale lock. wait=False raises LockBusy at once
    if another process holds it. The lock file itself is left in place (removing it would race with a waiter)."""
    path = Path(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError as exc:
                raise LockBusy(str(path)) from exc
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the flock


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, for provenance records (remembered per path, size and mtime in the process)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(p, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]
