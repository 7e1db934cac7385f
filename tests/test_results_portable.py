"""Committed results are read on other machines: no record, table or CSV under results/ may hold a path of the
machine that made it (an absolute path anywhere in a value, e.g. a checkpoint, a cache file or a data root)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[1] / "results"
# an absolute POSIX path (two or more components) at the start of a value or after a space, quote or bracket
ABSOLUTE = re.compile(r"(?:^|[\s\"'(\[=,])(/(?:[\w.$~-]+/)+[\w.$~-]*)")


def _strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_the_pattern_finds_machine_paths_and_spares_portable_ones():
    for text in ("/work/main/runs/x.pt", "10000 samples of /tmp/a/b.pt (seed 0)", "cache=/root/.cache/g/s.npy"):
        assert ABSOLUTE.search(text), text
    for text in ("$GANBENCH_CACHE/stores/a.npy", "../shared/data/cifar10-jpg.tar.gz", "runs/ns/seed0/last.pt",
                 "layers 1-4 of 6", "images/s", "D/G ratio 1/2"):
        assert not ABSOLUTE.search(text), text


@pytest.mark.parametrize("path", sorted(RESULTS.rglob("*.jsonl")), ids=lambda p: str(p.relative_to(RESULTS)))
def test_records_hold_no_machine_path(path):
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            found = [m.group(1) for s in _strings(json.loads(line)) for m in ABSOLUTE.finditer(s)]
            assert not found, f"{path.name} line {number}: {found}"


@pytest.mark.parametrize("path", sorted([*RESULTS.rglob("*.csv"), *RESULTS.glob("tables/*.md"),
                                         *RESULTS.glob("compare/*/compare.md")]),
                         ids=lambda p: str(p.relative_to(RESULTS)))
def test_tables_show_no_machine_path(path):
    found = ABSOLUTE.findall(path.read_text(encoding="utf-8"))
    assert not found, f"{path.name}: {found[:5]}"
