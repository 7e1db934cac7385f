"""Result tables in the DCGAN paper's layout (Markdown, CSV, LaTeX), regenerated exactly from the records."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganbench.files import atomic_write
from ganbench.report.records import read_records, record_id_of
from ganbench.report.render import csv_text, latex_tabular, markdown_table, md_cell

PAPER = "Radford et al. 2015"
STUDIOGAN = "PyTorch-StudioGAN"
CIFAR_PROTOCOLS = ("cifar10-full", "cifar10-400")
SVHN_PROTOCOL = "svhn-1000"
MISSING = None  # an empty cell: "–" in Markdown, "--" in LaTeX, "" in CSV (render.py)

# DCGAN paper, Table 1, as printed: model, accuracy, accuracy (400 per class), its ±, max # of feature units
CIFAR_QUOTED = [
    ("1-layer K-means", "80.6", "63.7", "0.7", 4800),
    ("3-layer K-means Learned RF", "82.0", "70.7", "0.7", 3200),
    ("View Invariant K-means", "81.9", "72.6", "0.7", 6400),
    ("Exemplar CNN", "84.3", "77.4", "0.2", 1024),
    ("DCGAN (ours) + L2-SVM", "82.8", "73.8", "0.4", 512),
]
# DCGAN paper, Table 2, as printed: model, error rate (1000 labels), remark
SVHN_QUOTED = [
    ("KNN", "77.93", None),
    ("TSVM", "66.55", None),
    ("M1+KNN", "65.63", None),
    ("M1+TSVM", "54.33", None),
    ("M1+M2", "36.02", None),
    ("SWWAE without dropout", "27.83", None),
    ("SWWAE with dropout", "23.56", None),
    ("DCGAN (ours) + L2-SVM", "22.48", None),
    ("Supervised CNN with the same architecture", "28.87", "validation"),
]
# literature sample-quality numbers: model, dataset, IS, FID, who reported them
QUALITY_QUOTED = [("DCGAN", "CIFAR-10", "6.11", "48.29", STUDIOGAN)]

TABLE_NAMES = ("cifar10", "svhn", "quality", "memorization")
QUOTED_INPUT = "as in source"  # quoted scores: whatever input pipeline their source used
# the CSV's leading columns in this order; every other (flattened) field follows, sorted by name
CSV_LEADING = ("table_row", "note", "source", "citation", "kind", "protocol", "label", "date", "record_id")


@dataclass
class Table:
    """One table's content, independent of the format it is written in."""

    name: str
    title: str
    intro: list[str]
    columns: list[tuple[str, str]]  # (header, "l" or "r")
    quoted: list[list[str | None]]
    ours: list[list[str | None]]
    below: list[str]  # lines under the table: what ± means, what is missing
    notes: list[str] = field(default_factory=list)  # one per ganbench row, "[n] ..."
    csv_rows: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------- reading values out of records, tolerantly


def _get(record: dict[str, Any], dotted: str) -> Any:
    """record["a"]["b"] for "a.b", None where any level is missing or not a dict."""
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _num(value: Any) -> float | None:
    """value as a finite float, None when absent, non-numeric or not finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _text(value: Any) -> str | None:
    """A scalar as display text (lists joined by commas), None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _label(record: dict[str, Any]) -> str:
    """The human-readable model label, falling back to the registry name."""
    return _text(record.get("label")) or _text(_get(record, "model.name")) or "unnamed model"


def _notes(record: dict[str, Any]) -> list[str]:
    """A record's caveats as a list, whether it stored a list or a single string."""
    notes = record.get("notes")
    if isinstance(notes, str):
        notes = [notes]
    out = [str(n) for n in notes or [] if str(n).strip()]
    if _get(record, "model.partial") is True:
        out.append("checkpoint holds only part of the model's weights (model.partial)")
    return out


def _timestamp(record: dict[str, Any]) -> float | None:
    """The record's ISO-8601 date as a UTC timestamp (naive taken as UTC), None when absent or unparseable."""
    date = record.get("date")
    if not isinstance(date, str) or not date:
        return None
    try:
        parsed = _dt.datetime.fromisoformat(date.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.UTC)
    return parsed.timestamp()


def _recency(index: int, record: dict[str, Any]) -> tuple[int, float, int]:
    """Sort key for "latest wins": by date where there is one, ties (and undated records) by read order."""
    stamp = _timestamp(record)
    return (0, 0.0, index) if stamp is None else (1, stamp, index)


def _spread(record: dict[str, Any], metric: str) -> tuple[float | None, float | None, float | None]:
    """(mean, std, ci95) of results.<metric>_*, filling std or ci95 from the other (ci95 = 1.96·std)."""
    mean = _num(_get(record, f"results.{metric}_mean"))
    std = _num(_get(record, f"results.{metric}_std"))
    ci95 = _num(_get(record, f"results.{metric}_ci95"))
    if std is None and ci95 is not None:
        std = ci95 / 1.96
    if ci95 is None and std is not None:
        ci95 = 1.96 * std
    return mean, std, ci95


def _training_text(record: dict[str, Any]) -> str:
    """Where the weights came from: "trained on imagenet, 12345 steps", "authors' weights", "random init"."""
    source = _text(_get(record, "training.source"))
    dataset = _text(_get(record, "training.dataset"))
    steps = _get(record, "training.steps")
    if source == "random init":
        return "random init"
    if source == "dcgan_code import":
        return f"authors' weights ({dataset})" if dataset else "authors' weights"
    if source and source.startswith("ganbench train --learner"):  # k-means, pixels: fitted, not trained
        return f"fitted on {dataset} ({source})" if dataset else f"fitted ({source})"
    parts = []
    if dataset:
        parts.append(f"trained on {dataset}")
    if steps is not None:
        parts.append(f"{steps} steps")
    if source and source != "ganbench train":
        parts.insert(0, source)
    return ", ".join(parts) if parts else "training not recorded"


def _layers_text(layers: Any) -> str | None:
    """[1, 2, 3, 4] as "1-4", other lists as "1, 3, 5"."""
    if not isinstance(layers, (list, tuple)) or not layers:
        return _text(layers)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in layers) and len(layers) > 1 \
            and list(layers) == list(range(layers[0], layers[0] + len(layers))):
        return f"{layers[0]}-{layers[-1]}"
    return ", ".join(str(v) for v in layers)


def _g(value: Any) -> str:
    """A setting's value compactly: floats in %g form, lists and dicts as JSON."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


# ---------------------------------------------------------------- formatting cells


def _pct(value: float | None, spread: float | None = None) -> str | None:
    """81.234 -> "81.23%"; with a spread, "72.10% (±0.35%)"."""
    if value is None:
        return MISSING
    if spread is None:
        return f"{value:.2f}%"
    return f"{value:.2f}% (±{spread:.2f}%)"


def _fixed(value: Any, digits: int, spread: Any = None) -> str | None:
    """A number with fixed decimals, optionally "mean ± spread"."""
    value, spread = _num(value), _num(spread)
    if value is None:
        return MISSING
    return f"{value:.{digits}f}" if spread is None else f"{value:.{digits}f} ± {spread:.{digits}f}"


def _count(value: Any) -> str | None:
    """An integer count ("50000"), also when stored as 50000.0."""
    value = _num(value)
    if value is None:
        return MISSING
    return str(int(value)) if value == int(value) else f"{value:g}"


def _dims(records: list[dict[str, Any]]) -> str | None:
    """features.dim of a row's records, "a / b" in the (unexpected) case that they differ."""
    dims = []
    for record in records:
        dim = _count(_get(record, "features.dim"))
        if dim is not None and dim not in dims:
            dims.append(dim)
    return " / ".join(dims) if dims else MISSING


# ---------------------------------------------------------------- grouping records into rows


def _identity(record: dict[str, Any]) -> str:
    """What makes two records the same model: the checkpoint's sha256, else (none recorded) the label."""
    sha = _text(_get(record, "checkpoint.sha256"))
    return f"sha256:{sha}" if sha else f"label:{_label(record)}"


def _probe_key(record: dict[str, Any]) -> str:
    """A table row's key: checkpoint, feature layers, BN statistics and feature dtype, as sortable JSON."""
    key = [_identity(record), _get(record, "features.layers"), _get(record, "features.bn_stats"),
           _get(record, "features.dtype")]
    if _get(record, "features.representation") is not None:  # D and BiGAN's encoder of one checkpoint: two rows
        key.append(_get(record, "features.representation"))
    return json.dumps(key, sort_keys=True, default=str)


def _inception_input(record: dict[str, Any]) -> str | None:
    """The Inception input mode of a quality record; records from before the tf1 mode used pytorch-fid's."""
    mode = record.get("inception_input") or _get(record, "settings.inception_input")
    if mode:
        return str(mode)
    return "pytorch-fid" if "inception" in str(record.get("features") or "") else None


def _quality_key(record: dict[str, Any]) -> str:
    """A quality row's key: checkpoint, reference set, feature extractor, Inception input and sample counts."""
    return json.dumps([_identity(record), record.get("reference"), record.get("features"), _inception_input(record),
                       _get(record, "results.n_fake"), _get(record, "results.n_real")],
                      sort_keys=True, default=str)


def _is_probe(record: dict[str, Any]) -> bool:
    """Probe records say kind "probe"; a record without kind counts as one (callers filter on protocol)."""
    return record.get("kind", "probe") == "probe"


def _latest_groups(records: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool],
                   key: Callable[[dict[str, Any]], str],
                   slot: Callable[[dict[str, Any]], str]) -> list[dict[str, dict[str, Any]]]:
    """Records kept by keep, grouped by key, latest record per slot in each group; groups sorted stably."""
    best: dict[str, dict[str, tuple[tuple[int, float, int], dict[str, Any]]]] = {}
    for index, record in enumerate(records):
        if not keep(record):
            continue
        group = best.setdefault(key(record), {})
        rank = _recency(index, record)
        current = group.get(slot(record))
        if current is None or rank > current[0]:
            group[slot(record)] = (rank, record)
    groups = []
    for group_key, slots in best.items():
        latest = max(slots.values(), key=lambda pair: pair[0])[1]
        groups.append(((_label(latest).casefold(), _label(latest), group_key),
                       {name: rec for name, (_, rec) in slots.items()}))
    # label first reads well; the key breaks ties between same-label rows, so the order never depends on input
    return [slots for _, slots in sorted(groups, key=lambda pair: pair[0])]


def _latest_of(slots: dict[str, dict[str, Any]], records: list[dict[str, Any]]) -> dict[str, Any]:
    """The most recent record of a row, for the fields the row shares (label, model, training)."""
    order = {id(r): i for i, r in enumerate(records)}
    return max(slots.values(), key=lambda r: _recency(order[id(r)], r))


# ---------------------------------------------------------------- notes and CSV rows


def _row_note(number: int, base: dict[str, Any], parts: list[tuple[str, dict[str, Any] | None]]) -> str:
    """One line of provenance for a ganbench row: checkpoint, training, features, settings, caveats."""
    pieces = []
    sha = _text(_get(base, "checkpoint.sha256"))
    model = _text(_get(base, "model.name"))
    what = ", ".join(p for p in (f"model {model}" if model else None,
                                 f"checkpoint sha256 {sha[:16]}" if sha else "no checkpoint recorded") if p)
    pieces.append(what)
    training = _training_text(base)
    seed = _get(base, "training.seed")
    pieces.append(f"weights: {training}" + (f", seed {seed}" if seed is not None else ""))
    fit = _get(base, "training.fit")
    if isinstance(fit, dict) and isinstance(fit.get("wall_time_s"), dict):
        where = fit.get("machine", {}).get("cpu") if isinstance(fit.get("machine"), dict) else None
        pieces.append(f"fit in {_g(fit['wall_time_s'].get('fit'))} s, peak memory {_g(fit.get('peak_rss_gib'))} GiB"
                      + (f" ({where})" if where else ""))
    feat = base.get("features")
    if isinstance(feat, dict):
        bits = []
        if feat.get("representation") is not None:  # a learner that is not a GAN: k-means, pixels
            settings = feat.get("settings") if isinstance(feat.get("settings"), dict) else {}
            shown = ", ".join(f"{k}={_g(v)}" for k, v in settings.items() if k not in ("image_size", "channels"))
            bits.append(f"{feat['representation']}" + (f" ({shown})" if shown else ""))
        if feat.get("layers") is not None:
            bits.append(f"D layers {_layers_text(feat.get('layers'))}")
        if feat.get("dim") is not None:
            bits.append(f"{_count(feat.get('dim'))} units")
        if feat.get("grid") is not None:
            bits.append(f"{feat.get('grid')}x{feat.get('grid')} pooling grid")
        if feat.get("bn_stats") is not None:
            bits.append(f"BN statistics {feat.get('bn_stats')}")
        if feat.get("dtype") is not None:
            bits.append(str(feat.get("dtype")))
        if bits:
            pieces.append("features: " + ", ".join(bits))
    elif feat is not None:
        pieces.append(f"features: {feat}")
    caveats: list[str] = []
    for caption, record in parts:
        if record is None:
            continue
        bits = []
        backend = _text(_get(record, "svm.backend"))
        chosen = _get(record, "svm.chosen_C")
        if backend or chosen is not None:
            bits.append("L2-SVM" + (f" ({backend})" if backend else "")
                        + (f" C={_g(chosen)}" if chosen is not None else ""))
        settings = record.get("settings")
        if isinstance(settings, dict) and settings:
            bits.append(" ".join(f"{k}={_g(v)}" for k, v in settings.items()))
        if record.get("reference") is not None:
            bits.append(f"reference {record.get('reference')}")
        if record.get("device") is not None:
            bits.append(f"on {record.get('device')}")
        bits.append(f"record {_record_id(record)}")
        pieces.append(f"{caption}: " + ", ".join(bits) if bits else caption)
        caveats.extend(n for n in _notes(record) if n not in caveats)
    pieces.append("caveats: " + "; ".join(caveats) if caveats else "caveats: none recorded")
    return f"[{number}] {_label(base)}: " + "; ".join(pieces) + "."


def _flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; lists and dicts keyed by values (e.g. {"0.01": 71.2}) as JSON text."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict) and item and all(re.fullmatch(r"[A-Za-z_][\w-]*", str(k)) for k in item):
            out.update(_flatten(item, name + "."))
        elif isinstance(item, (dict, list)):
            out[name] = json.dumps(item, separators=(",", ":"), default=str)
        else:
            out[name] = item
    return out


def _csv_row(record: dict[str, Any], table_row: int, note: int) -> dict[str, Any]:
    """A record's CSV line: every field flattened, plus where it sits in the table."""
    return {"table_row": table_row, "note": note, "source": "ganbench", **_flatten(record),
            "record_id": _record_id(record)}


def _record_id(record: dict[str, Any]) -> str:
    """The stored record_id, or the one append_record would have given (for records written otherwise)."""
    return _text(record.get("record_id")) or record_id_of(record)


# ---------------------------------------------------------------- the three tables


def _cifar_table(records: list[dict[str, Any]]) -> Table:
    """DCGAN paper Table 1 layout: the paper's rows, then one row per checkpoint and feature setting."""
    citation = f"{PAPER}, Table 1"
    quoted, csv_rows = [], []
    for row, (model, full, few, plus_minus, units) in enumerate(CIFAR_QUOTED, start=1):
        quoted.append([model, f"{full}%", f"{few}% (±{plus_minus}%)", str(units), f"quoted: {citation}"])
        common = {"table_row": row, "source": "quoted", "citation": citation, "kind": "probe", "label": model,
                  "features.dim": units}
        csv_rows.append({**common, "protocol": "cifar10-full", "results.test_accuracy_mean": float(full)})
        csv_rows.append({**common, "protocol": "cifar10-400", "results.test_accuracy_mean": float(few),
                         "quoted.plus_minus": float(plus_minus)})
    groups = _latest_groups(records, lambda r: _is_probe(r) and r.get("protocol") in CIFAR_PROTOCOLS,
                            _probe_key, lambda r: r["protocol"])
    ours, notes = [], []
    for number, slots in enumerate(groups, start=1):
        full, few = slots.get("cifar10-full"), slots.get("cifar10-400")
        base = _latest_of(slots, records)
        few_mean, few_std, _ = _spread(few, "test_accuracy") if few else (None, None, None)
        members = [r for r in (full, few) if r is not None]
        ours.append([f"{_label(base)} [{number}]",
                     _pct(_spread(full, "test_accuracy")[0]) if full else MISSING,
                     _pct(few_mean, few_std),
                     _dims(members),
                     f"ganbench: {_training_text(base)}"])
        notes.append(_row_note(number, base, [("full training set", full), ("400 per class", few)]))
        csv_rows.extend(_csv_row(r, len(CIFAR_QUOTED) + number, number) for r in members)
    below = ["± in the 400-per-class column: for quoted rows, as printed in the paper; for ganbench rows, "
             "the standard deviation of test accuracy over the trials (std, not 1.96·std; the trial count is "
             "in each row's note). cifar10.csv carries both results.test_accuracy_std and "
             "results.test_accuracy_ci95 (= 1.96·std)."]
    if not ours:
        below.append("No ganbench records yet: the cifar10-full and cifar10-400 evaluations add rows here.")
    return Table(
        name="cifar10",
        title="CIFAR-10: L2-SVM on frozen features (DCGAN paper, Table 1)",
        intro=[f"Test accuracy of a linear L2-SVM on frozen features, in the layout of {citation}. Quoted "
               "rows are copied from the paper and say so in Source. Each ganbench row is one checkpoint, "
               "feature layers, BN statistics and feature dtype, combining the latest cifar10-full and "
               "cifar10-400 record; its marker [n] points to the notes under the table."],
        columns=[("Model", "l"), ("Accuracy", "r"), ("Accuracy (400 per class)", "r"),
                 ("max # of features units", "r"), ("Source", "l")],
        quoted=quoted, ours=ours, below=below, notes=notes, csv_rows=csv_rows)


def _svhn_table(records: list[dict[str, Any]]) -> Table:
    """DCGAN paper Table 2 layout: SVHN error rate with 1000 labels."""
    citation = f"{PAPER}, Table 2"
    quoted, csv_rows = [], []
    for row, (model, error, remark) in enumerate(SVHN_QUOTED, start=1):
        quoted.append([model, f"{error}%" + (f" ({remark})" if remark else ""), f"quoted: {citation}"])
        csv_rows.append({"table_row": row, "source": "quoted", "citation": citation, "kind": "probe",
                         "protocol": SVHN_PROTOCOL, "label": model, "results.test_error_mean": float(error),
                         **({"quoted.remark": remark} if remark else {})})
    groups = _latest_groups(records, lambda r: _is_probe(r) and r.get("protocol") == SVHN_PROTOCOL,
                            _probe_key, lambda r: SVHN_PROTOCOL)
    ours, notes = [], []
    for number, slots in enumerate(groups, start=1):
        record = slots[SVHN_PROTOCOL]
        mean, _, ci95 = _spread(record, "test_error")
        ours.append([f"{_label(record)} [{number}]", _pct(mean, ci95), f"ganbench: {_training_text(record)}"])
        notes.append(_row_note(number, record, [("svhn-1000", record)]))
        csv_rows.append(_csv_row(record, len(SVHN_QUOTED) + number, number))
    below = ["± for ganbench rows is the 95% interval half-width 1.96·std of the test error over the trials "
             "(the record's results.test_error_ci95; svhn.csv also has the std); quoted rows are as printed "
             "in the paper, which gives no spread."]
    if not ours:
        below.append("No ganbench records yet: the svhn-1000 evaluation adds rows here.")
    return Table(
        name="svhn",
        title="SVHN: error rate with 1000 labels (DCGAN paper, Table 2)",
        intro=[f"Test error of a linear L2-SVM trained on 1000 labelled SVHN images, in the layout of "
               f"{citation}. Quoted rows are copied from the paper and say so in Source. Each ganbench row "
               "is the latest svhn-1000 record of one checkpoint and feature setting; its marker [n] points "
               "to the notes under the table."],
        columns=[("Model", "l"), ("error rate", "r"), ("Source", "l")],
        quoted=quoted, ours=ours, below=below, notes=notes, csv_rows=csv_rows)


def _quality_table(records: list[dict[str, Any]]) -> Table:
    """Sample quality: literature numbers, then one row per model, reference set and sample count."""
    quoted, csv_rows = [], []
    for row, (model, dataset, inception, fid, who) in enumerate(QUALITY_QUOTED, start=1):
        citation = f"{model}, {dataset}, as reported by {who}"
        quoted.append([model, fid, inception, None, None, None, None, None, None, None, dataset, None,
                       QUOTED_INPUT, f"quoted: {citation}"])
        csv_rows.append({"table_row": row, "source": "quoted", "citation": citation, "kind": "quality",
                         "label": model, "reference": dataset, "results.fid": float(fid),
                         "results.is_mean": float(inception), "inception_input": QUOTED_INPUT})
    groups = _latest_groups(records, lambda r: r.get("kind") == "quality", _quality_key, lambda r: "quality")
    ours, notes = [], []
    for number, slots in enumerate(groups, start=1):
        record = slots["quality"]
        res = record.get("results") if isinstance(record.get("results"), dict) else {}
        ours.append([f"{_label(record)} [{number}]", _fixed(res.get("fid"), 2),
                     _fixed(res.get("is_mean"), 2, res.get("is_std")),
                     _fixed(res.get("kid_mean"), 4, res.get("kid_std")),
                     _fixed(res.get("precision"), 3), _fixed(res.get("recall"), 3),
                     _fixed(res.get("density"), 3), _fixed(res.get("coverage"), 3),
                     _count(res.get("n_fake")), _count(res.get("n_real")),
                     _text(record.get("reference")), _text(record.get("features")), _inception_input(record),
                     f"ganbench: {_training_text(record)}"])
        notes.append(_row_note(number, record, [("evaluation", record)]))
        csv_rows.append(_csv_row(record, len(QUALITY_QUOTED) + number, number))
    below = ["IS and KID are mean ± std over their subsets, as the record stores them. Quoted numbers come "
             "from their named source, not from ganbench runs, and may use other sample counts and "
             "reference sets.",
             "Inception input: how images became the Inception network's input. Most published IS come from the "
             "original TensorFlow code (TF1 bilinear resize on 0..255, then (x - 128) / 128), which ganbench's "
             "`--inception-input tf1` reproduces (equal to torch-fidelity's); `pytorch-fid` (the default) resizes "
             "with torch's bilinear on [0, 1]. On small images the two give IS and FID a few percent apart, so "
             "compare a row only with rows of the same Inception input."]
    if not ours:
        below.append("No ganbench quality records yet: the quality evaluation adds rows here.")
    return Table(
        name="quality",
        title="Sample quality",
        intro=["FID, Inception Score, KID and precision/recall/density/coverage of generated samples. Each "
               "ganbench row is the latest record of one checkpoint, reference set, feature extractor and "
               "sample count; its marker [n] points to the notes under the table."],
        columns=[("Model", "l"), ("FID", "r"), ("IS", "r"), ("KID", "r"), ("Precision", "r"), ("Recall", "r"),
                 ("Density", "r"), ("Coverage", "r"), ("n fake", "r"), ("n real", "r"), ("Reference", "l"),
                 ("Features", "l"), ("Inception input", "l"), ("Source", "l")],
        quoted=quoted, ours=ours, below=below, notes=notes, csv_rows=csv_rows)


def _memorization_key(record: dict[str, Any]) -> str:
    """A memorisation row's key: checkpoint, dataset, feature space and number of samples."""
    return json.dumps([_identity(record), record.get("dataset"), record.get("feature_space"),
                       _get(record, "results.n_generated")], sort_keys=True, default=str)


def _memorization_table(records: list[dict[str, Any]]) -> Table:
    """Does G copy its training data: the data-copying test C_T and nearest-neighbour distances, one row per
    checkpoint, dataset, feature space and sample count."""
    groups = _latest_groups(records, lambda r: r.get("kind") == "memorization", _memorization_key,
                            lambda r: "memorization")
    ours, notes, csv_rows = [], [], []
    for number, slots in enumerate(groups, start=1):
        record = slots["memorization"]
        res = record.get("results") if isinstance(record.get("results"), dict) else {}
        kept, cells = _get(record, "results.cells_kept"), _get(record, "results.n_cells")
        share = _num(res.get("share_below_test_p1"))
        ours.append([f"{_label(record)} [{number}]", _text(record.get("dataset")), _text(record.get("feature_space")),
                     _fixed(res.get("C_T"), 2), f"{kept} of {cells}" if kept is not None else None,
                     _fixed(res.get("gen_nn_median"), 4), _fixed(res.get("test_nn_median"), 4),
                     None if share is None else f"{100 * share:.1f}%", _count(res.get("exact_copies")),
                     _count(res.get("n_generated")), _count(res.get("n_train")), _count(res.get("n_test")),
                     f"ganbench: {_training_text(record)}"])
        notes.append(_row_note(number, record, [("evaluation", record)]))
        row = _csv_row(record, number, number)
        row.pop("results.cells", None)  # the per-cell table stays in the record
        csv_rows.append(row)
    below = ["C_T: the data-copying test of Meehan, Chaudhuri & Dasgupta 2020 (arXiv:2004.05675): per k-means cell "
             "of the training set, a Z-scored Mann-Whitney U test of generated-to-train against held-out-to-train "
             "nearest-neighbour distances, averaged over the cells with enough generated samples, weighted by their "
             "share of held-out images. Sign: C_T << 0 (e.g. below -3) means data-copying (samples closer to the "
             "training images than unseen images are); C_T > 0 means under-fitting; about 0, neither.",
             "Distances are Euclidean in the named feature space (inception: pool3; discriminator: the "
             "checkpoint's own D, every layer max-pooled to 4x4; pixels). 'Closer than 99% of held-out' is the "
             "share of samples nearer to a training image than the 1st percentile of held-out images' distances."]
    if not ours:
        below.append("No ganbench memorisation records yet: `ganbench eval memorization` adds rows here.")
    return Table(
        name="memorization",
        title="Memorisation: does the generator copy its training data?",
        intro=["The DCGAN paper argues its model does not memorise training images (sec. 6.1). Each row is the "
               "latest record of one checkpoint, dataset, feature space and sample count; its marker [n] points to "
               "the notes under the table."],
        columns=[("Model", "l"), ("Dataset", "l"), ("Features", "l"), ("C_T", "r"), ("Cells used", "r"),
                 ("Median NN distance, samples", "r"), ("Median NN distance, held-out", "r"),
                 ("Samples closer than 99% of held-out", "r"), ("Exact copies", "r"), ("n generated", "r"),
                 ("n train", "r"), ("n held-out", "r"), ("Source", "l")],
        quoted=[], ours=ours, below=below, notes=notes, csv_rows=csv_rows)


# ---------------------------------------------------------------- rendering


def _markdown(table: Table) -> str:
    """The table as GitHub Markdown, with the explanation and per-row notes under it."""
    lines = [f"# {table.title}", "", *table.intro, "", *markdown_table(table.columns, table.quoted + table.ours)]
    for line in table.below:  # separate paragraphs: consecutive Markdown lines would run together
        lines += ["", line]
    if table.notes:
        lines += ["", "Notes:", ""] + [f"- {md_cell(n)}" for n in table.notes]
    lines += ["", "Generated by ganbench.report from the records; regenerate rather than edit by hand."]
    return "\n".join(lines) + "\n"


def _latex(table: Table) -> str:
    """The table as a booktabs tabular; the explanation and notes follow as comments, outside it."""
    lines = [f"% {table.title}", "% Generated by ganbench.report from the records; needs \\usepackage{booktabs}.",
             *latex_tabular(table.columns, [table.quoted, table.ours])]
    lines += [f"% {line}" for line in table.below + table.notes]
    return "\n".join(lines) + "\n"


def _csv_value(value: Any) -> str:
    """A CSV cell: floats in shortest round-trip form, booleans as true/false, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _csv(table: Table) -> str:
    """Every record behind the table, one line each with all provenance fields, plus the quoted rows."""
    present = {key for row in table.csv_rows for key in row}
    columns = [c for c in CSV_LEADING if c in present] + sorted(present - set(CSV_LEADING))
    return csv_text(columns, [[_csv_value(row.get(c)) for c in columns] for row in table.csv_rows])


def render_tables(records: list[dict[str, Any]]) -> dict[str, str]:
    """File name -> content for every table file, from a list of records (deterministic)."""
    out: dict[str, str] = {}
    for table in (_cifar_table(records), _svhn_table(records), _quality_table(records), _memorization_table(records)):
        out[f"{table.name}.md"] = _markdown(table)
        out[f"{table.name}.csv"] = _csv(table)
        out[f"{table.name}.tex"] = _latex(table)
    return out


def _load(records_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records under records_dir; none at all when it does not exist yet (tables still show the paper)."""
    path = Path(records_dir)
    return read_records(path) if path.exists() else []


def write_tables(records_dir: str | os.PathLike = "results/records",
                 tables_dir: str | os.PathLike = "results/tables") -> list[Path]:
    """Regenerate every table file from the records, each written atomically; returns all their paths."""
    tables_dir = Path(tables_dir)
    tables_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_tables(_load(records_dir)).items():
        target = tables_dir / name
        data = text.encode("utf-8")
        # leave an up-to-date file alone so its mtime keeps meaning "last changed"
        if not (target.is_file() and target.read_bytes() == data):
            atomic_write(target, data)
        written.append(target)
    return written


def check_tables(records_dir: str | os.PathLike = "results/records",
                 tables_dir: str | os.PathLike = "results/tables") -> list[str]:
    """Names of table files that are missing or differ from what the records produce; writes nothing."""
    tables_dir = Path(tables_dir)
    stale = []
    for name, text in render_tables(_load(records_dir)).items():
        target = tables_dir / name
        if not (target.is_file() and target.read_bytes() == text.encode("utf-8")):
            stale.append(name)
    return stale


