"""The benchmark scripts run: benchmarks/gpu.py's CPU check (--device cpu --quick) writes a report with every section
and positive finite numbers; user errors of the benchmark scripts end in one line with exit code 2.

The peer section of gpu.py runs pytorch/examples' dcgan only when GANBENCH_SHARED names the shared folder
(e.g. GANBENCH_SHARED=../shared); otherwise the report must say it was skipped.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test runs a benchmark script as a subprocess

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("Training throughput", "pytorch/examples dcgan vs ganbench train (same network)", "Feature extraction",
            "L2-SVM fit, full CIFAR-10 size", "Inception throughput")


def _peer() -> Path | None:
    value = os.environ.get("GANBENCH_SHARED")
    peer = Path(value) / "peers" / "pytorch-examples" if value else None
    return peer if peer is not None and (peer / "dcgan" / "main.py").is_file() else None


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg",
            "GANBENCH_CACHE": str(tmp_path / "cache"),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def run(script: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=tmp_path,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=600)


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## ", text, flags=re.M)
    return {p.split("\n", 1)[0].strip(): p.split("\n", 1)[1] for p in parts[1:]}


def table(body: str) -> list[dict[str, str]]:
    """The section's Markdown table as dicts (header -> cell)."""
    lines = [line for line in body.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert set(lines[1]) <= set("|-: ") and "---" in lines[1]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True)) for line in lines[2:]]


def consistent(n: float, seconds: str, rate: str) -> bool:
    """images / (images/s) gives the printed seconds, up to their rounding to 1 ms."""
    return n / number(rate) == pytest.approx(number(seconds), abs=6e-4, rel=1e-2)


def number(cell: str) -> float:
    value = float(cell.replace(",", ""))
    assert math.isfinite(value) and value > 0, cell
    return value


def test_gpu_script_cpu_quick_mode_writes_every_section(tmp_path):
    out = tmp_path / "report" / "gpu.md"
    peer = _peer()
    args = ["--device", "cpu", "--quick", "--out", str(out)] + (["--peer-examples", str(peer)] if peer else [])
    proc = run("gpu.py", *args, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "Command: `python benchmarks/gpu.py --device cpu --quick" in text
    assert re.search(r"Device: CPU: .+; torch \d+\.\d+", text)
    found = sections(text)
    assert list(found) == list(SECTIONS)

    training = table(found["Training throughput"])
    assert [r["model"] for r in training] == ["dcgan32", "dcgan64"]
    for row in training:
        assert [k for k in row if k != "model"] == [
            "fp32 images/s", "bf16 images/s", "bf16 + channels_last + compile images/s"]
        for key in row:
            if key != "model":
                number(row[key])

    if peer is None:
        assert found[SECTIONS[1]].strip().startswith("skipped: pass --peer-examples")
    else:
        rows = table(found[SECTIONS[1]])
        assert [r["run"] for r in rows] == ["pytorch/examples dcgan", "ganbench train"]
        for row in rows:
            assert number(row["images"]) == 8
            assert consistent(8, row["wall s"], row["images/s"])

    (feat,) = table(found["Feature extraction"])
    assert number(feat["images"]) == 128 and number(feat["batch"]) == 64
    assert number(feat["features"]) == (8 + 8 + 16 + 16 + 32 + 32) * 16  # dcgan32 D at ndf = 8, 4x4 pools
    assert consistent(128, feat["seconds"], feat["images/s"])

    (svm,) = table(found["L2-SVM fit, full CIFAR-10 size"])
    assert (number(svm["n"]), number(svm["d"])) == (2000, 512)
    assert number(svm["X GiB (float16)"]) == pytest.approx(2000 * 512 * 2 / 2**30, abs=1e-3)
    number(svm["fit s"])
    assert number(svm["peak memory GiB"]) > 0.05  # the process's RSS: torch alone takes more than this
    assert 0.5 < number(svm["training accuracy"]) <= 1  # separable classes: a fitted SVM, not chance (0.1)

    (inc,) = table(found["Inception throughput"])
    assert number(inc["images"]) == 8 and number(inc["batch"]) == 4
    assert consistent(8, inc["seconds"], inc["images/s"])
    assert re.search(r"Weights: (the real FID-Inception weights|RANDOM weights)", found["Inception throughput"])
    assert re.search(r"Total time: \d+ s\.", text)


@pytest.mark.parametrize("script,args,message", [
    ("gpu.py", ["--device", "cuda", "--quick"], "no CUDA GPU is visible"),
    ("gpu.py", ["--device", "tpu"], "unknown --device 'tpu'"),
    ("gpu.py", ["--device", "cpu", "--C", "-1"], "--C must be a positive finite number"),
    ("gpu.py", ["--device", "cpu", "--peer-examples", "nowhere"], "dcgan/main.py not found"),
    ("bench_train.py", ["--peer-examples", "nowhere"], "dcgan/main.py not found"),
    ("bench_train.py", ["--real-images", "x.tar.gz"], "give --peer-examples too"),
    ("bench_train.py", ["--option-models", "dcgan99"], "--option-models:"),
    ("bench_train.py", ["--repeats", "0"], "--repeats must be at least 1"),
])
def test_benchmark_scripts_refuse_bad_input_in_one_line(tmp_path, script, args, message):
    if "cuda" in args:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is visible")
    proc = run(script, *args, tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_bench_protocols_runs_its_sections_on_tiny_inputs(tmp_path):
    """bench_protocols.py: the layout A/B on a few images, the BN moments A/B, the Hessian A/B on a small feature
    matrix, and the per-stage table from records, with the ratios it prints computed from its own numbers."""
    import json

    import numpy as np

    rng = np.random.default_rng(0)
    X = (np.abs(rng.normal(size=(300, 96))) + rng.normal(size=(1, 96)) ** 2).astype(np.float16)
    y = rng.integers(0, 4, 300)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)

    def record(total, acc, features):
        return {"protocol": "cifar10-full", "features": {"dim": 96}, "checkpoint": {"sha256": "s"},
                "wall_time_s": {"data": 1.0, "features": features, "select_C": total - features - 2,
                                "refit_and_test": 1.0, "total": total},
                "peak_rss_gib": 1.5, "svm": {"chosen_C": 1e-4}, "results": {"test_accuracy_mean": acc}}

    (tmp_path / "before.jsonl").write_text(json.dumps(record(300.0, 75.98, 100.0)) + "\n")
    after = record(100.0, 75.98, 40.0)
    after["svm"].update(fit_seconds={"0.0001": 10.0, "0.001": 25.4}, C_grid=[1e-4, 1e-3],
                        validation_accuracy={"0.0001": 75.5, "0.001": 74.25})
    (tmp_path / "after.jsonl").write_text(json.dumps(after) + "\n")
    out = run("bench_protocols.py", "--features", "64", "--bn-moments", "200", "--feature-amp", "64", "--repeats", "1",
              "--svm-features", "X.npy", "--svm-labels", "y.npy", "--C", "0.1",
              "--path-features", "X.npy", "--path-labels", "y.npy",
              "--path-Cs", "0.01,0.1,1", "--before", "before.jsonl", "--after", "after.jsonl",
              "--out", "protocols.md", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    text = (tmp_path / "protocols.md").read_text()
    ratio = float(re.search(r"channels_last / NCHW: \*\*([0-9.]+)x", text).group(1))
    rates = [float(v) for v in re.findall(r"\| (?:NCHW \(before\)|channels_last \(now, CPU\)) \| (\d+) \|", text)]
    assert len(rates) == 2 and ratio == pytest.approx(rates[1] / rates[0], rel=0.02)
    moments = re.search(r"Ratio: \*\*([0-9.]+)x\*\*; (\d+) of (\d+) float32 statistics differ", text)
    assert moments and int(moments.group(3)) == 2 * (128 + 256 + 256 + 512 + 512)  # mean and var of 5 BN layers
    assert int(moments.group(2)) <= int(moments.group(3)) // 100  # the same statistics but for rare last bits
    amp = re.search(r"Ratio bf16 / float32: \*\*([0-9.]+)x\*\*; feature difference largest ([0-9.e+-]+), mean "
                    r"([0-9.e+-]+) \(largest feature ([0-9.e+-]+)\)", text)
    amp_rates = [float(v) for v in re.findall(r"\| (?:float32 \(default\)|bf16 autocast \(`--amp bf16`\)) \| (\d+) \|",
                                              text)]
    assert amp and len(amp_rates) == 2 and float(amp.group(1)) == pytest.approx(amp_rates[1] / amp_rates[0], rel=0.02)
    largest, scale = float(amp.group(2)), float(amp.group(4))
    assert 1e-4 * scale < largest < 0.05 * scale  # bfloat16 rounding: beyond float32's, well below the features
    fit_row = r"\| (?:float32 \(before\)|bfloat16 \(now, CPU\)) \| [0-9.]+ \| \d+ \| \d+ \| ([0-9.e+-]+) \|"
    fits = re.findall(fit_row, text)
    assert len(fits) == 2 and float(fits[0]) == pytest.approx(float(fits[1]), rel=1e-4)  # the same optimum
    assert "cifar10-full: 5.0 min before, 1.7 min after: **3.00x** faster" in text and "| 75.98 |" in text
    assert "| cifar10-full | 96 | after | 0.0001..0.001 (2) | 10 (75.50) | 25 (74.25) | 35 |" in text  # per C
    assert "| cifar10-full | 96 | before |" not in text.split("Fitting time per C")[1]  # it has no fit_seconds
    path_rows = re.findall(r"^\| (0\.01|0\.1|1) \| (.*) \|$", text, re.M)
    assert [c for c, _ in path_rows] == ["0.01", "0.1", "1"]  # one row per C, three configurations each
    assert all(len(cells.split(" | ")) == 3 for _, cells in path_rows)
    agree = float(re.search(r"agree to ([0-9.e+-]+) relative", text).group(1))
    assert agree <= 1e-4  # every configuration reaches the same optimum
    bad = run("bench_protocols.py", "--svm-features", "X.npy", tmp_path=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_bench_curve_times_both_ways_on_an_idx_fixture_with_the_same_trial(tmp_path):
    """bench_curve.py on a 12,000-image mnist idx fixture (the mnist protocol: 10,000 validation images, 100 per
    class, subsets tested): the curve point reads 11,000 training images, the whole split 12,000; both fit the same
    trial, and the ratio it prints is the ratio of its own totals."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_data import write_mnist

    write_mnist(tmp_path / "mnist", "train", 12000, gz=True, seed=1)
    write_mnist(tmp_path / "mnist", "t10k", 300, gz=True, seed=2)
    out = tmp_path / "curve.md"
    proc = run("bench_curve.py", "--data-root", str(tmp_path / "mnist"), "--protocol", "mnist", "--width", "4",
               "--C-grid", "1e-3,1e-2", "--calibration-images", "12000", "--out", str(out), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    rows = {r["way"]: r for r in table(text)}
    assert number(rows["whole split"]["training images extracted"]) == 12000
    assert number(rows["curve point"]["training images extracted"]) == 11000
    # with every training image for the BN statistics both ways compute the same features of the rows they share
    assert rows["curve point"]["BN statistics images"] == rows["whole split"]["BN statistics images"] == "12000"
    assert rows["curve point"]["test %"] == rows["whole split"]["test %"]
    assert rows["curve point"]["validation %"] == rows["whole split"]["validation %"]
    ratio = number(rows["whole split"]["total s"]) / number(rows["curve point"]["total s"])
    printed = float(re.search(r"Curve point: ([\d.]+)x faster", text).group(1))
    assert printed == pytest.approx(ratio, abs=0.06)
    assert re.search(r"Machine: .+, \d+ threads", text)


def test_bench_curve_refuses_bad_input_in_one_line(tmp_path):
    for args, message in ((["--data-root", "nowhere"], "--data-root nowhere does not exist"),
                          (["--data-root", ".", "--repeats", "0"], "--repeats must be at least 1")):
        proc = run("bench_curve.py", *args, tmp_path=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_bench_kmeans_runs_both_to_the_same_clustering_and_prints_their_ratio(tmp_path):
    """bench_kmeans.py on random images: scikit-learn (ganbench's fit) and the torch loop run Lloyd from the same
    start for the same iterations, so they reach the same mean squared distance; the ratio is of its own times."""
    out = tmp_path / "kmeans.md"
    proc = run("bench_kmeans.py", "--patches", "3000", "--centroids", "30", "--iterations", "4", "--out", str(out),
               tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["implementation"]: r for r in table(out.read_text())}
    ours, loop = rows["ganbench (scikit-learn)"], rows["torch loop"]
    assert number(ours["mean squared distance to the nearest centroid"]) == pytest.approx(
        number(loop["mean squared distance to the nearest centroid"]), rel=1e-3)
    printed = float(re.search(r"([\d.]+)x the speed of the torch loop", out.read_text()).group(1))
    assert printed == pytest.approx(number(loop["seconds"]) / number(ours["seconds"]), rel=0.15, abs=0.06)


def test_bench_kmeans_refuses_bad_input_in_one_line(tmp_path):
    for args, message in ((["--centroids", "50", "--patches", "10"], "exceeds --patches"),
                          (["--data-root", "nowhere"], "--data-root nowhere does not exist")):
        proc = run("bench_kmeans.py", *args, tmp_path=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
