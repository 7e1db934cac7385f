"""Crash safety: kill -9 at random moments (inside checkpoint writes too), torn writes, a full disk, two writers."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from ganbench.checkpoint import load_checkpoint

# A driver that runs the real CLI with the checkpoint writer slowed down: it writes half the bytes, marks that it
# is inside a write (a file), sleeps, then writes the rest, so a kill can land mid-write on purpose.
DRIVER = textwrap.dedent("""
    import os, sys, time
    import ganbench.checkpoint as ck

    def slow_write(fh, data):
        mark = os.environ["GB_MARK"]
        half = len(data) // 2
        fh.write(data[:half])
        fh.flush()
        open(mark, "w").close()
        time.sleep(float(os.environ["GB_SLOW"]))
        fh.write(data[half:])
        os.unlink(mark)

    ck._write_all = slow_write
    from ganbench.cli import main
    main(sys.argv[1:])
""")

TRAIN = ["train", "--model", "dcgan32", "--ngf", "4", "--ndf", "4", "--nz", "8", "--dataset", "fake",
         "--max-images", "64", "--batch-size", "8", "--device", "cpu", "--deterministic", "--log-every", "2",
         "--checkpoint-every", "4", "--sample-every", "100000", "--n-samples", "4", "--quiet"]


def _env(tmp_path: Path) -> dict[str, str]:
    # one torch thread in every process: CPU reductions are bit-identical only at a fixed thread count
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "GANBENCH_CACHE": str(tmp_path / "cache"),
            "GB_MARK": str(tmp_path / "in_write"), "GB_SLOW": "0.15", "PYTHONPATH": os.pathsep.join(sys.path)}


def _weights(run: Path) -> dict[str, dict[str, torch.Tensor]]:
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    return {"step": ckpt["step"], "G": ckpt["G"], "D": ckpt["D"]}


def _metric_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_twenty_kills_at_random_moments_then_resume_give_the_uninterrupted_weights(tmp_path):
    steps = 160
    env = _env(tmp_path)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    mark = Path(env["GB_MARK"])

    def launch(out: Path, *extra: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(driver), *TRAIN, "--steps", str(steps), "--out", str(out),
                                 *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    reference = tmp_path / "reference"
    proc = launch(reference)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()

    run = tmp_path / "killed"
    rng = random.Random(1234)
    kills = in_write = lives = 0
    refused_second = False
    while True:
        lives += 1
        assert lives < 60, "the run never finished"
        resume = (run / "checkpoints" / "last.pt").is_file()
        proc = launch(run, "--resume" if resume else "--overwrite")
        if kills == 20:  # the last life runs to the end
            assert proc.wait(timeout=300) == 0, proc.stderr.read()
            break
        if kills % 3 == 0:
            # inside a checkpoint write: wait until the writer has written half a file, then kill at a random point
            deadline = time.monotonic() + 120
            while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.14))
            if not refused_second and proc.poll() is None:
                # a second writer on the same run directory is refused in one line while the first holds it
                second = subprocess.run([sys.executable, "-m", "ganbench", *TRAIN, "--steps", str(steps),
                                         "--out", str(run), "--resume"], env=env, capture_output=True, text=True,
                                        timeout=120)
                assert second.returncode == 2, second.stderr
                assert "is in use by another `ganbench train`" in second.stderr
                assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
                refused_second = proc.poll() is None
        else:
            time.sleep(rng.uniform(1.0, 4.0))  # anywhere: start-up, data, steps, logging, curves, checkpoints
        if proc.poll() is None:
            in_write += mark.exists()
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            mark.unlink(missing_ok=True)
        else:
            assert proc.returncode == 0, proc.stderr.read()
            break  # finished before the kill: only if the run is too short for twenty kills
    assert kills == 20, f"the run finished after {kills} kills; lengthen it"
    assert in_write >= 5 and refused_second
    a, b = _weights(reference), _weights(run)
    assert a["step"] == b["step"] == steps
    for net in ("G", "D"):
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), (net, key)
    # the metrics log holds each logged step once, with the uninterrupted run's losses
    ref_rows, rows = _metric_rows(reference), _metric_rows(run)
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows] == list(range(2, steps + 1, 2))
    for r, q in zip(ref_rows, rows):
        assert r["loss_d"] == q["loss_d"] and r["loss_g"] == q["loss_g"], r["step"]
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one_and_ends_in_one_line(tmp_path):
    env = _env(tmp_path)
    out = tmp_path / "run"
    args = [*TRAIN, "--steps", "4", "--out", str(out)]
    subprocess.run([sys.executable, "-m", "ganbench", *args], env=env, check=True, timeout=300)
    before = (out / "checkpoints" / "last.pt").read_bytes()
    driver = tmp_path / "full.py"
    driver.write_text(textwrap.dedent("""
        import errno, os, sys
        import ganbench.checkpoint as ck

        def full_disk(fh, data):
            fh.write(data[: len(data) // 3])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        ck._write_all = full_disk
        from ganbench.cli import main
        main(sys.argv[1:])
    """))
    proc = subprocess.run([sys.executable, str(driver), *TRAIN, "--steps", "8", "--out", str(out), "--resume"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganbench: error: disk full while writing"), proc.stderr
    assert "--resume" in lines[0]
    assert (out / "checkpoints" / "last.pt").read_bytes() == before
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 4
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.pt", "step_0000004.pt"]
