"""`ganbench compare`: SPEC checks, equal budgets, records, table and curves, and resume after a kill."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ganbench.checkpoint import load_checkpoint
from ganbench.cli import cli
from ganbench.compare import BASELINE, check_comparison, plan, read_spec, run_compare, spec_from_dict
from ganbench.errors import ConfigError
from ganbench.report.records import read_records

SPEC = """
name = "tiny"
dataset = "digits"
split = "all"
model = "dcgan-svhn32"
seeds = [0, 1]
budget = { images = 1280 }
eval_every = 640
probe = "digits-10"
probe_trials = 2
probe_C_grid = [0.001, 0.01]
metrics = "digits"
n_samples = 200

[train]
ngf = 8
ndf = 8
nz = 16
batch_size = 32
deterministic = true
log_every = 10

[variants.ns]
objective = "ns"

[variants.wgan-gp]
objective = "wgan-gp"
"""


pytestmark = pytest.mark.usefixtures("isolated_cache")  # tests/conftest.py


def write_spec(tmp_path: Path, text: str = SPEC) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def table(folder: Path) -> list[dict[str, str]]:
    with open(folder / "compare.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_variant_gets_the_same_image_budget(tmp_path):
    spec = read_spec(write_spec(tmp_path))
    units = {(u.variant, u.seed): u for u in plan(spec, tmp_path / "out")}
    assert set(units) == {("ns", 0), ("ns", 1), ("wgan-gp", 0), ("wgan-gp", 1)}
    ns, wgan = units[("ns", 0)], units[("wgan-gp", 0)]
    # 1280 real images: 40 G steps of 32 for ns, 8 G steps of 5 x 32 for wgan-gp; evaluated every 640 images
    assert (ns.steps, ns.eval_steps, ns.images_per_step) == (40, [20, 40], 32)
    assert (wgan.steps, wgan.eval_steps, wgan.images_per_step) == (8, [4, 8], 160)
    assert ns.steps * ns.images_per_step == wgan.steps * wgan.images_per_step
    assert units[("ns", 1)].config.seed == 1 and ns.config.deterministic


@pytest.mark.parametrize("change,message", [
    ("budget = { images = 1280 }", None),
    ("budget = { epochs = 3 }", "budget must be a table with one key"),
    ("probe = \"cifar10-4000\"", "unknown probe"),
    ("seeds = [0, 0]", "seeds must be a list of distinct integers"),
    ("colour = 1", "unknown key"),
    ("metrics = \"fid\"", "unknown metrics"),
])
def test_bad_specs_are_refused_with_what_to_do(tmp_path, change, message):
    key = change.split(" =")[0]
    lines = [ln for ln in SPEC.splitlines() if not ln.startswith(key + " =")]
    text = "\n".join([change, *lines])
    if message is None:
        assert read_spec(write_spec(tmp_path, text)).budget == 1280
    else:
        with pytest.raises(ConfigError, match=message):
            read_spec(write_spec(tmp_path, text))


def test_a_learning_rate_decay_is_planned_against_the_budget(tmp_path):
    data = {"name": "x", "dataset": "digits", "eval_every": 10, "budget": {"steps": 40}, "probe": "digits-10",
            "seeds": [0], "variants": {"ns": {"objective": "ns", "lr_decay": "linear", "lr_decay_from": 30}}}
    (unit,) = plan(spec_from_dict(data), tmp_path)
    assert (unit.steps, unit.resolved.lr_decay, unit.resolved.lr_decay_from) == (40, "linear", 30)
    assert unit.config.lr_factor(35, unit.steps) == 0.5
    data["variants"]["ns"]["lr_decay_from"] = 40  # the decay would begin at the run's end: refused before training
    with pytest.raises(ConfigError, match="variant 'ns': --lr-decay-from 40 leaves no step to decay over"):
        plan(spec_from_dict(data), tmp_path)


def test_a_comparison_continues_another_ones_run_with_a_decaying_tail(tmp_path):
    # results/compare/cifar10-fm-long and cifar10-fm-decay: a copied run directory is resumed, not trained again
    short = replace(read_spec(write_spec(tmp_path, SPEC.replace("seeds = [0, 1]", "seeds = [0]"))),
                    metrics="none", variants={"ns": {"objective": "ns"}})
    list(run_compare(short, tmp_path / "short", progress=False))
    first = tmp_path / "short" / "runs" / "ns" / "seed0"
    tail = replace(short, name="tail", budget=1920,
                   variants={"ns": {"objective": "ns", "lr_decay": "linear", "lr_decay_from": 40}})
    (tmp_path / "tail" / "runs" / "ns").mkdir(parents=True)
    shutil.copytree(first, tmp_path / "tail" / "runs" / "ns" / "seed0")
    list(run_compare(tail, tmp_path / "tail", progress=False))
    run = tmp_path / "tail" / "runs" / "ns" / "seed0"
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["step"] == 60 and ckpt["config"]["lr_decay_from"] == 40
    assert ckpt["opt_G"]["param_groups"][0]["lr"] == pytest.approx(2e-4 * (60 - 59) / 20)
    # the first 40 steps are the short comparison's own: its checkpoint is still there, unchanged
    before = load_checkpoint(first / "checkpoints" / "last.pt")["G"]
    kept = load_checkpoint(run / "checkpoints" / "step_0000040.pt")["G"]
    assert all(torch.equal(before[k], kept[k]) for k in before)
    probes = {r["compare"]["step"]: r for r in read_records(tmp_path / "tail" / "records" / "probe.jsonl")
              if r["compare"]["variant"] == "ns"}
    assert sorted(probes) == [20, 40, 60]


def test_a_variant_may_not_change_the_budget_or_the_data(tmp_path):
    data = {"name": "x", "dataset": "digits", "eval_every": 10, "budget": {"steps": 10}, "probe": "digits-10",
            "variants": {"ns": {"objective": "ns", "steps": 99}}}
    with pytest.raises(ConfigError, match="sets steps"):
        spec_from_dict(data)
    data["variants"] = {"ns": {"objectiv": "ns"}}
    with pytest.raises(ConfigError, match="unknown key"):
        spec_from_dict(data)


def run_cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ganbench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


@pytest.mark.slow
def test_compare_writes_records_table_and_curves_and_survives_a_kill(tmp_path):
    spec_path = write_spec(tmp_path)
    spec = read_spec(spec_path)
    once = tmp_path / "once"
    lines = list(run_compare(spec, once, progress=False))
    assert lines[-1].startswith("comparison written")
    rows = {r["variant"]: r for r in table(once)}
    assert set(rows) == {"ns", "wgan-gp", BASELINE}
    assert rows["ns"]["seeds"] == "2" and rows["ns"]["images"] == "1280" and rows["wgan-gp"]["G steps"] == "8"
    assert " ± " in rows["ns"]["digits-10 final %"] and " ± " in rows["ns"]["digits-FID"]
    records = read_records(once / "records")
    # 2 variants x 2 seeds x 2 evaluation points, probe and quality each, plus 2 baseline probes
    assert sum(r["kind"] == "probe" for r in records) == 10
    assert sum(r["kind"] == "quality" for r in records) == 8
    finals = [r["results"]["test_accuracy_mean"] for r in records
              if r["kind"] == "probe" and r["compare"]["variant"] == "ns" and r["compare"]["step"] == 40]
    mean = sum(finals) / 2
    assert rows["ns"]["digits-10 final %"].startswith(f"{mean:.2f}")
    assert (once / "curves.png").stat().st_size > 10_000
    assert "Lucic et al. 2018" in (once / "compare.md").read_text()
    assert (once / "compare.tex").read_text().startswith(r"\begin{table}")
    # a second call finds everything done: no training, no evaluation
    again = list(run_compare(spec, once, progress=False))
    assert sum("finished (its records are in" in ln for ln in again) == 4
    assert not any("trained" in ln or "evaluation" in ln or "probe(s) run" in ln for ln in again)
    assert check_comparison(once, once) == []

    # killed during the second run's training, then started again: the same table (wall times aside)
    killed = tmp_path / "killed"
    proc = run_cli("compare", str(spec_path), "--out", str(killed), "--quiet")
    target = killed / "runs" / "ns" / "seed1" / "checkpoints" / "step_0000020.pt"
    deadline = time.time() + 300
    while not target.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert target.exists(), proc.stdout.read() if proc.poll() is not None else "timed out"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "compare.csv").exists()
    finished = run_cli("compare", str(spec_path), "--out", str(killed), "--quiet", "--check", str(once))
    output = finished.communicate(timeout=600)[0]
    assert finished.returncode == 0, output
    assert "matches" in output
    assert check_comparison(killed, once) == []


def test_check_reports_a_moved_number(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, acc in ((a, "90.00 ± 1.00"), (b, "91.00 ± 1.00")):
        folder.mkdir()
        (folder / "compare.csv").write_text(
            f"variant,digits-10 final %,train wall time s (per seed)\nns,{acc},{len(acc)}\n")
    assert check_comparison(a, a) == []
    problems = check_comparison(a, b)
    assert problems == ["ns: digits-10 final % is '90.00 ± 1.00', committed '91.00 ± 1.00'"]


def _table(folder: Path, rows: list[str]) -> Path:
    folder.mkdir()
    (folder / "compare.csv").write_text("variant,seeds,G steps,digits-10 final %,digits-FID,digits-IS,"
                                        "train wall time s (per seed)\n" + "".join(r + ",12\n" for r in rows))
    return folder


def test_tolerant_check_accepts_what_another_cpu_moves_and_nothing_more(tmp_path):
    """--tolerant: accuracies within 1 point, FID/IS within 25% of the committed means, counts exact."""
    committed = _table(tmp_path / "c", ["ns,2,450,91.83 ± 0.17,619.6 ± 301.9,2.68 ± 0.06",
                                        "random-init D,2,0,92.09 ± 0.04,-,-"])
    # the AMD EPYC rerun of the committed Intel table: 0.27 points, 7% FID, 11% IS
    amd = _table(tmp_path / "amd", ["ns,2,450,91.56 ± 0.08,576.2 ± 75.2,2.97 ± 0.02",
                                    "random-init D,2,0,92.09 ± 0.04,-,-"])
    assert check_comparison(amd, committed, tolerant=True) == []
    assert len(check_comparison(amd, committed)) == 3  # exact: every moved mean
    broken = _table(tmp_path / "broken", ["ns,2,300,90.70 ± 0.08,800.0 ± 75.2,2.00 ± 0.02",
                                          "random-init D,2,0,92.09 ± 0.04,12.0 ± 0.1,-"])
    assert check_comparison(broken, committed, tolerant=True) == [
        "ns: G steps is '300', committed '450'",
        "ns: digits-10 final % is '90.70 ± 0.08', committed '91.83 ± 0.17'",
        "ns: digits-FID is '800.0 ± 75.2', committed '619.6 ± 301.9'",
        "ns: digits-IS is '2.00 ± 0.02', committed '2.68 ± 0.06'",
        "random-init D: digits-FID is '12.0 ± 0.1', committed '-'",
    ]
    # a table of one seed has values without a spread: the same tolerances apply to them
    one = _table(tmp_path / "one", ["ns,1,450,91.83,619.6,2.68", "random-init D,1,0,92.09,-,-"])
    moved = _table(tmp_path / "moved", ["ns,1,450,91.56,576.2,2.97", "random-init D,1,0,92.30,-,-"])
    assert check_comparison(moved, one, tolerant=True) == []
    assert len(check_comparison(moved, one)) == 4
    far = _table(tmp_path / "far", ["ns,1,450,93.00,576.2,2.97", "random-init D,1,0,92.09,-,-"])
    assert check_comparison(far, one, tolerant=True) == ["ns: digits-10 final % is '93.00', committed '91.83'"]


def test_tolerant_needs_check(tmp_path):
    result = CliRunner().invoke(cli, ["compare", "--preset", "digits", "--tolerant"])
    assert result.exit_code == 2 and "--tolerant applies to --check" in result.output


def test_a_different_spec_in_the_same_folder_is_refused(tmp_path):
    spec = read_spec(write_spec(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    (out / "spec.json").write_text("{}")
    with pytest.raises(ConfigError, match="different SPEC"):
        list(run_compare(spec, out, progress=False))


def test_a_comparison_may_gain_variants_after_its_own_but_not_change_them():
    from ganbench.compare import same_comparison, spec_json

    spec = spec_from_dict({"name": "x", "dataset": "digits", "budget": {"images": 640}, "eval_every": 640,
                           "probe": "digits", "variants": {"ns": {"objective": "ns"}, "lsgan": {"objective": "lsgan"}}})
    saved = spec_json(spec)
    more = replace(spec, variants={**spec.variants, "ss-gan": {"objective": "ss-gan"}}, seeds=[0, 1, 2])
    assert same_comparison(saved, spec_json(more))
    reordered = replace(spec, variants={"lsgan": {"objective": "lsgan"}, "ns": {"objective": "ns"}})
    changed = replace(spec, variants={"ns": {"objective": "ns", "lr": 1e-3}, "lsgan": {"objective": "lsgan"}})
    dropped = replace(spec, variants={"ns": {"objective": "ns"}})
    other = replace(spec, eval_every=320)
    for bad in (reordered, changed, dropped, other):
        assert not same_comparison(saved, spec_json(bad))
    # a variant none of whose cells has run may change its settings; the others, and the order, still may not
    assert same_comparison(saved, spec_json(changed), unrun={"ns"})
    assert not same_comparison(saved, spec_json(changed), unrun={"lsgan"})
    assert not same_comparison(saved, spec_json(reordered), unrun={"ns", "lsgan"})
    assert not same_comparison(saved, spec_json(other), unrun={"ns", "lsgan"})


def test_a_variant_that_has_not_run_may_change_in_a_comparison_folder(tmp_path):
    from ganbench.compare import spec_json
    from ganbench.compare.run import unrun_variants
    from ganbench.report.records import append_record

    spec = read_spec(write_spec(tmp_path, SPEC + '\n[variants.lsgan]\nobjective = "lsgan"\n'))
    out = tmp_path / "out"
    out.mkdir()
    (out / "spec.json").write_text(spec_json(spec))
    assert unrun_variants(spec, out) == {"ns", "wgan-gp", "lsgan"}
    append_record({"kind": "probe", "compare": {"name": spec.name, "variant": "ns", "seed": 0, "step": 10}},
                  out / "records" / "probe.jsonl")
    (out / "runs" / "wgan-gp" / "seed0").mkdir(parents=True)  # a killed cell's run directory: it has run
    assert unrun_variants(spec, out) == {"lsgan"}
    for name in ("ns", "wgan-gp"):
        changed = replace(spec, variants={**spec.variants, name: {**spec.variants[name], "lr": 1e-3}})
        with pytest.raises(ConfigError, match="change only variants that have not run"):
            list(run_compare(changed, out, progress=False, only=[name], seeds=[0]))
    # lsgan has not run: its new settings pass the SPEC check (the run then stops at the unknown seed, untrained)
    changed = replace(spec, variants={**spec.variants, "lsgan": {"objective": "lsgan", "lr": 1e-3}})
    with pytest.raises(ConfigError, match="seed") as refused:
        list(run_compare(changed, out, progress=False, only=["lsgan"], seeds=[7]))
    assert "different SPEC" not in str(refused.value)


@pytest.mark.slow
def test_jobs_run_trainings_at_once_with_the_same_table(tmp_path):
    text = SPEC.replace('seeds = [0, 1]', 'seeds = [0, 1]\nthreads = 1').replace(
        '[variants.wgan-gp]\nobjective = "wgan-gp"\n', '')
    spec = read_spec(write_spec(tmp_path, text))
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    list(run_compare(spec, serial, progress=False))
    lines = list(run_compare(spec, parallel, jobs=2, progress=False))
    assert sum("trained" in ln and "evaluated" in ln for ln in lines) == 2
    assert check_comparison(parallel, serial) == []
    assert {r["variant"] for r in table(parallel)} == {"ns", BASELINE}


def fake_inception_spec(steps: int):
    """One tiny dcgan32 on synthetic images, scored with Inception every 2 steps."""
    return spec_from_dict({
        "name": "fake-inception", "dataset": "fake", "max_images": 32, "model": "dcgan32", "seeds": [0],
        "budget": {"steps": steps}, "eval_every": 2, "metrics": "inception", "n_samples": 10, "baseline": False,
        "train": {"ngf": 4, "ndf": 4, "nz": 8, "batch_size": 16},
        "variants": {"ns": {"objective": "ns"}},
    })


@pytest.mark.slow
def test_inception_metrics_along_training_with_one_reference_pass(tmp_path, monkeypatch):
    from ganbench.metrics.inception import write_random_inception_weights

    weights = write_random_inception_weights(tmp_path / "inception.pth", seed=0)
    monkeypatch.setenv("GANBENCH_INCEPTION_WEIGHTS", str(weights))
    spec = fake_inception_spec(steps=4)
    out = tmp_path / "out"
    list(run_compare(spec, out, progress=False))
    records = [r for r in read_records(out / "records") if r["kind"] == "quality"]
    assert sorted(r["compare"]["step"] for r in records) == [2, 4]
    assert all(r["reference"] == "reference_stats.npz" for r in records)  # portable: relative to the folder
    from ganbench.metrics.fid import load_statistics

    assert load_statistics(out / "reference_stats.npz")[2]["count"] == 32  # the SPEC's max_images, not the split
    row = table(out)[0]
    fid = [r["results"]["fid"] for r in records if r["compare"]["step"] == 4][0]
    assert row["FID"] == f"{fid:.1f}" and "±" not in row["IS"]  # one seed: a value, no spread claimed


def test_sample_columns_say_when_inception_weights_are_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_INCEPTION_WEIGHTS", "")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    spec = fake_inception_spec(steps=2)
    out = tmp_path / "out"
    list(run_compare(spec, out, progress=False))
    row = table(out)[0]
    assert row["FID"] == row["IS"] == "skipped: no Inception weights"
    assert not (out / "records" / "quality.jsonl").exists()


def test_the_folder_keeps_the_specs_variant_order_for_its_table(tmp_path):
    from ganbench.compare import spec_json, spec_of_folder

    spec = spec_from_dict({"name": "x", "dataset": "digits", "eval_every": 10, "budget": {"steps": 10},
                           "probe": "digits-10", "variants": {"zz": {"objective": "ns"}, "aa": {"objective": "lsgan"}}})
    (tmp_path / "spec.json").write_text(spec_json(spec))
    assert list(spec_of_folder(tmp_path).variants) == ["zz", "aa"]


def test_final_sample_grids_are_collected_side_by_side(tmp_path):
    from ganbench.compare import collect_samples

    spec = read_spec(write_spec(tmp_path))
    units = plan(spec, tmp_path / "out")
    grid = units[0].run_dir / "samples" / f"step_{units[0].steps:07d}.png"
    grid.parent.mkdir(parents=True)
    grid.write_bytes(b"\x89PNG fake")
    copied = collect_samples(units, tmp_path / "out")
    assert copied == [tmp_path / "out" / "samples" / "ns-seed0.png"]
    assert copied[0].read_bytes() == b"\x89PNG fake"


def test_tensorboard_gives_one_run_per_variant_and_seed_with_its_evaluations(tmp_path):
    from dataclasses import replace

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ganbench.compare.run import _tensorboard_results

    spec = spec_from_dict({"name": "tb", "dataset": "digits", "variants": {"ns": {}, "hinge": {"objective": "hinge"}},
                           "budget": {"steps": 4}, "eval_every": 2, "probe": "digits"})
    units = plan(spec, tmp_path)
    assert sorted(str(u.run_dir.relative_to(tmp_path)) for u in units) == [
        "runs/hinge/seed0", "runs/hinge/seed1", "runs/ns/seed0", "runs/ns/seed1"]
    unit = replace(units[0], config=replace(units[0].config, tensorboard=True))
    _tensorboard_results(unit, 2, "probe", {"test_accuracy_mean": 91.5, "per_trial": [91.5], "note": "x"})
    _tensorboard_results(unit, 4, "probe", {"test_accuracy_mean": 93.25, "per_trial": [93.25]})
    events = EventAccumulator(str(unit.run_dir)).Reload()
    assert events.Tags()["scalars"] == ["probe/test_accuracy_mean"]  # numbers only; lists and text are left out
    assert [(e.step, e.value) for e in events.Scalars("probe/test_accuracy_mean")] == [(2, 91.5), (4, 93.25)]
    _tensorboard_results(units[1], 2, "probe", {"test_accuracy_mean": 1.0})  # --tensorboard not given: nothing
    assert not units[1].run_dir.exists()


# ------------------------------------------------------------------------------------ slices over sittings
SLICE_SPEC = SPEC.replace("seeds = [0, 1]", "seeds = [0, 1, 2]").replace(
    "budget = { images = 1280 }", "budget = { images = 640 }").replace("eval_every = 640", "eval_every = 320")


def probe_steps(out: Path) -> list[tuple[str, int, int]]:
    return sorted((r["compare"]["variant"], r["compare"]["seed"], r["compare"]["step"])
                  for r in read_records(out / "records") if r["kind"] == "probe")


@pytest.mark.slow
def test_slices_run_only_their_cells_and_a_continued_comparison_retrains_nothing_with_records(tmp_path):
    spec = read_spec(write_spec(tmp_path, SLICE_SPEC))
    out = tmp_path / "out"
    lines = list(run_compare(spec, out, progress=False, only=["ns"], seeds=[0]))
    assert lines[0].startswith("ns seed 0: trained in")
    # one cell: its two evaluation points, no baseline (not in --only), no other cell's run directory
    assert probe_steps(out) == [("ns", 0, 10), ("ns", 0, 20)]
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["ns"]
    rows = {r["variant"]: r for r in table(out)}
    assert rows["ns"]["seeds"] == "1 of 3" and rows["wgan-gp"]["seeds"] == "0 of 3"
    assert rows["wgan-gp"]["digits-10 final %"] == "-" and rows[BASELINE]["seeds"] == "0 of 3"
    train = [r for r in read_records(out / "records") if r["kind"] == "train"]
    assert len(train) == 1 and train[0]["machine"]["threads"] >= 1 and train[0]["machine"]["cpu"]
    (label, seconds), = train[0]["wall_time_by_machine"].items()
    assert seconds == train[0]["wall_time_s"]["train"] and "threads" in label
    assert all("machine" in r for r in read_records(out / "records"))
    assert f"Wall times measured on {label}." in (out / "compare.md").read_text()
    # records travel: no path of this machine in them (checkpoints relative to the folder, caches by variable)
    for path in (out / "records").glob("*.jsonl"):
        assert str(tmp_path) not in path.read_text(), path
    ckpt = [r["checkpoint"]["path"] for r in read_records(out / "records") if r["kind"] == "probe"]
    assert ckpt == ["runs/ns/seed0/checkpoints/step_0000010.pt", "runs/ns/seed0/checkpoints/step_0000020.pt"]

    # the comparison continues on "another machine": the run directories are gone, the records are not
    import shutil

    shutil.rmtree(out / "runs")
    lines = list(run_compare(spec, out, progress=False, only=["ns", "random-init"], seeds=[0, 1]))
    assert lines[0] == f"ns seed 0: finished (its records are in {out / 'records'})"
    assert not (out / "runs" / "ns" / "seed0").exists()  # nothing retrained
    assert lines[1].startswith("ns seed 1: trained in")
    assert probe_steps(out) == [("ns", 0, 10), ("ns", 0, 20), ("ns", 1, 10), ("ns", 1, 20), (BASELINE, 0, 0),
                                (BASELINE, 1, 0)]
    rows = {r["variant"]: r for r in table(out)}
    assert rows["ns"]["seeds"] == "2 of 3" and rows[BASELINE]["seeds"] == "2 of 3"
    assert len([r for r in read_records(out / "records") if r["kind"] == "train"]) == 2


def test_a_row_may_have_its_own_seeds_and_gaining_one_keeps_its_records(tmp_path):
    # "3 seeds for the best three rows": a variant's table sets its own seeds; the others and the random-init D
    # keep the SPEC's, and the table counts each row against its own seeds
    from ganbench.compare import cell_fingerprint, comparison_table, same_comparison, select_slice, spec_json

    before = read_spec(write_spec(tmp_path))
    spec = read_spec(write_spec(tmp_path, SPEC.replace('[variants.ns]\nobjective = "ns"',
                                                       '[variants.ns]\nobjective = "ns"\nseeds = [0, 1, 2]')))
    assert sorted((u.variant, u.seed) for u in plan(spec, tmp_path / "out")) == [
        ("ns", 0), ("ns", 1), ("ns", 2), ("wgan-gp", 0), ("wgan-gp", 1)]
    # the cells already run stay valid, and the folder's comparison continues with the row's new seed
    assert cell_fingerprint(spec, "ns") == cell_fingerprint(before, "ns")
    assert cell_fingerprint(spec, BASELINE) == cell_fingerprint(before, BASELINE)
    assert same_comparison(spec_json(before), spec_json(spec))
    assert not same_comparison(spec_json(before), spec_json(replace(spec, variants={
        **spec.variants, "ns": {**spec.variants["ns"], "lr": 1e-3}})))
    assert select_slice(spec, ["ns"], [2]) == (["ns"], [2], False)
    assert select_slice(spec) == (["ns", "wgan-gp"], [0, 1, 2], True)
    with pytest.raises(ConfigError, match=r"--seeds 2: the SPEC's seeds are 0, 1 \(ns: 0, 1, 2\)"):
        select_slice(spec, ["wgan-gp", "random-init"], [2])
    _, body, caption = comparison_table([], spec, plan(spec, tmp_path / "out"))
    assert {row[0]: row[2] for row in body} == {"ns": "0 of 3", "wgan-gp": "0 of 2", BASELINE: "0 of 2"}
    assert "seeds 0, 1 (ns: 0, 1, 2)" in caption
    for bad in ("seeds = [0, 0]", "seeds = \"0\"", "seeds = []", "seeds = [true]"):
        text = SPEC.replace('[variants.ns]\nobjective = "ns"', f'[variants.ns]\nobjective = "ns"\n{bad}')
        with pytest.raises(ConfigError, match="variant 'ns': seeds must be a list of distinct integers"):
            read_spec(write_spec(tmp_path, text))


def test_slices_and_foreign_records_are_refused_before_any_training(tmp_path):
    spec = read_spec(write_spec(tmp_path, SLICE_SPEC))
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"--only lsgan: the SPEC's variants are ns, wgan-gp"):
        list(run_compare(spec, out, progress=False, only=["ns", "lsgan"]))
    with pytest.raises(ConfigError, match=r"--seeds 7: the SPEC's seeds are 0, 1, 2"):
        list(run_compare(spec, out, progress=False, seeds=[0, 7]))
    assert not out.exists()
    from ganbench.compare.run import _tag
    from ganbench.report.records import append_record

    unit = plan(spec, out)[0]
    good = {"kind": "probe", "results": {"test_accuracy_mean": 50.0}, "compare": _tag(spec, unit, 10)}
    append_record(good, out / "records" / "probe.jsonl")
    from ganbench.compare import check_records

    assert len(check_records(spec, out)) == 1
    other = read_spec(write_spec(tmp_path, SLICE_SPEC.replace("ngf = 8", "ngf = 16")))
    with pytest.raises(ConfigError, match="ns seed 0 made with other settings than this SPEC's"):
        list(run_compare(other, out, progress=False))
    renamed = read_spec(write_spec(tmp_path, SLICE_SPEC.replace('name = "tiny"', 'name = "other"')))
    with pytest.raises(ConfigError, match="comparison 'tiny', not of this SPEC's 'other'"):
        list(run_compare(renamed, out, progress=False))
    fewer = read_spec(write_spec(tmp_path, SLICE_SPEC.replace('[variants.ns]\nobjective = "ns"\n', "")))
    with pytest.raises(ConfigError, match="variant 'ns', which this SPEC does not name"):
        list(run_compare(fewer, out, progress=False))
    assert not (out / "runs").exists()  # every refusal came before any training


@pytest.mark.parametrize("args,needle", [
    (["--only", "nope"], "--only nope: the SPEC's variants are"),
    (["--seeds", "0,9"], "--seeds 9: the SPEC's seeds are"),
    (["--seeds", "a"], "is not a list of integers"),
])
@pytest.mark.slow
def test_bad_slices_are_one_line_exit_2(tmp_path, args, needle):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "ganbench", "compare", str(write_spec(tmp_path, SLICE_SPEC)),
                             "--out", str(out), "--quiet", *args], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (out / "runs").exists()


@pytest.mark.parametrize("change,message", [
    ("curve_trials = 0", "curve_trials must be a positive number"),
    ("curve_trials = 1\ncurve_calibration_images = 10", "at least 256 images"),
    ("curve_calibration_images = 1000", "needs curve_trials"),
    ("eval_every = 2000", "eval_every must lie between 1 and the budget"),
])
def test_curve_settings_that_leave_no_evaluation_point_are_refused(tmp_path, change, message):
    key = change.split(" =")[0]
    text = "\n".join([change, *[ln for ln in SLICE_SPEC.splitlines() if not ln.startswith(key + " =")]])
    with pytest.raises(ConfigError, match=message):
        read_spec(write_spec(tmp_path, text))


def test_portable_records_carry_the_users_paths_not_this_machines(tmp_path, monkeypatch):
    from ganbench.compare import portable

    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    spec = read_spec(write_spec(tmp_path, SLICE_SPEC.replace('split = "all"', 'split = "all"\ndata_root = "data"')))
    out = Path("out")
    record = {"checkpoint": {"path": str(tmp_path / "out" / "runs" / "ns" / "seed0" / "x.pt")},
              "data": {"train": {"root": str(tmp_path / "data"), "cache_path": str(tmp_path / "cache" / "s.npy")},
                       "data_root": "data"},
              "notes": ["/usr/lib is not ours", str(tmp_path / "data" / "a.png"),
                        f"digits metrics of {tmp_path / 'out' / 'runs' / 'x.pt'}"], "n": 3}
    assert portable(record, spec, out) == {
        "checkpoint": {"path": "runs/ns/seed0/x.pt"},
        "data": {"train": {"root": "data", "cache_path": "$GANBENCH_CACHE/s.npy"}, "data_root": "data"},
        "notes": ["/usr/lib is not ours", "data/a.png", "digits metrics of runs/x.pt"], "n": 3}


def test_wall_times_of_two_machines_are_kept_apart_and_marked(tmp_path, monkeypatch):
    from ganbench.compare import report as compare_report
    from ganbench.compare import run as compare_run

    run = tmp_path / "run"
    run.mkdir()
    labels = iter(["CPU A, 2 threads", "CPU B, 16 threads", "CPU B, 16 threads"])
    monkeypatch.setattr("ganbench.devices.machine_label", lambda info: next(labels))
    for seconds in (100.0, 50.0, 25.0):
        compare_run._add_wall_time(run, seconds)
    saved = compare_run._wall_time(run)
    assert saved == {"train_s": 175.0, "by_machine": {"CPU A, 2 threads": 100.0, "CPU B, 16 threads": 75.0}}
    spec = read_spec(write_spec(tmp_path, SLICE_SPEC))
    out = tmp_path / "out"
    units = plan(spec, out)
    from ganbench.report.records import append_record

    for unit, machines in ((units[0], saved["by_machine"]), (units[1], {"CPU A, 2 threads": 90.0})):
        append_record({"kind": "train", "wall_time_s": {"train": sum(machines.values())},
                       "wall_time_by_machine": machines, "compare": compare_run._tag(spec, unit, unit.steps)},
                      out / "records" / "train.jsonl")
    header, body, caption = compare_report.comparison_table(read_records(out / "records"), spec, units)
    ns = body[0]
    assert ns[header.index(compare_report.WALL_COLUMN)] == "132 (2 machines)"  # (175 + 90) / 2, over two machines
    assert "CPU A, 2 threads; CPU B, 16 threads (times of different machines are not comparable)" in caption
    # a record from before machines were recorded ran on an unknown one: its time is not averaged in unmarked
    assert (units[2].variant, units[2].seed) == ("ns", 2)
    append_record({"kind": "train", "wall_time_s": {"train": 60.0},
                   "compare": compare_run._tag(spec, units[2], units[2].steps)}, out / "records" / "train.jsonl")
    header, body, caption = compare_report.comparison_table(read_records(out / "records"), spec, units)
    assert body[0][header.index(compare_report.WALL_COLUMN)] == "108 (3 machines)"  # (175 + 90 + 60) / 3
    assert "CPU B, 16 threads; an unrecorded machine (times of different machines are not comparable)" in caption


def test_a_killed_training_session_counts_up_to_the_checkpoint_it_resumes_from(tmp_path, monkeypatch):
    """A slice killed mid-run (no return to compare) still adds its time: its mark says where it started, the
    metrics rows it logged up to the checkpoint the next session resumes from say how long it trained."""
    import json

    from ganbench.compare import run as compare_run

    monkeypatch.setattr("ganbench.devices.machine_label", lambda info: "CPU A, 2 threads")
    run = tmp_path / "runs" / "ns" / "seed0"
    run.mkdir(parents=True)
    compare_run._add_wall_time(run, 100.0)  # a first session returned after steps 1-200
    compare_run._mark_session(run, 200, "cpu")  # the second resumed at 200 and was killed after logging step 500
    rows = [{"step": 100, "elapsed_s": 40.0}, {"step": 200, "elapsed_s": 90.0},  # the first session's rows
            {"step": 300, "elapsed_s": 45.0}, {"step": 400, "elapsed_s": 95.0}, {"step": 500, "elapsed_s": 140.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 6')  # torn line
    assert compare_run.session_mark(run).is_file()
    # its last checkpoint is step 400: the steps 401-500 are trained (and counted) again by the next session
    assert compare_run.recover_killed_session(run, 400) == 95.0
    assert compare_run._wall_time(run) == {"train_s": 195.0, "by_machine": {"CPU A, 2 threads": 195.0}}
    assert not compare_run.session_mark(run).exists()
    assert compare_run.recover_killed_session(run, 400) == 0.0  # counted once
    compare_run._mark_session(run, 400, "cpu")
    compare_run._add_wall_time(run, 30.0)  # a session that returns clears its mark itself
    assert not compare_run.session_mark(run).exists() and compare_run._wall_time(run)["train_s"] == 225.0


@pytest.mark.slow
def test_a_variant_probes_the_representation_its_table_names(tmp_path):
    """probe_representation = "encoder": the bigan variant's records read its encoder, the ns variant's its D; the
    key shapes the cell (its fingerprint) but not the training, and an objective without it is refused."""
    bigan = '[variants.bigan]\nobjective = "bigan"\nprobe_representation = "encoder"'
    text = SPEC.replace("seeds = [0, 1]", "seeds = [0]").replace('metrics = "digits"', 'metrics = "none"').replace(
        '[variants.wgan-gp]\nobjective = "wgan-gp"', bigan)
    spec = read_spec(write_spec(tmp_path, text))
    units = {u.variant: u for u in plan(spec, tmp_path / "out")}
    assert units["bigan"].config.objective == "bigan"
    list(run_compare(spec, tmp_path / "out", progress=False))
    probes = read_records(tmp_path / "out" / "records" / "probe.jsonl")
    reps = {(r["compare"]["variant"], r["features"].get("representation", "d")) for r in probes}
    assert reps == {("ns", "d"), ("bigan", "encoder"), (BASELINE, "d")}
    rows = {r["variant"]: r for r in table(tmp_path / "out")}
    assert rows["bigan"]["objective"] == "bigan (probe: encoder)" and rows["ns"]["objective"] == "ns"
    ns = '[variants.ns]\nobjective = "ns"'
    bad = text.replace(ns, ns + '\nprobe_representation = "encoder"')
    with pytest.raises(ConfigError, match="'encoder' is not a representation of objective 'ns'"):
        plan(read_spec(write_spec(tmp_path, bad)), tmp_path / "out2")


def test_curves_draw_no_two_variants_alike():
    """The zoo has 13 variants; matplotlib's colour cycle repeats after 10, so style alone must tell them apart."""
    from ganbench.compare.report import variant_style

    styles = [tuple(sorted(variant_style(i).items())) for i in range(30)]
    assert len(set(styles)) == 30
    assert variant_style(0) == {"color": "C0", "marker": "o", "linestyle": "-"}
    assert variant_style(12)["color"] == variant_style(2)["color"] and variant_style(12) != variant_style(2)
    assert all(s["linestyle"] != "--" for s in map(variant_style, range(30)))  # the random-init D's line
