"""SPIDER: lumbar spine MRI with vertebrae, discs and spinal canal (registry/spider.toml).

Raw layout (Zenodo record 10159290)::

    images/<patient>_<sequence>.mha    sequence t1, t2 or t2_SPACE (sagittal MHA)
    masks/<patient>_<sequence>.mha     label map on the image grid
    overview.csv                        one row per series: new_file_name, subset, ...
    radiological_gradings.csv           per-disc gradings (not needed to convert)

Label values (evidence: the SPIDER baseline algorithm page on grand-challenge.org,
https://grand-challenge.org/algorithms/spider-baseline-iis/, and the dataset card
https://huggingface.co/datasets/cdoswald/SPIDER: "1-25 = vertebrae (numbered from the bottom, i.e.
L5 = 1), 100 = spinal canal, 101-125 = partially visible vertebrae, 201-225 = intervertebral discs
(L5/S1 = 201)"; licences.md's third-party "IVD label + 200" agrees for the discs):

    vertebrae             1-25 and 101-125 (partially visible vertebrae are vertebra voxels too)
    spinal_canal          100
    intervertebral_discs  201-225

Any other value is an error (``read_label_class(known=...)``), never dropped. The case list and the
official training/validation split come from ``overview.csv`` (columns ``new_file_name`` [S, licences.md]
and ``subset``, the latter NOT confirmed by any source read; values ``training``/``validation``); if those
columns or values differ the converter stops and names what it expected.
"""

from __future__ import annotations

import csv
from functools import partial
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.volumes import read_label_class, read_volume
from omnimedseg.errors import ConversionError

VERTEBRAE = tuple(range(1, 26)) + tuple(range(101, 126))
SPINAL_CANAL = (100,)
DISCS = tuple(range(201, 226))
KNOWN = VERTEBRAE + SPINAL_CANAL + DISCS
CLASS_VALUES = {"vertebrae": VERTEBRAE, "spinal_canal": SPINAL_CANAL, "intervertebral_discs": DISCS}
SUBSETS = {"training": "train", "validation": "val"}
REQUIRED_COLUMNS = ("new_file_name", "subset")


def read_overview(path: Path) -> list[dict[str, str]]:
    """Rows of ``overview.csv``; the columns the converter relies on must be there."""
    if not path.is_file():
        raise ConversionError(f"{path}: missing; expected SPIDER's overview.csv (case list and subset); "
                              f"run: omnimedseg download spider")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ConversionError(f"{path}: no column(s) {missing}; expected {list(REQUIRED_COLUMNS)} among "
                                  f"{columns}; the SPIDER layout may have changed, check the converter")
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]


class SPIDER(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        overview = raw_dir / "overview.csv"
        for line, row in enumerate(read_overview(overview), start=2):
            stem = row["new_file_name"].removesuffix(".mha")
            subset = row["subset"].lower()
            if subset not in SUBSETS:
                raise ConversionError(f"{overview}:{line}: subset {row['subset']!r}; expected one of "
                                      f"{sorted(SUBSETS)}")
            patient, _, sequence = stem.partition("_")
            mask = raw_dir / "masks" / f"{stem}.mha"
            yield Case(
                case_id=f"spider_{stem}",
                image=Source(raw_dir / "images" / f"{stem}.mha", read_volume),
                split=SUBSETS[subset],
                masks={name: Source(mask, partial(read_label_class, values=values, known=KNOWN))
                       for name, values in CLASS_VALUES.items()},
                meta={"patient": patient, "sequence": sequence},
                metadata_sources=(overview,),
            )
