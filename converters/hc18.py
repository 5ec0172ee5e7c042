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

from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.image2d import fill_outline, read_image
from omnimedseg.converters.formats.listing import list_files
from omnimedseg.converters.formats.tables import read_table
from omnimedseg.errors import ConversionError

SPLITS = {
    "train": ("training_set", "training_set_pixel_size_and_HC.csv"),
    "test": ("test_set", "test_set_pixel_size.csv"),
}
SIZE_COLUMN, CIRCUMFERENCE_COLUMN = "pixel size(mm)", "head circumference (mm)"


def read_pixel_sizes(path: Path) -> dict[str, dict[str, float]]:
    """filename -> {"pixel_size_mm": ..., ["head_circumference_mm": ...]} from an HC18 CSV."""
    table = {}
    for line, row in enumerate(read_table(path, ("filename", SIZE_COLUMN), dataset="hc18"), start=2):
        try:
            values = {"pixel_size_mm": float(row[SIZE_COLUMN])}
            if row.get(CIRCUMFERENCE_COLUMN) is not None:
                values["head_circumference_mm"] = float(row[CIRCUMFERENCE_COLUMN])
        except (TypeError, ValueError):
            raise ConversionError(f"{path}:{line}: expected a file name and numbers, found {row}") from None
        table[row["filename"]] = values
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
                annotation = image.with_name(image.stem + "_Annotation.png")  # every training image has one
                yield Case(
                    case_id=f"{split}_{image.stem}",  # test_set reuses the training names
                    image=Source(image, read_image),
                    split=split,
                    masks={"fetal_head": Source(annotation, fill_outline)} if split == "train" else {},
                    spacing=(info["pixel_size_mm"], info["pixel_size_mm"]),
                    meta={k: v for k, v in info.items() if k != "pixel_size_mm"},
                    metadata_sources=(csv_path,),
                )
