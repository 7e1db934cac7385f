"""Fixtures shared by the test files."""

from __future__ import annotations

import pytest


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """A fresh $GANBENCH_CACHE per test: decoded stores, feature matrices and downloads land in tmp_path/cache.
    Files whose every test needs it say `pytestmark = pytest.mark.usefixtures("isolated_cache")`."""
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
