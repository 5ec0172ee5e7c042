"""ISIC 2016 part 1: dermoscopy images with binary lesion masks (registry/isic2016_task1.toml).

Raw layout (each zip extracts to a folder of its own name; challenge.isic-archive.com/landing/2016/37)::

    ISBI2016_ISIC_Part1_Training_Data/ISIC_0000000.jpg
    ISBI2016_ISIC_Part1_Training_GroundTruth/ISIC_0000000_Segmentation.png    8-bit 0/255
    ISBI2016_ISIC_Part1_Test_Data/ISIC_0000003.jpg
    ISBI2016_ISIC_Part1_Test_GroundTruth/ISIC_0000003_Segmentation.png

There is no side file listing the cases, so the images are listed; a mask that is missing
for a listed image is reported by the core as a broken case.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.image2d import read_binary_mask, read_image
from omnimedseg.converters.formats.listing import list_files

SPLITS = {"train": "Training", "test": "Test"}
IMAGE_NAME = re.compile(r"^ISIC_\d{7}\.jpg$")


class Isic2016Task1(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        for split, part in SPLITS.items():
            images = raw_dir / f"ISBI2016_ISIC_Part1_{part}_Data"
            masks = raw_dir / f"ISBI2016_ISIC_Part1_{part}_GroundTruth"
            for image in (p for p in list_files(images, "ISIC_*.jpg") if IMAGE_NAME.match(p.name)):
                yield Case(
                    case_id=image.stem,  # ISIC ids are unique across the two splits
                    image=Source(image, read_image),
                    split=split,
                    masks={"skin_lesion": Source(masks / f"{image.stem}_Segmentation.png", read_binary_mask)},
                )
