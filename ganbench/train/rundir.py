"""A training run's folder: its OS lock, its preparation (refusing to clobber a run) and trimming on resume."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from ganbench.errors import RunDirError
from ganbench.files import LockBusy, atomic_write, exclusive_lock

LOCK_NAME = ".lock"  # the run directory's lock file: held (flock) by the one process training in it


def check_out_path(out: Path) -> None:
    """--out must not be, or lie under, a file."""
    for folder in (out, *out.parents):
        if folder.exists() and not folder.is_dir():
            raise RunDirError(f"--out {out}: {folder} is a file, not a folder; choose another --out")


def prepare_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an existing run unless asked; --resume needs checkpoints/last.pt. The lock file is not
    part of the run: it neither makes the folder count as used nor is deleted by --overwrite (its holder is us).
    Runs inside hold_run_dir, which has checked the path; train() has refused --resume with --overwrite."""
    exists = out.exists() and any(p.name != LOCK_NAME for p in out.iterdir())
    if resume:
        if not (out / "checkpoints" / "last.pt").is_file():
            raise RunDirError(f"cannot resume: {out / 'checkpoints' / 'last.pt'} does not exist; start a new run")
        return
    if exists:
        if not overwrite:
            raise RunDirError(
                f"run directory {out} already exists; pass --resume to continue it or --overwrite to replace it"
            )
        for child in out.iterdir():
            if child.name == LOCK_NAME:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    out.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def hold_run_dir(out: Path, resume: bool) -> Iterator[None]:
    """Hold the run directory's OS lock for the block, so a second `ganbench train` on the same --out refuses in
    one line instead of interleaving checkpoints. The kernel drops the lock when the holder dies (kill -9 too)."""
    check_out_path(out)
    if resume and not out.is_dir():
        raise RunDirError(f"cannot resume: {out / 'checkpoints' / 'last.pt'} does not exist; start a new run")
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(exclusive_lock(out / LOCK_NAME, wait=False))
        except LockBusy:
            raise RunDirError(f"{out} is in use by another `ganbench train` (it holds {out / LOCK_NAME}); wait for "
                              f"that run to finish or choose another --out") from None
        yield


def trim_metrics(path: Path, step: int) -> None:
    """On resume: keep the metrics rows up to the checkpoint's step (later rows were logged after it by the run
    that died, and will be logged again), dropping a torn last line."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            keep.append(line + "\n")
    atomic_write(path, "".join(keep))
