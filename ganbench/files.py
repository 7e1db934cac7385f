"""Atomic file writes: a reader never sees half a file, and a killed writer leaves the old file (or none)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

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
