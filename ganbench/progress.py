"""Progress reporting that suits both a terminal and a log file.

On a terminal, `progress_bar` gives a tqdm bar. Elsewhere (stderr redirected to a file or a pipe: batch jobs, CI,
`ganbench compare` workers) tqdm would write a carriage-return line per refresh into the log, so it gives a
`StatusLine` instead: the same methods the code calls on a bar (update, set_postfix, close, use as a context
manager), printing one plain line at most every `interval` seconds and once at close.
"""

from __future__ import annotations

import os
import sys
import time
from numbers import Number
from typing import Any, TextIO

INTERVAL_S = 30.0  # seconds between two status lines in a log
_clock = time.monotonic  # tests replace it


def progress_bar(total: int | None, desc: str, unit: str, initial: int = 0, enabled: bool = True, *,
                 file: TextIO | None = None, interval: float = INTERVAL_S, **tqdm_options: Any):
    """A tqdm bar when the stream (default sys.stderr) is a terminal, else a StatusLine; silent unless enabled.

    tqdm_options (e.g. smoothing) go to tqdm only; both kinds count from `initial` towards `total` (None: unknown).
    Under torchrun only rank 0 shows bars (the others would repeat them).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and os.environ.get("RANK", "0") != "0":
        enabled = False
    stream = sys.stderr if file is None else file
    if _is_terminal(stream):
        from tqdm.auto import tqdm

        tqdm_options.setdefault("dynamic_ncols", True)
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, file=stream,
                    **tqdm_options)
    return StatusLine(total, desc, unit, initial, enabled, stream, interval)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


class StatusLine:
    """Progress as plain lines: `desc: n/total unit, rate unit/s, elapsed, ETA, postfix`, no carriage returns."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", initial: int = 0, enabled: bool = True,
                 file: TextIO | None = None, interval: float = INTERVAL_S) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.initial = initial
        self.enabled, self.interval = enabled, interval
        self.file = sys.stderr if file is None else file
        self.postfix = ""
        self.closed = False
        self.start = self.last_print = _clock()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.enabled and not self.closed:
            now = _clock()
            if now - self.last_print >= self.interval:
                self._print(now)

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        """Remember key=value pairs for the next line (tqdm's signature; refresh is ignored)."""
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={_format_value(v)}" for k, v in items.items())

    def close(self) -> None:
        """Print the final line once (when enabled)."""
        if self.closed:
            return
        self.closed = True
        if self.enabled:
            self._print(_clock())

    def __enter__(self) -> StatusLine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def line(self, now: float) -> str:
        elapsed = max(now - self.start, 0.0)
        done = self.n - self.initial
        rate = done / elapsed if elapsed > 0 else None
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        parts = [f"{self.desc}: {count} {self.unit}",
                 f"{_format_rate(rate)} {self.unit}/s",
                 f"elapsed {_format_seconds(elapsed)}"]
        if self.total is not None:
            left = max(self.total - self.n, 0)
            eta = 0.0 if left == 0 else (left / rate if rate else None)
            parts.append(f"ETA {_format_seconds(eta) if eta is not None else '?'}")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def _print(self, now: float) -> None:
        self.last_print = now
        try:
            self.file.write(self.line(now) + "\n")
            self.file.flush()
        except (ValueError, OSError):  # the stream went away: progress is not worth an error
            pass


def _format_value(value: Any) -> str:
    if isinstance(value, Number) and not isinstance(value, bool | int):
        return f"{value:.3g}"
    return str(value)


def _format_rate(rate: float | None) -> str:
    if rate is None:
        return "?"
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.3g}"


def _format_seconds(seconds: float) -> str:
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
