"""The reporting room: records append/read back, and the paper-layout tables are exact and deterministic."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from ganbench.errors import ConfigError
from ganbench.report import (
    append_record,
    check_tables,
    environment_versions,
    read_records,
    record_id_of,
    render_tables,
    write_tables,
)
from ganbench.report.tables import TABLE_NAMES

SHA_A = "a" * 64
SHA_B = "b" * 64


def probe(protocol: str, *, sha: str = SHA_A, label: str = "DCGAN ImageNet (ganbench)", date: str,
          mean: float | None = None, std: float | None = None, error: float | None = None,
          ci95: float | None = None, **extra) -> dict:
    """A synthetic probe record shaped like the ones the probe room writes."""
    if error is not None:
        results = {"test_error_mean": error, "test_error_std": std, "test_error_ci95": ci95,
                   "per_trial": [error] * 3}
    else:
        results = {"test_accuracy_mean": mean, "test_accuracy_std": std,
                   "test_accuracy_ci95": None if std is None else 1.96 * std, "per_trial": [mean] * 3}
    record = {
        "kind": "probe", "protocol": protocol, "label": label, "date": date,
        "model": {"name": "dcgan32", "kwargs": {"ndf": 64}, "origin": {"builtin": True}, "partial": False},
        "checkpoint": {"path": "runs/x/checkpoints/last.pt", "sha256": sha},
        "training": {"source": "ganbench train", "dataset": "imagenet", "steps": 12345, "seed": 0},
        "features": {"dim": 28672, "layers": [1, 2, 3, 4, 5, 6], "bn_stats": "train-batches",
                     "dtype": "float16", "grid": 4},
        "svm": {"backend": "torch", "C_grid": [0.01, 0.1], "chosen_C": 0.01,
                "validation_accuracy": {"0.01": 71.2, "0.1": 70.0}},
        "settings": {"trials": 3, "seed": 0},
        "results": results,
        "notes": ["JPEG copy of CIFAR-10"],
        "versions": {"torch": "2.3.0", "scikit-learn": "1.5.0"},
        "device": "cpu",
    }
    record.update(extra)
    return record


def md_rows(text: str) -> list[list[str]]:
    """The header and body rows of the (only) Markdown table in text, as lists of cells."""
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def csv_rows(text: str) -> list[dict[str, str]]:
    """A CSV text parsed into dicts."""
    return list(csv.DictReader(io.StringIO(text)))


# ---------------------------------------------------------------- records


def test_append_and_read_roundtrip_with_numpy_values(tmp_path):
    path = tmp_path / "results" / "records" / "cifar10-400.jsonl"  # parent folders do not exist yet
    record = {"kind": "probe",
              "results": {"test_accuracy_mean": np.float64(72.5), "per_trial": np.array([72.0, 73.0]),
                          "n": np.int64(10)},
              "features": {"layers": (1, 2)},
              "svm": {"validation_accuracy": {np.float32(0.5): 1.0}}}
    append_record(record, path)
    append_record({"kind": "probe", "label": "second"}, path)
    first, second = read_records(path)
    assert first["results"] == {"test_accuracy_mean": 72.5, "per_trial": [72.0, 73.0], "n": 10}
    assert first["features"]["layers"] == [1, 2]
    assert first["svm"]["validation_accuracy"] == {"0.5": 1.0}
    assert "record_id" not in record  # the caller's dict is left alone
    assert len(first["record_id"]) == 16 and first["record_id"] == record_id_of(first)
    assert second["label"] == "second"
    # a numpy value and the equal Python value give the same id; an existing id is kept
    assert record_id_of({"x": np.float64(1.5)}) == record_id_of({"x": 1.5})
    append_record({"record_id": "given", "x": 1}, path)
    assert read_records(path)[-1]["record_id"] == "given"
    # one line per record, each ending in a newline
    assert path.read_bytes().count(b"\n") == 3 and path.read_bytes().endswith(b"\n")


def test_read_records_of_a_folder_goes_by_file_name_and_skips_blank_lines(tmp_path):
    (tmp_path / "b.jsonl").write_text('{"n": 2}\n\n   \n{"n": 3}\n')
    (tmp_path / "a.jsonl").write_text('{"n": 1}\n')
    (tmp_path / "ignored.txt").write_text("not a record\n")
    assert [r["n"] for r in read_records(tmp_path)] == [1, 2, 3]


def test_a_malformed_line_is_skipped_with_one_warning_naming_file_and_line(tmp_path, capsys):
    path = tmp_path / "x.jsonl"
    path.write_text('{"ok": 1}\n\n{"broken": \n[1, 2]\n{"ok": 2}\n')
    path.write_bytes(path.read_bytes() + b'\xff\xfe{"x": 1}\n')
    assert [r["ok"] for r in read_records(tmp_path)] == [1, 2]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"ganbench: warning: {path} line 3 is torn or corrupt (not valid JSON")
    assert f"{path} line 4 is a JSON list, not a record object" in lines[1]
    assert f"{path} line 6 is not UTF-8 text" in lines[2]
    assert all("skipped it (delete that line" in line for line in lines)
    with pytest.raises(ConfigError, match="does not exist"):
        read_records(tmp_path / "missing")


def test_a_partial_last_line_does_not_swallow_the_next_record(tmp_path, capsys):
    path = tmp_path / "x.jsonl"
    path.write_text('{"n": 1}\n{"n": 2, "trunc')  # a writer killed mid-line
    append_record({"n": 3}, path)
    assert [r["n"] for r in read_records(path)] == [1, 3]
    assert "x.jsonl line 2 is torn or corrupt" in capsys.readouterr().err
    lines = path.read_text().splitlines()
    assert json.loads(lines[2])["n"] == 3


def test_environment_versions_names_every_package():
    versions = environment_versions()
    assert set(versions) == {"python", "ganbench", "torch", "scikit-learn", "numpy", "platform"}
    assert versions["numpy"] == np.__version__ and versions["python"].count(".") == 2


# ---------------------------------------------------------------- tables


@pytest.fixture
def records() -> list[dict]:
    """Checkpoint A has an old and a new 400-per-class record and one full record; B has only full."""
    return [
        probe("cifar10-full", date="2024-05-01T10:00:00+00:00", mean=81.234, std=0.0),
        probe("cifar10-400", date="2024-05-01T09:00:00+00:00", mean=60.0, std=9.0),  # superseded
        probe("cifar10-400", date="2024-05-02T09:00:00Z", mean=72.1, std=0.35,
              notes=["D layers 1-4 of 6"]),
        probe("cifar10-full", sha=SHA_B, label="Random DCGAN", date="2024-05-03",
              training={"source": "random init", "seed": 1}, mean=40.0, std=0.0),
        probe("svhn-1000", date="2024-05-04T00:00:00", error=22.5, std=0.61, ci95=1.1956),
        {"kind": "quality", "label": "DCGAN CIFAR (ganbench)", "date": "2024-05-05",
         "model": {"name": "dcgan32"}, "checkpoint": {"sha256": SHA_A},
         "training": {"source": "ganbench train", "dataset": "cifar10", "steps": 500},
         "reference": "cifar10:train", "features": "inception-pool3",
         "results": {"fid": 48.123, "is_mean": 6.1, "is_std": 0.05, "kid_mean": 0.04321, "kid_std": 0.00123,
                     "precision": 0.61234, "recall": 0.4, "density": 0.9, "coverage": 0.7,
                     "n_fake": 10000, "n_real": 50000.0}, "notes": ["torchvision Inception weights"]},
        {"kind": "probe", "protocol": "mnist", "label": "not in any table", "results": {}},
    ]


def test_cifar10_table_has_quoted_rows_then_ours_with_exact_cells(records):
    tables = render_tables(records)
    rows = md_rows(tables["cifar10.md"])
    assert rows[0] == ["Model", "Accuracy", "Accuracy (400 per class)", "max # of features units", "Source"]
    body = rows[1:]
    assert body[0] == ["1-layer K-means", "80.6%", "63.7% (±0.7%)", "4800",
                       "quoted: Radford et al. 2015, Table 1"]
    assert body[4] == ["DCGAN (ours) + L2-SVM", "82.8%", "73.8% (±0.4%)", "512",
                       "quoted: Radford et al. 2015, Table 1"]
    assert [r[0] for r in body[:5]] == ["1-layer K-means", "3-layer K-means Learned RF",
                                        "View Invariant K-means", "Exemplar CNN", "DCGAN (ours) + L2-SVM"]
    # full + 400 of checkpoint A in one row; the later 400 record (72.1 ± 0.35) wins over the earlier one
    ours = body[5:]
    assert ours == [
        ["DCGAN ImageNet (ganbench) [1]", "81.23%", "72.10% (±0.35%)", "28672",
         "ganbench: trained on imagenet, 12345 steps"],
        ["Random DCGAN [2]", "40.00%", "–", "28672", "ganbench: random init"],
    ]
    text = tables["cifar10.md"]
    assert "standard deviation of test accuracy over the trials (std, not 1.96·std" in text
    # the notes of both records of the row, and its protocol details, are visible under the table
    note = next(line for line in text.splitlines() if line.startswith("- [1]"))
    assert "caveats: JPEG copy of CIFAR-10; D layers 1-4 of 6" in note
    assert "D layers 1-6" in note and "BN statistics train-batches" in note and "float16" in note
    assert "L2-SVM (torch) C=0.01" in note and "trials=3" in note and "aaaaaaaaaaaaaaaa" in note
    assert "60.00%" not in text


def test_cifar10_csv_carries_dotted_provenance_and_quoted_rows(records):
    rows = csv_rows(render_tables(records)["cifar10.csv"])
    header = list(rows[0])
    assert header[:3] == ["table_row", "note", "source"]
    for column in ("checkpoint.sha256", "svm.chosen_C", "training.steps", "features.layers", "versions.torch",
                   "versions.scikit-learn", "record_id", "results.test_accuracy_std",
                   "results.test_accuracy_ci95", "citation", "svm.validation_accuracy"):
        assert column in header, column
    quoted = [r for r in rows if r["source"] == "quoted"]
    assert len(quoted) == 10 and all(r["citation"] == "Radford et al. 2015, Table 1" for r in quoted)
    ours = [r for r in rows if r["source"] == "ganbench"]
    assert [(r["table_row"], r["protocol"], r["results.test_accuracy_mean"]) for r in ours] == [
        ("6", "cifar10-full", "81.234"), ("6", "cifar10-400", "72.1"), ("7", "cifar10-full", "40.0")]
    assert ours[0]["checkpoint.sha256"] == SHA_A and ours[0]["svm.chosen_C"] == "0.01"
    assert ours[0]["features.layers"] == "[1,2,3,4,5,6]"
    assert ours[0]["svm.validation_accuracy"] == '{"0.01":71.2,"0.1":70.0}'


def test_svhn_table_shows_mean_error_and_ci95(records):
    tables = render_tables(records)
    body = md_rows(tables["svhn.md"])[1:]
    assert body[0] == ["KNN", "77.93%", "quoted: Radford et al. 2015, Table 2"]
    assert body[7] == ["DCGAN (ours) + L2-SVM", "22.48%", "quoted: Radford et al. 2015, Table 2"]
    assert body[8] == ["Supervised CNN with the same architecture", "28.87% (validation)",
                       "quoted: Radford et al. 2015, Table 2"]
    assert body[9] == ["DCGAN ImageNet (ganbench) [1]", "22.50% (±1.20%)",
                       "ganbench: trained on imagenet, 12345 steps"]
    assert "1.96·std" in tables["svhn.md"]
    # ci95 is derived from the std when a record lacks it
    record = probe("svhn-1000", date="2024-01-01", error=30.0, std=1.0, ci95=None)
    assert md_rows(render_tables([record])["svhn.md"])[-1][1] == "30.00% (±1.96%)"


def test_quality_table(records):
    tables = render_tables(records)
    body = md_rows(tables["quality.md"])[1:]
    assert body[0][0] == "DCGAN" and body[0][1:3] == ["48.29", "6.11"]
    assert body[0][-1] == "quoted: DCGAN, CIFAR-10, as reported by PyTorch-StudioGAN"
    assert body[1] == ["DCGAN CIFAR (ganbench) [1]", "48.12", "6.10 ± 0.05", "0.0432 ± 0.0012", "0.612",
                       "0.400", "0.900", "0.700", "10000", "50000", "cifar10:train", "inception-pool3",
                       "pytorch-fid", "ganbench: trained on cifar10, 500 steps"]
    assert body[0][-2] == "as in source" and "same Inception input" in tables["quality.md"]
    assert "torchvision Inception weights" in tables["quality.md"]
    rows = csv_rows(tables["quality.csv"])
    assert rows[0]["source"] == "quoted" and rows[0]["results.fid"] == "48.29"
    assert rows[1]["results.kid_mean"] == "0.04321" and rows[1]["checkpoint.sha256"] == SHA_A


def test_quality_rows_of_two_inception_inputs_stay_apart(records):
    """The same checkpoint scored in both Inception input modes gives two rows, each naming its mode."""
    base = next(r for r in records if r["kind"] == "quality")
    tf1 = {**base, "date": "2024-05-06", "inception_input": "tf1",
           "results": {**base["results"], "is_mean": 6.6, "fid": 47.0}}
    body = md_rows(render_tables([base, tf1])["quality.md"])[2:]
    assert [(row[2], row[-2]) for row in body] == [("6.10 ± 0.05", "pytorch-fid"), ("6.60 ± 0.05", "tf1")]


def test_latex_is_a_booktabs_tabular_with_escapes(records):
    tex = render_tables(records)["cifar10.tex"]
    assert "\\begin{tabular}{lrrrl}" in tex and "\\toprule" in tex and "\\bottomrule" in tex
    assert "max \\# of features units" in tex
    assert "72.10\\% ($\\pm$0.35\\%)" in tex
    weird = probe("cifar10-full", label="net_v2 & 50% #1", date="2024-01-01", mean=50.0, std=0.0)
    tex = render_tables([weird])["cifar10.tex"]
    assert "net\\_v2 \\& 50\\% \\#1 [1] & 50.00\\%" in tex


def test_markdown_cells_escape_pipes():
    record = probe("cifar10-full", label="a|b", date="2024-01-01", mean=50.0, std=0.0)
    assert "| a\\|b [1] | 50.00% |" in render_tables([record])["cifar10.md"]


def test_empty_records_still_give_the_papers_rows(tmp_path):
    paths = write_tables(tmp_path / "no-records-yet", tmp_path / "tables")
    assert sorted(p.name for p in paths) == sorted(f"{t}.{ext}" for t in TABLE_NAMES for ext in ("md", "csv", "tex"))
    assert "memorization" in TABLE_NAMES
    cifar = (tmp_path / "tables" / "cifar10.md").read_text()
    assert len(md_rows(cifar)) == 6 and "No ganbench records yet" in cifar
    assert len(md_rows((tmp_path / "tables" / "svhn.md").read_text())) == 10
    assert "PyTorch-StudioGAN" in (tmp_path / "tables" / "quality.tex").read_text()


def test_tables_are_deterministic_and_checkable(tmp_path, records):
    records_dir, tables_dir = tmp_path / "records", tmp_path / "tables"
    for record in records:
        name = "quality" if record["kind"] == "quality" else record["protocol"]
        append_record(record, records_dir / f"{name}.jsonl")
    assert check_tables(records_dir, tables_dir) == [f"{t}.{ext}" for t in TABLE_NAMES for ext in ("md", "csv", "tex")]
    assert not tables_dir.exists()  # checking writes nothing
    write_tables(records_dir, tables_dir)
    first = {p.name: p.read_bytes() for p in sorted(tables_dir.iterdir())}
    write_tables(records_dir, tables_dir)
    assert {p.name: p.read_bytes() for p in sorted(tables_dir.iterdir())} == first
    assert check_tables(records_dir, tables_dir) == []

    append_record(probe("svhn-1000", sha=SHA_B, label="Another", date="2024-06-01", error=25.0, std=0.5,
                        ci95=0.98), records_dir / "svhn-1000.jsonl")
    assert check_tables(records_dir, tables_dir) == ["svhn.md", "svhn.csv", "svhn.tex"]
    write_tables(records_dir, tables_dir)
    assert check_tables(records_dir, tables_dir) == []

    edited = tables_dir / "cifar10.md"
    edited.write_text(edited.read_text().replace("81.23%", "99.99%"))
    assert check_tables(records_dir, tables_dir) == ["cifar10.md"]
    (tables_dir / "quality.csv").unlink()
    assert check_tables(records_dir, tables_dir) == ["cifar10.md", "quality.csv"]


def test_row_order_does_not_depend_on_record_order(records):
    shuffled = records[::-1]
    assert render_tables(shuffled) == render_tables(records)
