"""`ganbench compare`: GAN variants side by side on equal terms (same data, same budget, several seeds).

A SPEC names the variants, seeds, one budget, evaluation points, the probe protocol and the sample metrics. Each
(variant, seed) is trained as an ordinary run directory, its checkpoints at the evaluation points are probed and
scored as ordinary records, and the comparison table and curves are made from those records alone. This module only
orchestrates train.loop, evaluate and the metrics; it adds no training or metric code of its own. Fairness follows
Lucic et al. 2018 ("Are GANs Created Equal?"): one budget for all, several seeds, the spread reported.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ganbench.config import TrainConfig
from ganbench.errors import ConfigError
from ganbench.files import atomic_path, atomic_write
from ganbench.report.records import append_record as _append_record
from ganbench.report.records import read_records
from ganbench.report.render import csv_text, latex_tabular, markdown_table, tex_text

BUDGET_UNITS = ("steps", "images")
METRICS = ("digits", "inception", "none")
PRESETS = {"digits": "compare_digits.toml"}
BASELINE = "random-init D"
# settings a SPEC's variant may not set: compare owns them so every variant gets the same
OWNED = ("steps", "epochs", "seed", "checkpoint_every", "dataset", "data_root", "split", "max_images")


@dataclass
class CompareSpec:
    """A comparison: what to train, on what, for how long, and how to score it."""

    name: str
    dataset: str
    variants: dict[str, dict[str, Any]]
    budget_unit: str
    budget: int
    eval_every: int
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    model: str = "dcgan32"
    data_root: str | None = None
    split: str = "train"
    max_images: int | None = None
    probe: str | None = None
    probe_layers: str | None = None
    probe_trials: int | None = None
    probe_C_grid: list[float] | None = None
    curve_trials: int | None = None
    curve_calibration_images: int | None = None
    metrics: str = "none"
    n_samples: int = 1000
    baseline: bool = True
    threads: int | None = None
    train: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> CompareSpec:
        from ganbench.evaluate import PROTOCOLS

        if not self.variants:
            raise ConfigError("the SPEC names no variants; add [variants.NAME] tables")
        if self.budget_unit not in BUDGET_UNITS or self.budget < 1:
            raise ConfigError("budget must be one positive number of steps or images: budget = {images = 64000}")
        if self.eval_every < 1 or self.eval_every > self.budget:
            raise ConfigError(f"eval_every must lie between 1 and the budget ({self.budget} {self.budget_unit})")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct integers, got {self.seeds}")
        if self.probe is not None and self.probe not in PROTOCOLS:
            raise ConfigError(f"unknown probe {self.probe!r}; choose one of {', '.join(PROTOCOLS)}")
        if self.metrics not in METRICS:
            raise ConfigError(f"unknown metrics {self.metrics!r}; choose one of {', '.join(METRICS)}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer, got {self.threads!r}")
        if self.curve_trials is not None and (self.probe is None or self.curve_trials < 1):
            raise ConfigError(f"curve_trials must be a positive number of probe trials for the points before the "
                              f"last (and needs a probe), got {self.curve_trials!r}")
        if self.curve_calibration_images is not None and (self.curve_trials is None
                                                          or self.curve_calibration_images < 256):
            raise ConfigError("curve_calibration_images (training images whose batches give a curve point's BN "
                              "statistics) needs curve_trials and at least 256 images, got "
                              f"{self.curve_calibration_images!r}")
        if self.probe is None and self.metrics == "none":
            raise ConfigError("the SPEC neither probes nor scores samples; set probe or metrics")
        for name, overrides in self.variants.items():
            owned = sorted(set(overrides) & set(OWNED))
            if owned:
                raise ConfigError(f"variant {name!r} sets {', '.join(owned)}; compare sets these for every variant "
                                  "alike (budget, seeds, dataset)")
            if name == BASELINE:
                raise ConfigError(f"{BASELINE!r} is the baseline row's name; rename the variant")
        return self

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in out.items() if v is not None}


def read_spec(path: str | os.PathLike) -> CompareSpec:
    """Parse a SPEC TOML file; unknown keys and wrong shapes are refused with the accepted ones."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"SPEC file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"SPEC file {path} is not valid TOML: {exc}") from None
    return spec_from_dict(data, str(path))


def spec_from_dict(data: dict[str, Any], where: str = "SPEC") -> CompareSpec:
    data = dict(data)
    budget = data.pop("budget", None)
    if not isinstance(budget, dict) or len(budget) != 1 or next(iter(budget)) not in BUDGET_UNITS:
        raise ConfigError(f"{where}: budget must be a table with one key, steps or images, e.g. budget = "
                          "{images = 64000}")
    unit, amount = next(iter(budget.items()))
    known = {f.name for f in fields(CompareSpec)} - {"budget_unit", "budget"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: budget, {', '.join(sorted(known))}")
    for key in ("name", "dataset", "variants", "eval_every"):
        if key not in data:
            raise ConfigError(f"{where}: missing required key {key!r}")
    if not isinstance(data["variants"], dict) or not all(isinstance(v, dict) for v in data["variants"].values()):
        raise ConfigError(f"{where}: variants must be tables, e.g. [variants.ns] objective = \"ns\"")
    for name, overrides in [("train", data.get("train", {})), *data["variants"].items()]:
        training = {k: v for k, v in overrides.items() if k not in VARIANT_PROBE_KEYS or name == "train"}
        TrainConfig.from_dict(training, where=f"{where} [{name}]")  # refuses unknown training keys
    for name, overrides in data["variants"].items():
        rep = overrides.get("probe_representation", DEFAULT_REPRESENTATION)
        if not isinstance(rep, str) or not rep:
            raise ConfigError(f"{where} [variants.{name}]: probe_representation must be a name such as \"encoder\", "
                              f"got {rep!r}")
    try:
        spec = CompareSpec(budget_unit=unit, budget=amount, **data)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    for key, kind in (("budget", int), ("eval_every", int), ("n_samples", int), ("curve_trials", int),
                      ("curve_calibration_images", int)):
        value = getattr(spec, key)
        if key.startswith("curve") and value is None:
            continue
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be an integer, got {getattr(spec, key)!r}")
    return spec.validate()


# keys of a [variants.NAME] table that shape its evaluation, not its training
VARIANT_PROBE_KEYS = ("probe_representation",)
DEFAULT_REPRESENTATION = "d"


def training_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """A variant's table without the keys that shape only its evaluation."""
    return {k: v for k, v in overrides.items() if k not in VARIANT_PROBE_KEYS}


def probe_representation(spec: CompareSpec, variant: str) -> str:
    """What a variant's probe reads: "d" unless its table sets probe_representation (e.g. BiGAN's "encoder")."""
    if variant == BASELINE:
        return DEFAULT_REPRESENTATION
    return str(spec.variants[variant].get("probe_representation", DEFAULT_REPRESENTATION))


def preset_path(name: str) -> Path:
    """The packaged SPEC of a preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return Path(__file__).parent / "assets" / PRESETS[name]


def cell_fingerprint(spec: CompareSpec, variant: str) -> str:
    """What makes a (variant, seed) cell's records valid for this SPEC: every setting that shapes its training and
    its evaluations. Not the data's path (machines of a cluster mount the same files in different places), not the
    seeds (a SPEC may gain seeds), not the other variants."""
    keys = ("dataset", "split", "max_images", "model", "budget_unit", "budget", "eval_every", "probe",
            "probe_layers", "probe_trials", "probe_C_grid", "curve_trials", "curve_calibration_images", "metrics",
            "n_samples", "train")
    payload = {k: getattr(spec, k) for k in keys}
    # the random-init D is built from the first variant's architecture (evaluate_baseline)
    payload["variant"] = spec.variants[next(iter(spec.variants)) if variant == BASELINE else variant]
    payload["row"] = variant == BASELINE
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_records(spec: CompareSpec, out: Path) -> list[dict[str, Any]]:
    """The comparison records in out/records, refused (ConfigError) when any belongs to another SPEC: another
    comparison's name, a variant this SPEC does not name, or a cell made with other settings."""
    folder = out / "records"
    records = read_records(folder) if folder.is_dir() else []
    for r in records:
        c = r.get("compare") or {}
        where = f"{folder} holds records of"
        if c.get("name") != spec.name:
            raise ConfigError(f"{where} comparison {c.get('name')!r}, not of this SPEC's {spec.name!r}; choose "
                              "another --out or move those records away")
        variant = c.get("variant")
        if variant != BASELINE and variant not in spec.variants:
            raise ConfigError(f"{where} variant {variant!r}, which this SPEC does not name; add it back to the "
                              "SPEC or choose another --out")
        if "cell" in c and c["cell"] != cell_fingerprint(spec, variant):
            raise ConfigError(f"{where} {variant} seed {c.get('seed')} made with other settings than this SPEC's "
                              "(budget, architecture, probe or metrics changed); restore the SPEC or choose "
                              "another --out")
    return records


def select_slice(spec: CompareSpec, only: list[str] | None = None,
                 seeds: list[int] | None = None) -> tuple[list[str], list[int], bool]:
    """(variants, seeds, whether the random-init D is evaluated) of a slice of the comparison; unknown names and
    seeds are refused before any work. --only names variants, or the random-init D as `random-init`."""
    names = list(spec.variants)
    baseline = bool(spec.baseline and spec.probe)
    if only is not None:
        aliases = {BASELINE, "random-init"}
        unknown = [v for v in only if v not in spec.variants and v not in aliases]
        if unknown or not only:
            raise ConfigError(f"--only {','.join(unknown) or '(nothing)'}: the SPEC's variants are "
                              f"{', '.join(names)} (and random-init for the random-init D row)")
        baseline = baseline and bool(aliases & set(only))
        names = [v for v in names if v in only]
    if seeds is not None:
        unknown_seeds = [s for s in seeds if s not in spec.seeds]
        if unknown_seeds or not seeds:
            raise ConfigError(f"--seeds {','.join(map(str, unknown_seeds)) or '(nothing)'}: the SPEC's seeds are "
                              f"{', '.join(map(str, spec.seeds))}; add a seed to the SPEC's seeds list first")
    return names, list(seeds if seeds is not None else spec.seeds), baseline


# ------------------------------------------------------------------------------------------------ planning
@dataclass
class Unit:
    """One (variant, seed) training run and its evaluation points (in G steps)."""

    variant: str
    seed: int
    config: TrainConfig
    run_dir: Path
    steps: int
    eval_steps: list[int]
    images_per_step: int


def plan(spec: CompareSpec, out: Path, device: str = "cpu") -> list[Unit]:
    """Every (variant, seed) with its training settings and the steps at which it is evaluated."""
    from ganbench.train.loop import resolve_config

    units = []
    for name, overrides in spec.variants.items():
        for seed in spec.seeds:
            base = {"model": spec.model, **spec.train, **training_overrides(overrides)}
            cfg = TrainConfig.from_dict(base, where=f"variant {name}")
            cfg = replace(cfg, dataset=spec.dataset, data_root=spec.data_root, split=spec.split,
                          max_images=spec.max_images, seed=seed, device=device)
            resolved = resolve_config(replace(cfg, steps=1))
            _check_representation(name, probe_representation(spec, name), resolved.objective)
            per_step = resolved.batch_size * (resolved.d_steps or 1)
            if spec.budget_unit == "steps":
                steps, every = spec.budget, spec.eval_every
            else:
                steps, every = spec.budget // per_step, spec.eval_every // per_step
            if steps < 1 or every < 1:
                raise ConfigError(f"variant {name!r} reads {per_step} images per G step, more than the budget's "
                                  f"{spec.budget_unit} allow; raise budget or eval_every")
            evals = sorted({*range(every, steps + 1, every), steps})
            cfg = replace(cfg, steps=steps, checkpoint_every=every,
                          sample_every=cfg.sample_every if "sample_every" in base else every)
            units.append(Unit(name, seed, cfg, out / "runs" / _slug(name) / f"seed{seed}", steps, evals, per_step))
    return units


def _check_representation(variant: str, rep: str, objective: str) -> None:
    from ganbench.registry import get_objective

    owned = get_objective(objective).representations
    if rep != DEFAULT_REPRESENTATION and rep not in owned:
        raise ConfigError(f"variant {variant!r}: probe_representation {rep!r} is not a representation of objective "
                          f"{objective!r} (it has {', '.join((DEFAULT_REPRESENTATION, *owned))})")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# ------------------------------------------------------------------------------------------------ running
def train_unit(unit: Unit, progress: bool = False) -> float:
    """Train (or finish) one run; returns the wall time spent now. A finished run is skipped, a partial one
    resumes from its last.pt, and a run directory without a checkpoint starts over."""
    from ganbench.checkpoint import load_checkpoint
    from ganbench.train.loop import train

    last = unit.run_dir / "checkpoints" / "last.pt"
    t0 = time.perf_counter()
    if last.is_file():
        done = int(load_checkpoint(last)["step"])
        if done >= unit.steps:
            return 0.0
        from ganbench.train.loop import resolve_config

        cfg = resolve_config(unit.config)
        # every setting compare chose must match the run's own (a changed SPEC is refused, not silently mixed)
        explicit = {f.name for f in fields(TrainConfig) if getattr(cfg, f.name) is not None} - {"device"}
        train(cfg, unit.run_dir, resume=True, explicit=explicit, progress=progress)
    else:
        train(unit.config, unit.run_dir, overwrite=True, progress=progress)
    spent = time.perf_counter() - t0
    _add_wall_time(unit.run_dir, spent, unit.config.device)
    return spent


def _add_wall_time(run_dir: Path, seconds: float, device: str = "cpu") -> None:
    """Add seconds of training to the run's total and to the machine's share: a run resumed elsewhere says so."""
    from ganbench.devices import machine, machine_label

    path = run_dir / "compare_wall_time.json"
    saved = json.loads(path.read_text()) if path.is_file() else {"train_s": 0.0}
    by_machine = saved.get("by_machine", {})
    if not by_machine and saved["train_s"]:
        by_machine["unknown machine"] = saved["train_s"]  # written before machines were recorded
    label = machine_label(machine(device))
    by_machine[label] = round(by_machine.get(label, 0.0) + seconds, 2)
    atomic_write(path, json.dumps({"train_s": round(saved["train_s"] + seconds, 2), "by_machine": by_machine}))


def _wall_time(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "compare_wall_time.json"
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
    _append_record(portable(record, spec, out), out / "records" / name)


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
    folder = out / "records"
    if folder.is_dir():
        for r in read_records(folder):
            c = r.get("compare") or {}
            keys.add((c.get("variant"), str(c.get("seed")), int(c.get("step", -1)), r.get("kind")))
    return keys


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


CURVE_CALIBRATION_IMAGES = 10000  # a curve point's BN statistics: 78 batches of 128 instead of all 390


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
    from ganbench.train.loop import resolve_config

    cfg = resolve_config(units[0].config)
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

    for seed in spec.seeds if seeds is None else seeds:
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
            target = out / "samples" / f"{_slug(unit.variant)}-seed{unit.seed}.png"
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
    if saved.is_file() and not _same_comparison(saved.read_text(), wanted):
        raise ConfigError(f"{out} holds a comparison of a different SPEC ({saved}); choose another --out "
                          "or delete that folder (a SPEC may only gain seeds and, after its variants, new ones)")
    names, slice_seeds, with_baseline = select_slice(spec, only, seeds)
    check_records(spec, out)
    every_unit = plan(spec, out, devices[0])
    units = [u for u in every_unit if u.variant in names and u.seed in slice_seeds]
    if tensorboard:
        from ganbench.train.loop import require_tensorboard

        require_tensorboard()
        units = [replace(u, config=replace(u.config, tensorboard=True)) for u in units]
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
        work = [(spec, replace(u, config=replace(u.config, device=devices[i % len(devices)])), out,
                 devices[i % len(devices)], threads) for i, u in enumerate(units)]
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


# ------------------------------------------------------------------------------------------------ reporting
def _mean_std(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, std


def summarize(out: Path, spec: CompareSpec, units: list[Unit]) -> list[dict[str, Any]]:
    """One row per variant (and the baseline): mean and std over seeds of the final and best probe accuracy and
    of the final sample metrics, seeds, and training wall time; from the records in out/records alone."""
    records = read_records(out / "records") if (out / "records").is_dir() else []
    probes: dict[tuple[str, int], dict[int, float]] = {}
    quality: dict[tuple[str, int], dict[int, dict[str, Any]]] = {}
    walls: dict[tuple[str, int], float] = {}
    machines: dict[tuple[str, int], list[str]] = {}
    for r in records:
        c = r.get("compare") or {}
        key = (c.get("variant"), int(c.get("seed", -1)))
        if r.get("kind") == "train" and (r.get("wall_time_s") or {}).get("train") is not None:
            walls[key] = float(r["wall_time_s"]["train"])
            machines[key] = sorted(r.get("wall_time_by_machine") or {})
        elif r.get("kind") == "probe":
            probes.setdefault(key, {})[int(c["step"])] = float(r["results"]["test_accuracy_mean"])
        elif r.get("kind") == "quality":
            quality.setdefault(key, {})[int(c["step"])] = r["results"]
    rows = []
    for name in spec.variants:
        mine = [u for u in units if u.variant == name]
        final = [probes[(name, u.seed)][u.steps] for u in mine if u.steps in probes.get((name, u.seed), {})]
        best = [max(probes[(name, u.seed)].values()) for u in mine if probes.get((name, u.seed))]
        q_final = [quality[(name, u.seed)][u.steps] for u in mine if u.steps in quality.get((name, u.seed), {})]
        fid_key, is_key = ("digits_fid", "digits_is_mean") if spec.metrics == "digits" else ("fid", "is_mean")
        rows.append({
            "variant": name, "seeds": len(final),
            "objective": mine[0].config.objective + ("" if probe_representation(spec, name) == DEFAULT_REPRESENTATION
                                                     else f" (probe: {probe_representation(spec, name)})"),
            "steps": mine[0].steps, "images": mine[0].steps * mine[0].images_per_step,
            "probe_final": _mean_std(final), "probe_best": _mean_std(best),
            "fid": _mean_std([float(q[fid_key]) for q in q_final if fid_key in q]),
            "is": _mean_std([float(q[is_key]) for q in q_final if is_key in q]),
            "train_wall_s": _mean_std([walls[(name, u.seed)] for u in mine if (name, u.seed) in walls]),
            "machines": sorted({m for u in mine for m in machines.get((name, u.seed), [])}),
            "of_seeds": len(spec.seeds),
        })
    if spec.baseline and spec.probe:
        base = [probes[(BASELINE, s)][0] for s in spec.seeds if 0 in probes.get((BASELINE, s), {})]
        rows.append({"variant": BASELINE, "objective": "-", "seeds": len(base), "steps": 0, "images": 0,
                     "probe_final": _mean_std(base), "probe_best": _mean_std(base), "fid": None, "is": None,
                     "train_wall_s": None, "machines": [], "of_seeds": len(spec.seeds)})
    return rows


def _cell(value: tuple[float, float] | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"


def comparison_table(out: Path, spec: CompareSpec, units: list[Unit]) -> tuple[list[str], list[list[str]], str]:
    """(header, rows, caption) of the comparison."""
    rows = summarize(out, spec, units)
    quality_name = {"digits": ("digits-FID", "digits-IS"), "inception": ("FID", "IS"), "none": ("FID", "IS")}
    fid_name, is_name = quality_name[spec.metrics]
    skipped = None
    if spec.metrics == "inception" and all(r["fid"] is None and r["is"] is None for r in rows):
        # compare writes no quality record without the weights (it never downloads them mid-run)
        skipped = "skipped: no Inception weights"
    elif spec.metrics == "none":
        skipped = "not asked for"
    header = ["variant", "objective", "seeds", "G steps", "images", f"{spec.probe or 'probe'} final %",
              "best over budget %", fid_name, is_name, "train wall time s (per seed)"]
    body = []
    every_machine = sorted({m for r in rows for m in r["machines"]})
    for r in rows:
        is_base = r["variant"] == BASELINE
        fid = "-" if is_base else (skipped or _cell(r["fid"], 1))
        isc = "-" if is_base else (skipped or _cell(r["is"], 2))
        wall = "-" if r["train_wall_s"] is None else f"{r['train_wall_s'][0]:.0f}"
        if len(r["machines"]) > 1:  # a mean over machines is no timing: say so in the cell
            wall += f" ({len(r['machines'])} machines)"
        # a slice leaves cells not yet run: the count says so instead of hiding the row
        seeds = str(r["seeds"]) if r["seeds"] == r["of_seeds"] else f"{r['seeds']} of {r['of_seeds']}"
        body.append([r["variant"], r["objective"] or "-", seeds, str(r["steps"]), str(r["images"]),
                     _cell(r["probe_final"]), _cell(r["probe_best"]), fid, isc, wall])
    unit = f"{spec.budget} {spec.budget_unit}"
    caption = (f"{spec.name}: every variant trained on {spec.dataset} ({spec.split}) with the same budget ({unit} "
               f"per run), the same data and architecture ({spec.model}, {_arch_text(spec)}), seeds "
               f"{', '.join(map(str, spec.seeds))}; mean ± std over seeds (Lucic et al. 2018, \"Are GANs Created "
               f"Equal?\"). Probe: {spec.probe or 'none'} on D's 4x4-pooled features"
               f"{' (layers ' + spec.probe_layers + ')' if spec.probe_layers else ' (all layers)'}"
               f"{', ' + str(spec.probe_trials) + ' trials' if spec.probe_trials else ''}"
               f"{_curve_text(spec)}"
               f"{', C grid ' + ','.join(f'{c:g}' for c in spec.probe_C_grid) if spec.probe_C_grid else ''}; "
               f"final = at the end of the budget, best = best evaluation point (every {spec.eval_every} "
               f"{spec.budget_unit}). Sample metrics: {_metrics_text(spec)}. {BASELINE}: the same architecture "
               "untrained, probed the same way."
               f"{_machines_text(every_machine)}")
    return header, body, caption


def _curve_text(spec: CompareSpec) -> str:
    if spec.curve_trials is None:
        return ""
    n = spec.curve_calibration_images or CURVE_CALIBRATION_IMAGES
    return (f"; the points before the last with {spec.curve_trials} trial(s) and BN statistics of {n} training "
            "images (curve points: a best over budget that is not the final point is such a figure)")


def _machines_text(machines: list[str]) -> str:
    if not machines:
        return ""
    return (f" Wall times measured on {'; '.join(machines)}"
            f"{' (times of different machines are not comparable)' if len(machines) > 1 else ''}.")


def _arch_text(spec: CompareSpec) -> str:
    keys = {k: v for k, v in spec.train.items() if k in ("ngf", "ndf", "nz", "batch_size")}
    return ", ".join(f"{k} {v}" for k, v in keys.items()) or "its default width"


def _metrics_text(spec: CompareSpec) -> str:
    if spec.metrics == "digits":
        return (f"digits-FID and digits-IS of {spec.n_samples} samples from ganbench's digits classifier features "
                "(not Inception; not comparable with published FID/IS)")
    if spec.metrics == "inception":
        return f"FID and IS (Inception, pytorch-fid pipeline) of {spec.n_samples} samples"
    return "none"


WALL_COLUMN = "train wall time s (per seed)"


def render_comparison(out: Path, spec: CompareSpec, units: list[Unit] | None = None) -> dict[str, str]:
    """{"compare.md": ..., "compare.csv": ..., "compare.tex": ...} from out's records."""
    units = units or plan(spec, out)
    header, body, caption = comparison_table(out, spec, units)
    columns = [(h, "l" if i < 2 else "r") for i, h in enumerate(header)]
    md = [f"# {spec.name}", "", caption, "", *markdown_table(columns, body)]
    tex = [r"\begin{table}[t]", r"\centering", *latex_tabular(columns, [body], (r"\hline",) * 3),
           r"\caption{" + tex_text(caption) + "}", r"\end{table}"]
    return {"compare.md": "\n".join(md) + "\n", "compare.csv": csv_text(header, body),
            "compare.tex": "\n".join(tex) + "\n"}


def write_comparison(out: Path, spec: CompareSpec, units: list[Unit] | None = None) -> list[Path]:
    """compare.md, compare.csv, compare.tex and curves.png in out, from out's records."""
    units = units or plan(spec, out)
    paths = []
    for name, text in render_comparison(out, spec, units).items():
        paths.append(atomic_write(out / name, text))
    curves = plot_comparison(out, spec, units)
    if curves is not None:
        paths.append(curves)
    return paths


def plot_comparison(out: Path, spec: CompareSpec, units: list[Unit]) -> Path | None:
    """curves.png: probe accuracy and FID against images seen, a line per variant (mean) with a band (min..max over
    seeds), and the random-D baseline as a dashed line."""
    records = read_records(out / "records") if (out / "records").is_dir() else []
    if not records or not (spec.probe or any(r.get("kind") == "quality" for r in records)):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fid_key = "digits_fid" if spec.metrics == "digits" else "fid"
    panels = [("probe", "test_accuracy_mean", f"{spec.probe} test accuracy %")] if spec.probe else []
    if any(r.get("kind") == "quality" for r in records):
        panels.append(("quality", fid_key, "digits-FID" if spec.metrics == "digits" else "FID"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, (kind, key, title) in zip(axes[0], panels):
        for i, name in enumerate(spec.variants):
            by_x: dict[int, list[float]] = {}
            for r in records:
                c = r.get("compare") or {}
                if r.get("kind") == kind and c.get("variant") == name and key in r.get("results", {}):
                    by_x.setdefault(int(c["images"]), []).append(float(r["results"][key]))
            if not by_x:
                continue
            xs = sorted(by_x)
            mean = [sum(by_x[x]) / len(by_x[x]) for x in xs]
            color = f"C{i}"
            ax.plot(xs, mean, marker="o", color=color, label=name)
            ax.fill_between(xs, [min(by_x[x]) for x in xs], [max(by_x[x]) for x in xs], color=color, alpha=0.2)
        if kind == "probe":
            base = [float(r["results"][key]) for r in records
                    if r.get("kind") == "probe" and (r.get("compare") or {}).get("variant") == BASELINE]
            if base:
                ax.axhline(sum(base) / len(base), color="k", linestyle="--", label=BASELINE)
        ax.set_xlabel("real images seen by D")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.suptitle(f"{spec.name}: mean over seeds {', '.join(map(str, spec.seeds))} (band: min to max)")
    fig.tight_layout()
    path = out / "curves.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path


def check_comparison(new: Path, committed: Path) -> list[str]:
    """Differences between two comparisons' compare.csv, ignoring the wall-time column (machine-dependent)."""
    import csv

    def rows(folder: Path) -> list[dict[str, str]]:
        path = folder / "compare.csv"
        if not path.is_file():
            raise ConfigError(f"{path} does not exist; run the comparison there first")
        with open(path, newline="") as fh:
            return [{k: v for k, v in row.items() if k != WALL_COLUMN} for row in csv.DictReader(fh)]

    a, b = rows(new), rows(committed)
    problems = []
    if len(a) != len(b):
        problems.append(f"{len(a)} rows now, {len(b)} committed")
    for ra, rb in zip(a, b):
        for key in sorted(set(ra) | set(rb)):
            if ra.get(key) != rb.get(key):
                problems.append(f"{ra.get('variant')}: {key} is {ra.get(key)!r}, committed {rb.get(key)!r}")
    return problems


def _same_comparison(saved: str, wanted: str) -> bool:
    """Whether a SPEC continues the comparison saved in spec.json: the same settings, with possibly more seeds and
    more variants after the saved ones (each saved variant unchanged and in its place: the table keeps its rows)."""
    old, new = _without_seeds(saved), _without_seeds(wanted)
    old_variants, new_variants = old.pop("variants", None), new.pop("variants", None)
    if old != new or not isinstance(old_variants, dict) or not isinstance(new_variants, dict):
        return old == new and old_variants == new_variants
    return list(new_variants.items())[:len(old_variants)] == list(old_variants.items())


def _without_seeds(text: str) -> dict[str, Any]:
    """A saved spec.json without its seeds: a comparison may gain seeds (a third for its best rows)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {"unreadable": text}
    data.pop("seeds", None)
    return data


def spec_json(spec: CompareSpec) -> str:
    """The SPEC as the comparison folder keeps it (spec.json): in the SPEC's own order, which is the table's."""
    return json.dumps(spec.to_dict(), indent=1)


def spec_of_folder(folder: Path) -> CompareSpec:
    """The SPEC a comparison folder was made with (its spec.json)."""
    path = folder / "spec.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is missing or unreadable ({exc}); rerun the comparison") from None
    budget = {data.pop("budget_unit"): data.pop("budget")}
    return spec_from_dict({**data, "budget": budget}, str(path))


def stale_comparisons(root: Path) -> list[str]:
    """Comparison folders under root whose committed tables differ from what their records produce."""
    stale = []
    for saved in sorted(root.glob("*/spec.json")):
        folder = saved.parent
        for name, text in render_comparison(folder, spec_of_folder(folder)).items():
            path = folder / name
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
    return stale
