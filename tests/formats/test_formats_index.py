"""docs/formats.md's index names every public shared operation once, with its module, and nothing stale."""

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def index_rows() -> dict[str, list[str]]:
    text = (ROOT / "docs" / "formats.md").read_text(encoding="utf-8")
    section = text.split("## Index of shared operations", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\| `formats\.(\w+)` \|[^|]*\| (.*) \|$", line)
        if match:
            rows[match.group(1)] = re.findall(r"`(\w+)`", match.group(2))
    return rows


def test_formats_index_lists_each_public_name_once_with_its_module():
    modules = sorted(p.stem for p in (ROOT / "converters" / "formats").glob("*.py") if p.stem != "__init__")
    rows = index_rows()
    assert sorted(rows) == modules
    for module in modules:
        public = importlib.import_module(f"omnimedseg.converters.formats.{module}").__all__
        assert sorted(rows[module]) == sorted(public), module
        assert len(set(rows[module])) == len(rows[module]), module
