"""Read back what a converted dataset says about its cases (for the dataset tests)."""

from __future__ import annotations

import json
from pathlib import Path


def cases_by_id(out: Path) -> dict[str, dict]:
    """case id -> its entry in dataset.json (split, image, masks, meta ...)."""
    return {case["case_id"]: case for case in json.loads((out / "dataset.json").read_text())["cases"]}


def provenance_of(out: Path, written: str) -> tuple[str, list[str]]:
    """(reader operation, raw paths) recorded for one written file, e.g. ``masks/<id>/polyp.png``."""
    entry = json.loads((out / "provenance.json").read_text())["files"][written]
    return entry["operation"], [source["path"] for source in entry["sources"]]
