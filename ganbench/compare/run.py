"""Running a comparison: train each (variant, seed) unit as an ordinary run directory, probe and score its
checkpoints at the evaluation points as ordinary records (in OUT/records, the comparison's truth), probe the
random-init D, and end with the report. Only orchestration: the training, probe and metric code is train.loop's,
evaluate's and quality's."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from ganbench.compare.report import UNKNOWN_MACHINE, write_comparison
from ganbench.compare.spec import (
    BASELINE,
    CURVE_CALIBRATION_IMAGES,
    DEFAULT_REPRESENTATION,
    CompareSpec,
    cell_fingerprint,
    check_records,
    comparison_records,
    probe_representation,
    same_comparison,
    select_slice,
    spec_json,
)
from ganbench.compare.units import Unit, folder_name, plan
from ganbench.config import TrainConfig
from ganbench.errors import ConfigError
from ganbench.files import atomic_path, atomic_write
from ganbench.report.records import append_record

WALL_FILE = "compare_wall_time.json"  # in a run directory: its training seconds, in all and per machine


def train_unit(unit: Unit, progress: bool = False) -> float:
    """Train (or finish) one run; returns the wall time spent now. A finished run is skipped, a partial one
    resumes from its last.pt, and a run directory without a checkpoint starts over.

    A session killed before it returned (a slice of a long comparison ended, a machine went away) still counts:
    each session leaves a mark beside the run directory while it trains (seedN.session.json: a fresh run's
    directory is emptied when training starts), and the next session adds the killed one's training time up to
    the checkpoint it resumes from (the steps after it are trained, and counted, again)."""
    from ganbench.checkpoint import load_checkpoint
    from ganbench.train.loop import train

    last = unit.run_dir / "checkpoints" / "last.pt"
    t0 = time.perf_counter()
    done = int(load_checkpoint(last)["step"]) if last.is_file() else 0
    recover_killed_session(unit.run_dir, done)
    if done >= unit.steps:
        return 0.0
    _mark_session(unit.run_dir, done, unit.config.device)
    if done:
        cfg = unit.resolved
        # every setting compare chose must match the run's own (a changed SPEC is refused, not silently mixed)
        explicit = {f.name for f in fields(TrainConfig) if getattr(cfg, f.name) is not None} - {"device"}
        train(cfg, unit.run_dir, resume=True, explicit=explicit, progress=progress)
    else:
        train(unit.config, unit.run_dir, overwrite=True, progress=progress)
    spent = time.perf_counter() - t0
    _add_wall_time(unit.run_dir, spent, unit.config.device)
    return spent


def _read_wall(run_dir: Path) -> dict[str, Any]:
    path = run_dir / WALL_FILE
    saved = json.loads(path.read_text()) if path.is_file() else {}
    saved.setdefault("train_s", 0.0)
    by_machine = saved.setdefault("by_machine", {})
    if not by_machine and saved["train_s"]:
        by_machine[UNKNOWN_MACHINE] = saved["train_s"]  # written before machines were recorded
    return saved


def _write_wall(run_dir: Path, saved: dict[str, Any]) -> None:
    atomic_write(run_dir / WALL_FILE, json.dumps(saved))


def session_mark(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + ".session.json")


def _mark_session(run_dir: Path, start_step: int, device: str) -> None:
    from ganbench.devices import machine, machine_label

    run_dir.parent.mkdir(parents=True, exist_ok=True)
    mark = {"start_step": start_step, "machine": machine_label(machine(device))}
    atomic_write(session_mark(run_dir), json.dumps(mark))


def recover_killed_session(run_dir: Path, done: int) -> float:
    """When the last training session of run_dir was killed (its mark is still there), add its training time up to
    step done (the checkpoint the run resumes from) to the run's total: the metrics row of that session at the
    largest step <= done gives it (elapsed_s counts from the session's own start). Returns the seconds added."""
    mark = session_mark(run_dir)
    if not mark.is_file():
        return 0.0
    session = json.loads(mark.read_text())
    seconds = 0.0
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by the kill
            if isinstance(row, dict) and session["start_step"] < row.get("step", -1) <= done:
                seconds = max(seconds, float(row.get("elapsed_s", 0.0)))
    saved = _read_wall(run_dir)
    saved["train_s"] = round(saved["train_s"] + seconds, 2)
    saved["by_machine"][session["machine"]] = round(saved["by_machine"].get(session["machine"], 0.0) + seconds, 2)
    if run_dir.is_dir():
        _write_wall(run_dir, saved)
    mark.unlink()
    return seconds


def _add_wall_time(run_dir: Path, seconds: float, device: str = "cpu") -> None:
    """Add seconds of training to the run's total and to the machine's share (a run resumed elsewhere says so),
    and clear the session's mark: it returned."""
    from ganbench.devices import machine, machine_label

    saved = _read_wall(run_dir)
    label = machine_label(machine(device))
    saved["by_machine"][label] = round(saved["by_machine"].get(label, 0.0) + seconds, 2)
    saved["train_s"] = round(saved["train_s"] + seconds, 2)
    _write_wall(run_dir, saved)
    session_mark(run_dir).unlink(missing_ok=True)


def _wall_time(run_dir: Path) -> dict[str, Any]:
    path = run_dir / WALL_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def portable(value: Any, spec: CompareSpec, out: Path) -> Any:
    """A record with its paths as a user of the comparison folder gives them, not this machine's: paths inside the
    folder relative to it, the data root as the SPEC writes it, caches under $GANBENCH_CACHE. Records are
    committed and read on other machines."""
    from ganbench.data import cache_dir
    from ganbench.report.records import portable as swap_paths

    swaps = [(str(out.resolve()) + os.sep, ""), (str(cache_dir().resolve()) + os.sep, "$GANBENCH_CACHE/")]
    if spec.data_root is not None:
        swaps.insert(0, (str(Path(spec.data_root).expanduser().resolve()), spec.data_root))
    return swap_paths(value, swaps)


def _append(record: dict[str, Any], spec: CompareSpec, out: Path, name: str) -> None:
    append_record(portable(record, spec, out), out / "records" / name)


def _tag(spec: CompareSpec, unit: Unit, step: int) -> dict[str, Any]:
    return {"name": spec.name, "variant": unit.variant, "seed": unit.seed, "step": step,
            "images": step * unit.images_per_step, "objective": unit.config.objective,
            "cell": cell_fingerprint(spec, unit.variant)}


def record_training(spec: CompareSpec, unit: Unit, out: Path) -> bool:
    """Append the unit's training record (settings, wall time, machines) once its run is complete and evaluated;
    returns whether one was written. Written last, it marks the cell finished: compare never retrains a cell that
    has it, whether or not its run directory is on this machine. Tables read wall times from these records."""
    from ganbench.checkpoint import load_checkpoint
    from ganbench.devices import machine
    from ganbench.report.records import environment_versions

    last = unit.run_dir / "checkpoints" / "last.pt"
    if not last.is_file() or (unit.variant, str(unit.seed), unit.steps, "train") in _done_keys(out):
        return False
    ckpt = load_checkpoint(last)
    if int(ckpt["step"]) < unit.steps:
        return False
    wall = _wall_time(unit.run_dir)
    _append({"kind": "train", "label": f"{unit.variant} seed {unit.seed}", "model": ckpt["model"],
             "config": ckpt["config"], "provenance": ckpt.get("provenance"),
             "wall_time_s": {"train": wall.get("train_s")}, "wall_time_by_machine": wall.get("by_machine"),
             "machine": machine(unit.config.device), "versions": environment_versions(),
             "compare": _tag(spec, unit, unit.steps)}, spec, out, "train.jsonl")
    return True


def _done_keys(out: Path) -> set[tuple[str, str, int, str]]:
    keys = set()
    for r in comparison_records(out):
        c = r.get("compare") or {}
        keys.add((c.get("variant"), str(c.get("seed")), int(c.get("step", -1)), r.get("kind")))
    return keys


def unrun_variants(spec: CompareSpec, out: Path) -> set[str]:
    """The SPEC's variants of which no cell has run in out: no record in out/records, no run directory in
    out/runs (a killed cell's checkpoint was made with the variant's settings)."""
    ran = {v for v, _, _, _ in _done_keys(out)}
    return {name for name in spec.variants if name not in ran and not (out / "runs" / folder_name(name)).exists()}


def evaluate_unit(spec: CompareSpec, unit: Unit, out: Path, device: str = "cpu", progress: bool = False) -> int:
    """Probe and score the unit's checkpoints at its evaluation points that have no record yet; returns how many
    evaluations ran. The points before the last are probed with spec.curve_trials trials when set (a curve point:
    only the images those trials read, cheaper BN statistics); the last with the SPEC's probe settings."""
    from ganbench.devices import machine

    done = _done_keys(out)
    ran = 0
    for step in unit.eval_steps:
        ckpt = unit.run_dir / "checkpoints" / f"step_{step:07d}.pt"
        tag = _tag(spec, unit, step)
        wanted = [k for k in ("probe", "quality") if (unit.variant, str(unit.seed), step, k) not in done
                  and (spec.probe if k == "probe" else spec.metrics != "none")]
        if wanted and not ckpt.is_file():
            raise ConfigError(f"{unit.variant} seed {unit.seed}: the checkpoint of step {step} ({ckpt}) is gone and "
                              f"its {' and '.join(wanted)} record(s) are missing; delete {unit.run_dir} to train "
                              "the run again")
        if spec.probe and (unit.variant, str(unit.seed), step, "probe") not in done:
            curve = spec.curve_trials is not None and step != unit.steps
            record = _probe(spec, str(ckpt), None, device, progress, curve=curve,
                            representation=probe_representation(spec, unit.variant))
            _append({**record, "machine": machine(device), "compare": tag}, spec, out, "probe.jsonl")
            _tensorboard_results(unit, step, "probe", record["results"])
            ran += 1
        if spec.metrics != "none" and (unit.variant, str(unit.seed), step, "quality") not in done:
            record = _quality(spec, str(ckpt), unit.seed, out, device, progress)
            if record is not None:
                _append({**record, "machine": machine(device), "compare": tag}, spec, out, "quality.jsonl")
                _tensorboard_results(unit, step, "quality", record["results"])
                ran += 1
    return ran


def _tensorboard_results(unit: Unit, step: int, kind: str, results: dict[str, Any]) -> None:
    """With --tensorboard: an evaluation's numbers as scalars of the unit's run (the run directory holds its
    training event files too, so `tensorboard --logdir OUT/runs` shows one run per variant and seed)."""
    if not unit.config.tensorboard:
        return
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(unit.run_dir), filename_suffix=".eval") as writer:
        for key, value in sorted(results.items()):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                writer.add_scalar(f"{kind}/{key}", value, step)


def _probe(spec: CompareSpec, checkpoint: str | None, random_kwargs: dict[str, Any] | None, device: str,
           progress: bool, seed: int = 0, curve: bool = False,
           representation: str = DEFAULT_REPRESENTATION) -> dict[str, Any]:
    """The probe record of a checkpoint (or of the random-init D); curve: a point along training (curve_trials
    trials, features of the rows those trials read, BN statistics of curve_calibration_images images);
    representation: what of the checkpoint the probe reads (D, or an owned module such as BiGAN's encoder)."""
    from ganbench.evaluate import PROTOCOLS, evaluate_representation, load_discriminator, load_representation

    if checkpoint is not None:
        d = load_representation(checkpoint, device=device, representation=representation)
    else:
        d = load_discriminator(random_init=spec.model, model_kwargs=random_kwargs, seed=seed, device=device)
    light: dict[str, Any] = {}
    notes = [f"ganbench compare {spec.name}"]
    if curve:
        light = {"trials": spec.curve_trials, "needed_rows_only": PROTOCOLS[spec.probe].reads_subset_rows,
                 "calibration_images": spec.curve_calibration_images or CURVE_CALIBRATION_IMAGES}
        notes.append("curve point (not the final protocol)")
    return evaluate_representation(spec.probe, d, spec.data_root, layers=spec.probe_layers,
                                   C_grid=spec.probe_C_grid, trials=light.pop("trials", spec.probe_trials),
                                   device=device, progress=progress, notes=notes, **light)


def inception_available() -> bool:
    """Whether Inception weights are on this machine (compare never downloads them mid-run)."""
    from ganbench.metrics.errors import InceptionWeightsError
    from ganbench.metrics.inception import locate_inception_weights

    try:
        locate_inception_weights(allow_download=False, progress=False)
    except InceptionWeightsError:
        return False
    return True


def _quality(spec: CompareSpec, checkpoint: str, seed: int, out: Path, device: str,
             progress: bool) -> dict[str, Any] | None:
    from ganbench.quality import digits_quality, evaluate_quality, write_reference_statistics

    if spec.metrics == "digits":
        return digits_quality(checkpoint, spec.n_samples, seed, device)
    if not inception_available():
        return None
    from ganbench.metrics.fid import statistics_complete

    # the real images' Inception statistics once per comparison, not once per evaluation point
    ref = out / "reference_stats.npz"
    if not statistics_complete(ref):  # absent, or left half-made by a killed compare: made again
        # the images the variants train on: the split, or its first max_images when the SPEC limits them
        write_reference_statistics(f"{spec.dataset}:{spec.split}", str(ref), data_root=spec.data_root,
                                   device=device, progress=progress, max_images=spec.max_images)
    return evaluate_quality(checkpoint=checkpoint, ref=str(ref), n=spec.n_samples, metrics=("fid", "is"),
                            device=device, seed=seed, data_root=spec.data_root, progress=progress)


def evaluate_baseline(spec: CompareSpec, units: list[Unit], out: Path, device: str = "cpu",
                      progress: bool = False, seeds: list[int] | None = None) -> int:
    """The random-init D of the same architecture (the first variant's constructor arguments), one per seed
    (the SPEC's, or those of a slice)."""
    if not (spec.baseline and spec.probe):
        return 0
    from ganbench.registry import get_variant

    cfg = units[0].resolved
    variant = get_variant(cfg.model)
    kwargs = {k: v for k, v in {"nz": cfg.nz, "ngf": cfg.ngf, "ndf": cfg.ndf, **cfg.model_args}.items()
              if v is not None and variant.accepts(k)}
    if cfg.spectral_norm:
        kwargs["spectral_norm"] = True
    if "channels" in variant.defaults:
        from ganbench.data import load_images

        store = load_images(spec.dataset, spec.data_root, spec.split, image_size=variant.image_size,
                            max_images=spec.max_images, progress=progress)
        kwargs["channels"] = int(store.images.shape[1])
    done = _done_keys(out)
    ran = 0
    from ganbench.devices import machine

    for seed in spec.seeds if seeds is None else [s for s in seeds if s in spec.seeds]:
        if (BASELINE, str(seed), 0, "probe") in done:
            continue
        record = _probe(spec, None, kwargs, device, progress, seed=seed)
        tag = {"name": spec.name, "variant": BASELINE, "seed": seed, "step": 0, "images": 0, "objective": None,
               "cell": cell_fingerprint(spec, BASELINE)}
        _append({**record, "machine": machine(device), "compare": tag}, spec, out, "probe.jsonl")
        ran += 1
    return ran


def collect_samples(units: list[Unit], out: Path) -> list[Path]:
    """Each run's sample grid at the end of the budget, as out/samples/<variant>-seed<k>.png, to look at side by
    side (run directories may be large and are not meant to be kept)."""
    import shutil

    copied = []
    for unit in units:
        grid = unit.run_dir / "samples" / f"step_{unit.steps:07d}.png"
        if grid.is_file():
            target = out / "samples" / f"{folder_name(unit.variant)}-seed{unit.seed}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                shutil.copyfile(grid, tmp)
            copied.append(target)
    return copied


def _worker(args: tuple[CompareSpec, Unit, Path, str, int]) -> tuple[str, int, float]:
    spec, unit, out, device, threads = args
    import torch

    torch.set_num_threads(threads)
    spent = train_unit(unit)
    evaluate_unit(spec, unit, out, device)
    record_training(spec, unit, out)
    return unit.variant, unit.seed, spent


def run_compare(spec: CompareSpec, out: str | os.PathLike, *, jobs: int = 1, devices: list[str] | None = None,
                progress: bool = True, tensorboard: bool = False, only: list[str] | None = None,
                seeds: list[int] | None = None) -> Iterator[str]:
    """Train, evaluate and tabulate a comparison in out; yields a line per finished piece of work.

    A cell (variant, seed) whose training record is in out/records is finished: it is never trained again, even
    when its run directory is not on this machine (a comparison continued elsewhere), and the tables are made
    from the records. Other cells resume from their last.pt and evaluate the points that lack a record.
    only, seeds: run a slice (variants, `random-init` for the random-init D row; seeds of the SPEC); the table
    still has every row and says how many seeds each has.
    tensorboard: every (variant, seed) run also writes TensorBoard event files (training curves, sample grids,
    evaluations) in its run directory OUT/runs/VARIANT/seedN, so `tensorboard --logdir OUT/runs` overlays them.
    """
    out = Path(out)
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    devices = devices or ["cpu"]
    saved = out / "spec.json"
    wanted = spec_json(spec)
    if saved.is_file() and not same_comparison(saved.read_text(), wanted, unrun_variants(spec, out)):
        raise ConfigError(f"{out} holds a comparison of a different SPEC ({saved}); choose another --out "
                          "or delete that folder (a SPEC may only gain seeds and, after its variants, new ones, "
                          "and change only variants that have not run)")
    names, slice_seeds, with_baseline = select_slice(spec, only, seeds)
    check_records(spec, out)
    every_unit = plan(spec, out, devices[0])
    units = [u for u in every_unit if u.variant in names and u.seed in slice_seeds]
    if tensorboard:
        from ganbench.train.loop import require_tensorboard

        require_tensorboard()
        units = [u.with_settings(tensorboard=True) for u in units]
    if spec.threads:
        # CPU results are bit-reproducible for a fixed thread count; a SPEC that promises a table pins it
        import torch

        torch.set_num_threads(spec.threads)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(saved, wanted)
    t0 = time.perf_counter()
    finished = {(v, s) for v, s, _, kind in _done_keys(out) if kind == "train"}
    for unit in [u for u in units if (u.variant, str(u.seed)) in finished]:
        yield f"{unit.variant} seed {unit.seed}: finished (its records are in {out / 'records'})"
    units = [u for u in units if (u.variant, str(u.seed)) not in finished]
    if jobs == 1:
        for unit in units:
            spent = train_unit(unit, progress=progress)
            yield f"{unit.variant} seed {unit.seed}: " + (f"trained in {spent:.0f} s" if spent else "already trained")
            ran = evaluate_unit(spec, unit, out, devices[0], progress=progress)
            record_training(spec, unit, out)
            yield f"{unit.variant} seed {unit.seed}: {ran} evaluation(s) run"
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from multiprocessing import get_context

        threads = spec.threads or (max(1, (os.cpu_count() or 1) // jobs) if devices[0] == "cpu" else 1)
        work = [(spec, u.with_settings(device=devices[i % len(devices)]), out, devices[i % len(devices)], threads)
                for i, u in enumerate(units)]
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            for fut in as_completed([pool.submit(_worker, w) for w in work]):
                variant, seed, spent = fut.result()
                yield f"{variant} seed {seed}: trained ({spent:.0f} s) and evaluated"
    collect_samples(units, out)
    ran = evaluate_baseline(spec, every_unit, out, devices[0], progress=progress, seeds=slice_seeds) \
        if with_baseline else 0
    if ran:
        yield f"{BASELINE}: {ran} probe(s) run"
    paths = write_comparison(out, spec, every_unit)
    yield f"comparison written in {time.perf_counter() - t0:.0f} s: " + ", ".join(str(p) for p in paths)
