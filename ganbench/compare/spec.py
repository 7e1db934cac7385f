"""A comparison's SPEC: parsed from TOML (or a folder's spec.json) and validated before any work, the fingerprint
that ties a (variant, seed) cell's records to it, the records checked against it, and slices of it (--only,
--seeds)."""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ganbench.config import TrainConfig
from ganbench.errors import ConfigError
from ganbench.report.records import read_records

BUDGET_UNITS = ("steps", "images")
METRICS = ("digits", "inception", "none")
PRESETS = {"digits": "compare_digits.toml"}
BASELINE = "random-init D"
# settings a SPEC's variant may not set: compare owns them so every variant gets the same
OWNED = ("steps", "epochs", "seed", "checkpoint_every", "dataset", "data_root", "split", "max_images")
# curve_calibration_images when the SPEC sets curve_trials but not it: a curve point's BN statistics from 78
# batches of 128 instead of all 390
CURVE_CALIBRATION_IMAGES = 10000


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
        _check_seeds(self.seeds, "seeds")
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
            if "seeds" in overrides:
                _check_seeds(overrides["seeds"], f"variant {name!r}: seeds")
        return self

    def variant_seeds(self, name: str) -> list[int]:
        """The seeds of a variant's row: its table's own `seeds` (e.g. a third seed for the best rows) or the
        SPEC's; the random-init D row has the SPEC's."""
        if name == BASELINE:
            return list(self.seeds)
        return list(self.variants[name].get("seeds", self.seeds))

    def all_seeds(self) -> list[int]:
        """Every seed some row runs, the SPEC's first."""
        seen = list(self.seeds)
        for name in self.variants:
            seen += [s for s in self.variant_seeds(name) if s not in seen]
        return seen

    def seeds_text(self) -> str:
        """The seeds in words: the SPEC's, and the rows that have their own."""
        own = [f"{name}: {', '.join(map(str, self.variant_seeds(name)))}" for name in self.variants
               if self.variant_seeds(name) != list(self.seeds)]
        return ", ".join(map(str, self.seeds)) + (f" ({'; '.join(own)})" if own else "")

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in out.items() if v is not None}


def _check_seeds(seeds: Any, what: str) -> None:
    if not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds) \
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds):
        raise ConfigError(f"{what} must be a list of distinct integers, e.g. [0, 1], got {seeds!r}")


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
        training = {k: v for k, v in overrides.items() if k not in VARIANT_KEYS or name == "train"}
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
# keys of a [variants.NAME] table that are not training settings: those, and the row's own seeds
VARIANT_KEYS = (*VARIANT_PROBE_KEYS, "seeds")
DEFAULT_REPRESENTATION = "d"


def training_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """A variant's table without the keys that are not training settings (its evaluation's, its seeds)."""
    return {k: v for k, v in overrides.items() if k not in VARIANT_KEYS}


def probe_representation(spec: CompareSpec, variant: str) -> str:
    """What a variant's probe reads: "d" unless its table sets probe_representation (e.g. BiGAN's "encoder")."""
    if variant == BASELINE:
        return DEFAULT_REPRESENTATION
    return str(spec.variants[variant].get("probe_representation", DEFAULT_REPRESENTATION))


def preset_path(name: str) -> Path:
    """The packaged SPEC of a preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return Path(__file__).parent.parent / "assets" / PRESETS[name]


def cell_fingerprint(spec: CompareSpec, variant: str) -> str:
    """What makes a (variant, seed) cell's records valid for this SPEC: every setting that shapes its training and
    its evaluations. Not the data's path (machines of a cluster mount the same files in different places), not the
    seeds (a SPEC, or a row, may gain seeds), not the other variants."""
    keys = ("dataset", "split", "max_images", "model", "budget_unit", "budget", "eval_every", "probe",
            "probe_layers", "probe_trials", "probe_C_grid", "curve_trials", "curve_calibration_images", "metrics",
            "n_samples", "train")
    payload = {k: getattr(spec, k) for k in keys}
    # the random-init D is built from the first variant's architecture (evaluate_baseline)
    table = spec.variants[next(iter(spec.variants)) if variant == BASELINE else variant]
    payload["variant"] = {k: v for k, v in table.items() if k != "seeds"}
    payload["row"] = variant == BASELINE
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def comparison_records(out: Path) -> list[dict[str, Any]]:
    """The records in out/records, none when there are none yet (read once for a whole report)."""
    folder = out / "records"
    return read_records(folder) if folder.is_dir() else []


def check_records(spec: CompareSpec, out: Path) -> list[dict[str, Any]]:
    """The comparison records in out/records, refused (ConfigError) when any belongs to another SPEC: another
    comparison's name, a variant this SPEC does not name, or a cell made with other settings."""
    folder = out / "records"
    records = comparison_records(out)
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
        known = {s for name in names for s in spec.variant_seeds(name)} | (set(spec.seeds) if baseline else set())
        unknown_seeds = [s for s in seeds if s not in known]
        if unknown_seeds or not seeds:
            raise ConfigError(f"--seeds {','.join(map(str, unknown_seeds)) or '(nothing)'}: the SPEC's seeds are "
                              f"{spec.seeds_text()}; add a seed to the SPEC's seeds list (or to a variant's "
                              "own seeds) first")
    return names, list(seeds if seeds is not None else spec.all_seeds()), baseline


def same_comparison(saved: str, wanted: str, unrun: Collection[str] = ()) -> bool:
    """Whether a SPEC continues the comparison saved in spec.json: the same settings, with possibly more seeds and
    more variants after the saved ones (each saved variant in its place: the table keeps its rows). A saved variant
    named in unrun (no cell of it has run: no record, no run directory) may change its settings, since nothing
    made with the old ones exists; every other saved variant is unchanged."""
    old, new = _without_seeds(saved), _without_seeds(wanted)
    old_variants, new_variants = old.pop("variants", None), new.pop("variants", None)
    if old != new or not isinstance(old_variants, dict) or not isinstance(new_variants, dict):
        return old == new and old_variants == new_variants
    kept = list(new_variants.items())[:len(old_variants)]
    return [k for k, _ in kept] == list(old_variants) and all(
        name in unrun or table == old_variants[name] for name, table in kept)


def _without_seeds(text: str) -> dict[str, Any]:
    """A saved spec.json without its seeds, the SPEC's and the rows' own: a comparison may gain seeds (a third
    for its best rows)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {"unreadable": text}
    data.pop("seeds", None)
    if isinstance(data.get("variants"), dict):
        data["variants"] = {name: {k: v for k, v in table.items() if k != "seeds"} if isinstance(table, dict)
                            else table for name, table in data["variants"].items()}
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
