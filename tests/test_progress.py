"""ganbench.progress: a tqdm bar on a terminal, plain status lines (no carriage returns) in a log."""

from __future__ import annotations

import io
import sys

import pytest
from tqdm.std import tqdm as std_tqdm

from ganbench import progress
from ganbench.progress import StatusLine, progress_bar


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(progress, "_clock", fake)
    return fake


def test_log_stream_gets_plain_lines_at_most_every_30_seconds(clock):
    log = io.StringIO()
    bar = progress_bar(1000, "train", "step", file=log)
    assert isinstance(bar, StatusLine)
    # 1,000 updates one second apart: a line in each 30 s window, not one per update
    for _ in range(1000):
        clock.t += 1.0
        bar.update(1)
        if bar.n == 500:
            bar.set_postfix(loss_d="0.693", img_s="128", refresh=False)
    bar.close()
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 1000 // 30 + 1  # one per full 30 s window, and the line at close
    assert lines[0] == "train: 30/1000 step, 1 step/s, elapsed 0:30, ETA 16:10"
    assert lines[-1] == "train: 1000/1000 step, 1 step/s, elapsed 16:40, ETA 0:00, loss_d=0.693, img_s=128"
    assert "loss_d=0.693" not in lines[15] and "loss_d=0.693" in lines[17]  # the last postfix, once set


def test_no_more_than_one_line_per_window_however_many_updates(clock):
    log = io.StringIO()
    bar = progress_bar(None, "features", "img", file=log)
    for _ in range(10_000):
        clock.t += 0.001  # 10 s in all
        bar.update(64)
    assert log.getvalue() == ""  # within the first 30 s window: nothing yet
    clock.t += 25.0
    bar.update(64)
    bar.update(64)  # same instant: no second line in this window
    assert log.getvalue().count("\n") == 1
    assert log.getvalue().startswith("features: 640064 img, ")  # unknown total: no /total, no ETA
    assert "ETA" not in log.getvalue()


def test_close_prints_the_final_count_once_and_context_manager_closes(clock):
    log = io.StringIO()
    with progress_bar(600, "decoding fake train", "img", initial=100, file=log) as bar:
        clock.t += 2.0
        bar.update(250)
    clock.t += 100.0
    bar.close()  # a second close prints nothing
    assert log.getvalue() == "decoding fake train: 350/600 img, 125 img/s, elapsed 0:02, ETA 0:02\n"


def test_disabled_status_is_silent(clock):
    log = io.StringIO()
    bar = progress_bar(10, "train", "step", enabled=False, file=log)
    clock.t += 60.0
    bar.update(10)
    bar.set_postfix(loss="1")
    bar.close()
    assert log.getvalue() == ""


def test_default_stream_is_sys_stderr(clock, monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    bar = progress_bar(3, "train", "step")
    assert isinstance(bar, StatusLine)
    bar.update(3)
    bar.close()
    assert log.getvalue().startswith("train: 3/3 step, ")


def test_terminal_gets_a_tqdm_bar(monkeypatch):
    tty = TtyStream()
    bar = progress_bar(5, "train", "step", initial=2, file=tty, smoothing=0.1)
    assert isinstance(bar, std_tqdm)
    assert bar.n == 2 and bar.total == 5 and bar.desc == "train"
    bar.update(3)
    bar.set_postfix(loss="0.5", refresh=False)
    bar.close()
    assert "\r" in tty.getvalue()  # tqdm redraws its line in place on a terminal
    monkeypatch.setattr(sys, "stderr", TtyStream())
    with progress_bar(1, "x", "img") as default_bar:
        assert isinstance(default_bar, std_tqdm)


def test_rates_read_as_plain_numbers(clock):
    log = io.StringIO()
    bar = progress_bar(None, "features", "img", file=log)
    clock.t += 4.0
    bar.update(15_234)
    bar.close()
    assert log.getvalue() == "features: 15234 img, 3808 img/s, elapsed 0:04\n"
    line = StatusLine(10, "train", "step", file=io.StringIO()).line(progress._clock())
    assert line == "train: 0/10 step, ? step/s, elapsed 0:00, ETA ?"
