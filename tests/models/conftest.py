"""Shared helpers for the model tests: tiny configs and official key listings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REFERENCE = Path(os.environ.get("OMNIMEDSEG_SHARED", Path(__file__).resolve().parents[3] / "shared")) \
    / "reference" / "medsegx"


@pytest.fixture
def official_keys():
    """Key -> shape listing from ``shared/reference/medsegx``; skips when absent."""
    def load(name: str) -> dict[str, tuple[int, ...]]:
        path = REFERENCE / name
        if not path.is_file():
            pytest.skip(f"reference key listing {path} is not present")
        return {k: tuple(v) for k, v in json.loads(path.read_text()).items()}
    return load
