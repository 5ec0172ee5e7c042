"""Side tables of releases (CSV): byte-order marks, ``;`` or ``,`` separators, required columns.

Real side files differ in small ways that break naive readers: a UTF-8 byte-order mark
glued to the first header (BUS-UCLM's ``INFO.csv``), ``;`` separators from spreadsheet
exports, padded header names, ``NaN`` strings for missing values. One reader handles them
and names the file, the expected columns and what it found when a column is missing.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

from omnimedseg.errors import ConversionError

MISSING_VALUES = ("", "nan", "NaN", "NA", "N/A", "None")


def read_table(path: Path, required: Sequence[str] = (), *, dataset: str = "<dataset>") -> list[dict[str, str | None]]:
    """Rows of a CSV as {header: value}; headers stripped, missing values (``NaN``, empty) as None.

    The separator (``,`` ``;`` or tab) is taken from the header line. ``required`` columns
    must all exist (compared after stripping); otherwise a ConversionError names them.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConversionError(f"{path}: missing; expected the {dataset} side table; "
                              f"run: omnimedseg download {dataset}") from None
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ConversionError(f"{path}: empty; expected a header with columns {list(required)}")
    header_line = lines[0]
    delimiter = max((";", ",", "\t"), key=header_line.count)
    reader = csv.reader(lines, delimiter=delimiter)
    header = [h.strip() for h in next(reader)]
    missing = [c for c in required if c not in header]
    if missing:
        raise ConversionError(f"{path}: no column(s) {missing}; expected {list(required)}, found {header}")
    rows = []
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        values = [v.strip() for v in values] + [""] * (len(header) - len(values))
        rows.append({h: (None if v in MISSING_VALUES else v) for h, v in zip(header, values)})
    return rows


__all__ = ["read_table"]
