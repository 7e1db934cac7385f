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

import numpy as np
import pytest
import torch

from ganbench.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # processes killed and restarted

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


def test_a_full_disk_during_feature_extraction_ends_in_one_line_not_a_sigbus(tmp_path):
    # the feature cache's disk is full: the evaluation stops before writing features (a mapped write to a sparse
    # file there would be killed by SIGBUS), with one line and exit 2
    driver = tmp_path / "full.py"
    driver.write_text(textwrap.dedent("""
        import errno, os, sys
        allocate = os.posix_fallocate

        def full_disk(fd, offset, size):  # the features folder's disk is full (Linux: the fd's path in /proc)
            if "/features/" in os.readlink(f"/proc/self/fd/{fd}"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return allocate(fd, offset, size)

        os.posix_fallocate = full_disk
        from ganbench.cli import main
        main(sys.argv[1:])
    """))
    proc = subprocess.run([sys.executable, str(driver), "eval", "digits", "--random-init", "dcgan-svhn32",
                           "--no-record", "--quiet"], env=_env(tmp_path), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganbench: error: disk full while writing"), proc.stderr
    assert "features" in lines[0] and "GANBENCH_CACHE" in lines[0]
    assert not list((tmp_path / "cache" / "features").iterdir())


@pytest.mark.skipif(not hasattr(os, "posix_fallocate"), reason="no posix_fallocate on this system")
def test_reserved_memory_maps_own_their_disk_blocks_before_the_first_write(tmp_path):
    from ganbench.files import reserved_memmap, scratch_memmap

    plain = np.lib.format.open_memmap(tmp_path / "plain.npy", mode="w+", dtype=np.float32, shape=(1000, 1000))
    assert os.stat(tmp_path / "plain.npy").st_blocks * 512 < 1_000_000  # what it replaces: a sparse file
    reserved = reserved_memmap(tmp_path / "reserved.npy", np.float32, (1000, 1000))
    assert os.stat(tmp_path / "reserved.npy").st_blocks * 512 >= 4_000_000
    reserved[:] = 1.5
    reserved.flush()
    assert np.load(tmp_path / "reserved.npy")[999, 999] == 1.5
    scratch = scratch_memmap(tmp_path, np.float16, (300, 7))
    scratch[:] = 2
    assert scratch.sum() == 4200 and sorted(p.name for p in tmp_path.iterdir()) == ["plain.npy", "reserved.npy"]
    del plain


# ------------------------------------------------------------------ killed builds: store, features, statistics
# The child runs a snippet with one function wrapped so that its n-th call kills the process (SIGKILL, no
# cleanup), at the moments where a half-made cache could be mistaken for a finished one.
SELF_KILL = textwrap.dedent("""
    import importlib, os, signal, sys
    module, name, nth = os.environ["GB_KILL"].split(":")
    mod = importlib.import_module(module)
    original, calls = getattr(mod, name), [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    setattr(mod, name, wrapper)
    exec(sys.argv[1])
""")

STORE = "from ganbench.data import load_images; load_images('digits', None, 'all', image_size=32, progress=False)"
FEATURES = textwrap.dedent("""
    import torch
    from ganbench.data import load_images
    from ganbench.features import FeatureSpec, extract_features
    from ganbench.registry import get_variant
    torch.manual_seed(0)
    disc = get_variant("dcgan32").build(ngf=4, ndf=4, nz=8, channels=1)[1]
    store = load_images("digits", None, "all", image_size=32, progress=False)
    extract_features(disc, store, FeatureSpec("crash-test", [1, 2, 3, 4, 5, 6], "running", "float32"),
                     batch_size=256, progress=False)
""")
STATS = textwrap.dedent("""
    import numpy as np, os
    from ganbench.metrics.fid import save_statistics
    x = np.random.default_rng(0).normal(size=(64, 16))
    save_statistics(os.environ["GB_STATS"], x.mean(0), np.cov(x, rowvar=False), {"source": "test", "count": 64})
""")


def _killed(tmp_path: Path, snippet: str, kill: str, extra_env: dict[str, str] | None = None) -> None:
    script = tmp_path / "self_kill.py"
    script.write_text(SELF_KILL)
    env = {**_env(tmp_path), "GB_KILL": kill, **(extra_env or {})}
    proc = subprocess.run([sys.executable, str(script), snippet], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, (kill, proc.returncode, proc.stderr)


@pytest.mark.parametrize("nth", [1, 2, 3])  # killed before the first rename, after the images, after the labels
def test_a_store_killed_mid_build_is_rebuilt_not_trusted(tmp_path, monkeypatch, nth):
    from ganbench.data import load_images

    _killed(tmp_path, STORE, f"os:replace:{nth}")
    stores = tmp_path / "cache" / "stores"
    finals = sorted(p.name for p in stores.iterdir() if not p.name.startswith("."))
    assert not any(name.endswith(".json") for name in finals), finals  # no sidecar: the build never finished
    assert len(finals) == nth - 1
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    again = load_images("digits", None, "all", image_size=32, progress=False)
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "clean"))
    clean = load_images("digits", None, "all", image_size=32, progress=False)
    np.testing.assert_array_equal(again.images, clean.images)
    np.testing.assert_array_equal(again.labels, clean.labels)
    assert json.loads(Path(again.meta["cache_path"]).with_suffix(".json").read_text())["complete"] is True


@pytest.mark.parametrize("kill", ["ganbench.features:pool_maps:3", "os:replace:2"])  # mid-extraction; pre-sidecar
def test_a_feature_cache_killed_mid_build_is_rebuilt_not_trusted(tmp_path, monkeypatch, kill):
    import ganbench.features as feat

    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    subprocess.run([sys.executable, "-c", STORE], env=_env(tmp_path), check=True, timeout=300)  # store first
    _killed(tmp_path, FEATURES, kill)
    folder = tmp_path / "cache" / "features"
    assert not list(folder.glob("[!.]*.json"))
    assert len(list(folder.glob("[!.]*.npy"))) == (1 if kill.startswith("os:") else 0)
    calls = []
    original = feat.pool_maps
    monkeypatch.setattr(feat, "pool_maps", lambda *a, **k: calls.append(1) or original(*a, **k))
    exec(FEATURES.replace("extract_features(", "result = extract_features("), namespace := {})
    assert calls, "the partial cache was trusted"
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "clean"))
    exec(FEATURES.replace("extract_features(", "result = extract_features("), clean := {})
    np.testing.assert_array_equal(namespace["result"], clean["result"])


@pytest.mark.parametrize("kill", ["numpy:savez_compressed:1", "os:replace:2"])  # mid-npz; npz done, no sidecar
def test_inception_statistics_killed_mid_write_are_not_trusted(tmp_path, kill):
    from ganbench.metrics.fid import load_statistics, statistics_complete

    path = tmp_path / "ref.npz"
    _killed(tmp_path, STATS, kill, {"GB_STATS": str(path)})
    assert path.is_file() == kill.startswith("os:")  # the npz made it, its sidecar did not
    assert not statistics_complete(path)  # what a compare checks before reusing reference statistics
    subprocess.run([sys.executable, "-c", STATS], env={**_env(tmp_path), "GB_STATS": str(path)}, check=True,
                   timeout=300)
    assert statistics_complete(path)
    mu, sigma, meta = load_statistics(path)
    x = np.random.default_rng(0).normal(size=(64, 16))
    np.testing.assert_allclose(mu, x.mean(0))
    assert meta["count"] == 64 and meta["dims"] == 16


# ------------------------------------------------------------------------------------------------ records
def test_two_processes_appending_to_one_records_file_never_mix_lines(tmp_path):
    from ganbench.report.records import read_records

    path = tmp_path / "records" / "probe.jsonl"
    code = ("import sys; from ganbench.report.records import append_record\n"
            "for i in range(150): append_record({'writer': sys.argv[1], 'i': i, 'pad': 'x' * 5000}, sys.argv[2])")
    procs = [subprocess.Popen([sys.executable, "-c", code, name, str(path)], env=_env(tmp_path)) for name in "ab"]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    records = read_records(path)
    assert len(records) == 300
    for name in "ab":
        assert [r["i"] for r in records if r["writer"] == name] == list(range(150))


def test_tables_name_a_torn_record_line_and_skip_it(tmp_path):
    from ganbench.report.records import append_record

    records = tmp_path / "records"
    append_record({"kind": "quality", "label": "whole", "results": {"fid": 12.5}}, records / "quality.jsonl")
    with open(records / "quality.jsonl", "ab") as fh:  # an append killed halfway through its line
        fh.write(b'{"record_id": "0123", "kind": "quality", "label": "torn", "resu')
    proc = subprocess.run([sys.executable, "-m", "ganbench", "tables", "--records", str(records), "--out",
                           str(tmp_path / "tables"), "--compare-root", str(tmp_path / "none")], env=_env(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert warning == [f"ganbench: warning: {records / 'quality.jsonl'} line 2 is torn or corrupt (not valid JSON: "
                       "Unterminated string starting at, column 59); skipped it (delete that line to silence this)"]
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "tables" / "quality.md").is_file()
