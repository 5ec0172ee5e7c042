"""TotalSegmentator CT v2.0.1 and v3.0.0: one binary NIfTI per structure (registry/totalsegmentator_v2.toml, _v3.toml).

Raw layout (one zip per release on Zenodo; evidence: torch-em ``totalsegmentator.py``, which verified both
archives, https://github.com/constantinpape/torch-em, and third-party listings of the zip's central directory)::

    [Totalsegmentator_dataset_v300/]          top folder only in v3.0.0; v2.0.1 has none
        meta.csv                              ';'-separated, UTF-8 with BOM: image_id;age;gender;institute;
                                              study_type;split;manufacturer;scanner_model;kvp;pathology;
                                              pathology_location   (split: v2 train/val/test, v3 train/test)
        s0000/ct.nii.gz
        s0000/segmentations/<structure>.nii.gz   117 binary masks, empty when out of the field of view

Sources disagree on v2.0.1's top folder (torch-em: none; licences.md quoting eva: ``Totalsegmentator_dataset_v201/``);
a ``meta.csv`` found one level down is named in the error rather than silently used.

Structure file names are the card's class names except the vertebrae, which are mixed-case
(``vertebrae_L5.nii.gz`` -> class ``vertebrae_l5``; v3 replaces ``vertebrae_S1`` by ``vertebrae_L6``); the
explicit table below maps them. Cases come from ``meta.csv``, so a partial copy lists the others as absent.
"""

from __future__ import annotations

import csv
from functools import partial
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.volumes import read_label_class, read_volume
from omnimedseg.errors import ConversionError

# Zenodo record -> folder the zip extracts its files into (relative to the raw folder)
RELEASE_FOLDERS = {"10047292": "", "22688904": "Totalsegmentator_dataset_v300"}
SPLITS = {"train": "train", "val": "val", "test": "test"}
META_COLUMNS = ("age", "gender", "institute", "study_type", "manufacturer", "scanner_model", "kvp", "pathology",
                "pathology_location")
# card class -> raw file stem where they differ (the vertebrae keep upper-case level names)
FILE_STEMS = {f"vertebrae_{level.lower()}": f"vertebrae_{level}"
              for level in [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)]
              + [f"L{i}" for i in range(1, 7)] + ["S1"]}
BINARY = partial(read_label_class, values=(1,), known=(1,))


def read_meta(path: Path) -> list[dict[str, str]]:
    """Rows of TotalSegmentator's ``meta.csv`` (``;``-separated, BOM); needs ``image_id`` and ``split``."""
    if not path.is_file():
        raise ConversionError(f"{path}: missing; expected TotalSegmentator's meta.csv (case list and split); "
                              f"run: omnimedseg download <dataset>")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, delimiter=";")
        columns = [c.strip() for c in reader.fieldnames or []]
        if "image_id" not in columns or "split" not in columns:
            raise ConversionError(f"{path}: expected ';'-separated columns including image_id and split, found "
                                  f"{columns}")
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]


class TotalSegmentator(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        record = self.card.source.record
        if record not in RELEASE_FOLDERS:
            raise ConversionError(f"{self.card.path}: Zenodo record {record} is not a TotalSegmentator release this "
                                  f"converter knows ({sorted(RELEASE_FOLDERS)}); check its layout first")
        release = raw_dir / RELEASE_FOLDERS[record]
        meta_path = release / "meta.csv"
        if not meta_path.is_file():
            # The top folder is the one layout fact the sources disagree on (torch-em: none in v2.0.1; a
            # catalogue entry: Totalsegmentator_dataset_v201/); name what was found instead of guessing.
            elsewhere = sorted(str(p.relative_to(raw_dir)) for p in raw_dir.glob("*/meta.csv"))
            if elsewhere or (raw_dir / "meta.csv").is_file():
                found = elsewhere or ["meta.csv"]
                raise ConversionError(f"{meta_path}: missing; expected the Zenodo {record} zip to extract meta.csv "
                                      f"to {(RELEASE_FOLDERS[record] or '.')}/, found {found}; the release layout "
                                      f"differs from this converter's, update RELEASE_FOLDERS in "
                                      f"converters/totalsegmentator.py")
        for line, row in enumerate(read_meta(meta_path), start=2):
            case = row["image_id"]
            if row["split"] not in SPLITS:
                raise ConversionError(f"{meta_path}:{line}: split {row['split']!r}; expected one of {sorted(SPLITS)}")
            folder = release / case
            yield Case(
                case_id=case,
                image=Source(folder / "ct.nii.gz", read_volume),
                split=SPLITS[row["split"]],
                masks={name: Source(folder / "segmentations" / f"{FILE_STEMS.get(name, name)}.nii.gz", BINARY)
                       for name in self.card.class_names},
                meta={k: row[k] for k in META_COLUMNS if row.get(k) not in (None, "", "NaN", "nan")},
                metadata_sources=(meta_path,),
            )
