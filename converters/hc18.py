"""HC18: fetal head ultrasound with ellipse outlines (registry/hc18.toml).

Raw layout (Zenodo record 1327317, archives extracted by the core)::

    training_set/NNN_HC.png, NNN_HC_Annotation.png   (also NNN_2HC.png ... for extra frames)
    test_set/NNN_HC.png                               (no annotations)
    training_set_pixel_size_and_HC.csv               filename,pixel size(mm),head circumference (mm)
    test_set_pixel_size.csv                          filename,pixel size(mm)

The annotation is a one-pixel ellipse outline drawn by a sonographer; it is filled
into the fetal head mask. Pixel size is isotropic and comes from the CSV files.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.image2d import fill_outline, read_image
from omnimedseg.converters.formats.listing import list_files
from omnimedseg.errors import ConversionError

SPLITS = {
    "train": ("training_set", "training_set_pixel_size_and_HC.csv"),
    "test": ("test_set", "test_set_pixel_size.csv"),
}


def read_pixel_sizes(path: Path) -> dict[str, dict[str, float]]:
    """filename -> {"pixel_size_mm": ..., ["head_circumference_mm": ...]} from an HC18 CSV."""
    if not path.is_file():
        raise ConversionError(f"{path}: missing; expected the HC18 pixel-size CSV; run: omnimedseg download hc18")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if len(header) < 2 or header[0] != "filename" or not header[1].startswith("pixel size"):
        raise ConversionError(f"{path}: expected a header 'filename,pixel size(mm)[,head circumference (mm)]', "
                              f"found {rows[0] if rows else 'an empty file'}")
    table = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            values = {"pixel_size_mm": float(row[1])}
            if len(row) > 2 and row[2].strip():
                values["head_circumference_mm"] = float(row[2])
        except (ValueError, IndexError):
            raise ConversionError(f"{path}:{line}: expected a file name and numbers, found {row}") from None
        table[row[0].strip()] = values
    return table


class HC18(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        for split, (folder, csv_name) in SPLITS.items():
            csv_path = raw_dir / csv_name
            sizes = read_pixel_sizes(csv_path)
            for image in list_files(raw_dir / folder, "*HC.png"):
                if image.name not in sizes:
                    raise ConversionError(f"{image}: no row for {image.name!r} in {csv_path}; "
                                          f"expected one pixel size per image")
                info = sizes[image.name]
                annotation = image.with_name(image.stem + "_Annotation.png")
                if split == "train" and not annotation.is_file():
                    raise ConversionError(f"{annotation}: missing; every training image has an annotation")
                yield Case(
                    case_id=f"{split}_{image.stem}",  # test_set reuses the training names
                    image=Source(image, read_image),
                    split=split,
                    masks={"fetal_head": Source(annotation, fill_outline)} if split == "train" else {},
                    spacing=(info["pixel_size_mm"], info["pixel_size_mm"]),
                    meta={k: v for k, v in info.items() if k != "pixel_size_mm"},
                    metadata_sources=(csv_path,),
                )
