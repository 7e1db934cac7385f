"""A comparison's report, made from its records alone (read once per report): one row per variant (mean ± std over
seeds) as compare.md, compare.csv and compare.tex through report/render.py, and curves.png along training."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ganbench.choices import ACCURACY_TOLERANCE, QUALITY_TOLERANCE
from ganbench.compare.spec import (
    BASELINE,
    CURVE_CALIBRATION_IMAGES,
    DEFAULT_REPRESENTATION,
    CompareSpec,
    comparison_records,
    probe_representation,
    spec_of_folder,
)
from ganbench.compare.units import Unit, plan
from ganbench.errors import ConfigError
from ganbench.files import atomic_path, atomic_write
from ganbench.report.render import csv_text, latex_tabular, markdown_table, tex_text

UNKNOWN_MACHINE = "an unrecorded machine"  # what a wall time measured before records named their machine ran on


def _mean_std(values: list[float]) -> tuple[float, float | None] | None:
    """Mean and sample std over seeds; the std is None for one seed (a single run has no spread to report)."""
    if not values:
        return None
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return mean, std


def summarize(records: list[dict[str, Any]], spec: CompareSpec, units: list[Unit]) -> list[dict[str, Any]]:
    """One row per variant (and the baseline): mean and std over seeds of the final and best probe accuracy and
    of the final sample metrics, seeds, and training wall time; from the comparison's records alone."""
    probes: dict[tuple[str, int], dict[int, float]] = {}
    quality: dict[tuple[str, int], dict[int, dict[str, Any]]] = {}
    walls: dict[tuple[str, int], float] = {}
    machines: dict[tuple[str, int], list[str]] = {}
    for r in records:
        c = r.get("compare") or {}
        key = (c.get("variant"), int(c.get("seed", -1)))
        if r.get("kind") == "train" and (r.get("wall_time_s") or {}).get("train") is not None:
            walls[key] = float(r["wall_time_s"]["train"])
            # a record written before machines were recorded still ran on one: unknown, not none (its time must
            # not be averaged with another machine's unmarked)
            machines[key] = sorted(r.get("wall_time_by_machine") or {UNKNOWN_MACHINE: None})
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
            "of_seeds": len(spec.variant_seeds(name)),
        })
    if spec.baseline and spec.probe:
        base = [probes[(BASELINE, s)][0] for s in spec.seeds if 0 in probes.get((BASELINE, s), {})]
        rows.append({"variant": BASELINE, "objective": "-", "seeds": len(base), "steps": 0, "images": 0,
                     "probe_final": _mean_std(base), "probe_best": _mean_std(base), "fid": None, "is": None,
                     "train_wall_s": None, "machines": [], "of_seeds": len(spec.seeds)})
    return rows


def _cell(value: tuple[float, float | None] | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if value[1] is None:  # one seed: "56.19", not "56.19 ± 0.00", which would claim a spread of zero
        return f"{value[0]:.{digits}f}"
    return f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"


def comparison_table(records: list[dict[str, Any]], spec: CompareSpec,
                     units: list[Unit]) -> tuple[list[str], list[list[str]], str]:
    """(header, rows, caption) of the comparison, from its records."""
    rows = summarize(records, spec, units)
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
    one_seed = "; a cell of one seed has no ±" if any(r["seeds"] == 1 for r in rows) else ""
    caption = (f"{spec.name}: every variant trained on {spec.dataset} ({spec.split}) with the same budget ({unit} "
               f"per run), the same data and architecture ({spec.model}, {_arch_text(spec)}), seeds "
               f"{spec.seeds_text()}; mean ± std over seeds (Lucic et al. 2018, \"Are GANs Created "
               f"Equal?\"{one_seed}). Probe: {spec.probe or 'none'} on D's 4x4-pooled features"
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


def render_comparison(records: list[dict[str, Any]], spec: CompareSpec, units: list[Unit]) -> dict[str, str]:
    """{"compare.md": ..., "compare.csv": ..., "compare.tex": ...} from the comparison's records."""
    header, body, caption = comparison_table(records, spec, units)
    columns = [(h, "l" if i < 2 else "r") for i, h in enumerate(header)]
    md = [f"# {spec.name}", "", caption, "", *markdown_table(columns, body)]
    tex = [r"\begin{table}[t]", r"\centering", *latex_tabular(columns, [body], (r"\hline",) * 3),
           r"\caption{" + tex_text(caption) + "}", r"\end{table}"]
    return {"compare.md": "\n".join(md) + "\n", "compare.csv": csv_text(header, body),
            "compare.tex": "\n".join(tex) + "\n"}


def write_comparison(out: Path, spec: CompareSpec, units: list[Unit] | None = None) -> list[Path]:
    """compare.md, compare.csv, compare.tex and curves.png in out, from out's records."""
    units = units or plan(spec, out)
    records = comparison_records(out)
    paths = []
    for name, text in render_comparison(records, spec, units).items():
        paths.append(atomic_write(out / name, text))
    curves = plot_comparison(records, spec, out)
    if curves is not None:
        paths.append(curves)
    return paths


_MARKERS = ("o", "s", "^", "D")
_LINESTYLES = ("-", ":", "-.")


def variant_style(i: int) -> dict[str, str]:
    """Line style of the i-th variant of a comparison: matplotlib's ten colours, then the same colours with another
    marker and line style, so a zoo of more than ten variants never draws two rows alike (the baseline keeps the
    black dashed line)."""
    cycle = i // 10
    return {"color": f"C{i % 10}", "marker": _MARKERS[cycle % len(_MARKERS)],
            "linestyle": _LINESTYLES[cycle % len(_LINESTYLES)]}


def plot_comparison(records: list[dict[str, Any]], spec: CompareSpec, out: Path) -> Path | None:
    """out/curves.png from the comparison's records: probe accuracy and FID against images seen, a line per variant
    (mean) with a band (min..max over seeds), and the random-D baseline as a dashed line."""
    if not records or not (spec.probe or any(r.get("kind") == "quality" for r in records)):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fid_key = "digits_fid" if spec.metrics == "digits" else "fid"
    panels = [("probe", "test_accuracy_mean", f"{spec.probe} test accuracy %")] if spec.probe else []
    if any(r.get("kind") == "quality" for r in records):
        panels.append(("quality", fid_key, "digits-FID" if spec.metrics == "digits" else "FID"))
    fig, axes = plt.subplots(1, len(panels), figsize=(8.5 * len(panels), 4.5), squeeze=False)
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
            style = variant_style(i)
            ax.plot(xs, mean, label=name, **style)
            ax.fill_between(xs, [min(by_x[x]) for x in xs], [max(by_x[x]) for x in xs], color=style["color"],
                            alpha=0.2)
        if kind == "probe":
            base = [float(r["results"][key]) for r in records
                    if r.get("kind") == "probe" and (r.get("compare") or {}).get("variant") == BASELINE]
            if base:
                ax.axhline(sum(base) / len(base), color="k", linestyle="--", label=BASELINE)
        ax.set_xlabel("real images seen by D")
        ax.set_title(title)
        # beside the plot, not on it: a comparison of a dozen variants would cover its own curves
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"{spec.name}: mean over seeds {spec.seeds_text()} (band: min to max)")
    fig.tight_layout()
    path = out / "curves.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path


# How far a comparison may move when it is rerun on another CPU kind: other kernels round differently and training
# amplifies that like a reseed, so only the reference kind reproduces a table bit for bit. Measured on the digits
# preset, an AMD EPYC (AVX512-BF16) against the committed table made on an Intel CPU with AMX: probe accuracies
# moved by at most 0.27 points (hinge-sn final), FID by at most 7% of its value (hinge-sn 1552 -> 1448), IS by at
# most 11% (hinge-sn 2.68 -> 2.97); the random-init D row, which trains nothing, did not move. The tolerances are
# about 4x, 3.5x and 2.3x those; counts, settings and "-" cells stay exact. (An AMD EPYC with AVX2 only is not
# measured yet.) They catch a probe, a metric, a budget or a schedule that broke, not a subtle change of a loss:
# tests/test_objectives.py's first-step gradients check that on every CPU kind.
# (the two tolerances live in choices.py, where the CLI's --help reads them)
QUALITY_MARKS = ("FID", "KID", "IS")


def _cell_mean(cell: str | None) -> float | None:
    try:
        return float(str(cell).split("±")[0])
    except ValueError:
        return None


def _within(key: str, now: str | None, then: str | None) -> bool:
    """Whether cell now is within the cross-CPU tolerance of cell then (exact for anything but a metric's mean)."""
    a, b = _cell_mean(now), _cell_mean(then)
    if a is None or b is None:
        return now == then
    if key.endswith("%"):
        return abs(a - b) <= ACCURACY_TOLERANCE
    if any(mark in key.split() or key.endswith(f"-{mark}") for mark in QUALITY_MARKS):
        return abs(a - b) <= QUALITY_TOLERANCE * abs(b)
    return now == then


def check_comparison(new: Path, committed: Path, tolerant: bool = False) -> list[str]:
    """Differences between two comparisons' compare.csv, ignoring the wall-time column (machine-dependent).

    tolerant: accept probe accuracies within ACCURACY_TOLERANCE points and sample metrics within QUALITY_TOLERANCE
    of the committed means (a table made on another CPU kind); otherwise every cell must be equal."""
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
            same = _within(key, ra.get(key), rb.get(key)) if tolerant else ra.get(key) == rb.get(key)
            if not same:
                problems.append(f"{ra.get('variant')}: {key} is {ra.get(key)!r}, committed {rb.get(key)!r}")
    return problems


def stale_comparisons(root: Path) -> list[str]:
    """Comparison folders under root whose committed tables differ from what their records produce."""
    stale = []
    for saved in sorted(root.glob("*/spec.json")):
        folder = saved.parent
        spec = spec_of_folder(folder)
        for name, text in render_comparison(comparison_records(folder), spec, plan(spec, folder)).items():
            path = folder / name
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
    return stale
