"""Finding files in real release trees whose names are not consistent.

Releases spell the same folder differently between splits or annotators (Chákṣu's
"Remidio"/"Remedio", "Bosch/cup" vs "Bosch/Cup"; FIVES's "Ground truth"/"Groud truth"),
change extensions between an image and its mask (``.JPG`` vs ``.png``), or add suffixes
to some file names. These helpers list a folder (names only, never file contents) and
match case-insensitively; no match or several matches is an error naming what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from omnimedseg.converters.formats.listing import list_files
from omnimedseg.errors import ConversionError


def find_folder(parent: Path, names: Iterable[str], dataset: str) -> Path:
    """The one sub-folder of ``parent`` whose name equals one of ``names`` ignoring case."""
    wanted = {n.lower() for n in names}
    found = sorted(p for p in parent.iterdir() if p.is_dir() and p.name.lower() in wanted) if parent.is_dir() else []
    if len(found) != 1:
        raise ConversionError(f"{parent}: expected one folder named {' or '.join(sorted(wanted))} (any case), found "
                              f"{[p.name for p in found] or 'none'}; run: omnimedseg download {dataset}")
    return found[0]


def find_side_file(raw_dir: Path, name: str, dataset: str) -> Path:
    """The one ``name`` at the top of ``raw_dir`` or up to two folders below (release folder names vary,
    e.g. ``BUS-UCLM/INFO.csv`` or ``data/BUS-UCLM/INFO.csv``)."""
    found = sorted([*raw_dir.glob(name), *raw_dir.glob(f"*/{name}"), *raw_dir.glob(f"*/*/{name}")])
    if len(found) != 1:
        raise ConversionError(f"{raw_dir}: expected one {name} at the top or up to two folders below, found "
                              f"{[str(p.relative_to(raw_dir)) for p in found] or 'none'}; "
                              f"run: omnimedseg download {dataset}")
    return found[0]


def files_by_stem(folder: Path, drop_suffixes: Iterable[str] = ()) -> dict[str, Path]:
    """Lower-cased file stem -> file in ``folder`` (empty if the folder is absent; macOS debris left out).

    ``drop_suffixes`` are removed from the end of a stem (e.g. Chákṣu's "glsusp"), so a
    mask named ``22glsusp.png`` is found for image ``22.jpg``. Two files with one stem
    (e.g. ``a.png`` and ``a.jpg``) are an error: which one is the annotation is unknown.
    """
    table: dict[str, Path] = {}
    for path in list_files(folder):
        stem = path.stem.lower()
        for suffix in drop_suffixes:
            if stem.endswith(suffix.lower()):
                stem = stem[: -len(suffix)]
        if stem in table:
            raise ConversionError(f"{folder}: {table[stem].name} and {path.name} have the same name; expected one "
                                  f"file per image")
        table[stem] = path
    return table


__all__ = ["files_by_stem", "find_folder", "find_side_file"]
