"""Evaluation records: one JSON object per line, appended by every evaluation, read back for the tables."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import sys
from pathlib import Path, PurePath
from typing import Any

try:  # POSIX; elsewhere appends are not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

from ganbench.errors import ConfigError

RECORDS_DIR = Path("results/records")


def _json_default(obj: Any) -> Any:
    """json.dumps hook: numpy/torch scalars and arrays, paths and dates become plain JSON values."""
    # numpy scalars and arrays (and torch tensors) all expose tolist(); duck typing keeps numpy optional here
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return obj.tolist()
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    if isinstance(obj, (set, frozenset)):
        # sets have no order; sorting by repr keeps the canonical JSON (and so record_id) stable
        return sorted(obj, key=repr)
    raise TypeError(f"a record value of type {type(obj).__name__} cannot be written as JSON: {obj!r}")


def _plain_keys(obj: Any) -> Any:
    """Numpy-scalar dict keys as Python scalars, which json accepts (the default hook never sees keys)."""
    if isinstance(obj, dict):
        return {(k.item() if hasattr(k, "item") and not isinstance(k, str) else k): _plain_keys(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain_keys(v) for v in obj]
    return obj


def to_jsonable(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of record made of plain JSON types only (what reading it back would give)."""
    return json.loads(json.dumps(_plain_keys(record), default=_json_default))


def canonical_json(obj: Any) -> str:
    """Key-sorted, whitespace-free JSON: equal records give equal text."""
    return json.dumps(_plain_keys(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_json_default)


def record_id_of(record: dict[str, Any]) -> str:
    """First 16 hex digits of the sha256 of the record's canonical JSON, record_id itself left out."""
    body = {k: v for k, v in record.items() if k != "record_id"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()[:16]


def portable(value: Any, swaps: list[tuple[str, str]]) -> Any:
    """value (a record, or any part of one) with this machine's path prefixes swapped for what a user of the
    record gives: swaps are (prefix, replacement) pairs tried in order, e.g. (the resolved data root, the root as
    given), (the cache folder + "/", "$GANBENCH_CACHE/"), (the working folder + "/", ""). Committed records are
    read on other machines; values that are not paths are returned unchanged."""
    if isinstance(value, dict):
        return {k: portable(v, swaps) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, swaps) for v in value]
    if isinstance(value, str) and os.sep in value:  # a path, or a label or note that quotes one
        for prefix, replacement in swaps:
            if value == prefix.rstrip(os.sep):
                return replacement or "."
            value = value.replace(prefix, replacement)
    return value


def append_record(record: dict[str, Any], path: str | os.PathLike) -> None:
    """Append record as one JSON line to path, adding record_id if absent; the caller's dict is unchanged."""
    path = Path(path)
    clean = to_jsonable(record)
    if not clean.get("record_id"):
        # record_id first so a human scanning the file sees it; the id is computed on the plain-JSON form so
        # a numpy value and the equal Python value give the same id
        clean = {"record_id": record_id_of(clean), **{k: v for k, v in clean.items() if k != "record_id"}}
    line = (json.dumps(clean, ensure_ascii=False) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    # unbuffered O_APPEND file under an exclusive flock: two appenders (two evaluations, two compare jobs) take
    # turns, the whole line goes to the kernel in one write(2), and readers never see half of it mixed with another
    with open(path, "a+b", buffering=0) as fh:  # a+: the last byte must be readable
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        if _lacks_final_newline(fh.fileno()):
            # a writer killed mid-line left a partial line; start on a fresh line so only that one line is bad
            line = b"\n" + line
        written = fh.write(line)
        while written is not None and written < len(line):  # regular files write fully; this is a safety net
            written += fh.write(line[written:]) or 0
        os.fsync(fh.fileno())
    # closing the file releases the lock


def _lacks_final_newline(fd: int) -> bool:
    """True when the open file is non-empty and its last byte is not a newline."""
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def read_records(path_or_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record in a .jsonl file, or in each *.jsonl of a folder (by file name), in file order."""
    path = Path(path_or_dir)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"), key=lambda p: p.name)
    elif path.is_file():
        files = [path]
    else:
        raise ConfigError(f"{path} does not exist; pass a records .jsonl file or a folder of them "
                          f"(evaluations write to {RECORDS_DIR}/<protocol>.jsonl)")
    records: list[dict[str, Any]] = []
    for file in files:
        records.extend(_read_file(file))
    return records


def _read_file(file: Path) -> list[dict[str, Any]]:
    """The records of one .jsonl file. A line that is not a JSON object (an append killed halfway leaves a torn
    line) is skipped with a warning naming the file and line, never half-parsed."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read records file {file}: {exc.strerror or exc}; "
                          f"check its permissions") from exc
    out = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        problem = None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            text, problem = "", f"is not UTF-8 text ({exc.reason} at byte {exc.start})"
        if problem is None and not text.strip():
            continue
        if problem is None:
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                problem = f"is torn or corrupt (not valid JSON: {exc.msg}, column {exc.colno})"
            else:
                if not isinstance(record, dict):
                    problem = f"is a JSON {type(record).__name__}, not a record object"
        if problem is not None:
            warn(f"{file} line {number} {problem}; skipped it (delete that line to silence this)")
            continue
        out.append(record)
    return out


def warn(message: str) -> None:
    """One warning line on stderr, in the CLI's style."""
    sys.stderr.write(f"ganbench: warning: {message}\n")


def environment_versions() -> dict[str, str | None]:
    """Versions of Python, ganbench, torch, scikit-learn, numpy and the platform, for provenance."""
    import platform
    from importlib import metadata

    import ganbench  # lazily: the report package must not pull in the rest of ganbench at import time

    def installed(dist: str) -> str | None:
        # metadata avoids importing torch just to learn its version
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "ganbench": getattr(ganbench, "__version__", None),
        "torch": installed("torch"),
        "scikit-learn": installed("scikit-learn"),
        "numpy": installed("numpy"),
        "platform": platform.platform(),
    }
