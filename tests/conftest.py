"""Shared fixtures: isolated data roots, the real-data folder, no network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("OMNIMEDSEG_REALDATA", REPO_ROOT.parent / "shared" / "realdata"))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own data root and no user registry folders."""
    monkeypatch.setenv("OMNIMEDSEG_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.delenv("OMNIMEDSEG_REGISTRY_PATH", raising=False)


@pytest.fixture
def realdata():
    """Path to ``../shared/realdata`` (read-only real files); skips when absent."""
    def folder(name: str) -> Path:
        path = REALDATA / name
        if not path.is_dir():
            pytest.skip(f"real data folder {path} is not present (set OMNIMEDSEG_REALDATA)")
        return path
    return folder
