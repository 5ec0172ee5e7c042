"""FIVES fundus vessel segmentation (registry/fives.toml).

Raw layout (``FIVES.rar`` extracted by the core through libarchive; public loaders)::

    FIVES A Fundus Image Dataset for AI-based Vessel Segmentation/train/Original/1_A.png
    FIVES A Fundus Image Dataset for AI-based Vessel Segmentation/train/Ground truth/1_A.png
    ... test/ likewise

The mask folder is "Ground truth" in most loaders and "Groud truth" in one published tree;
the converter lists the split folder and takes whichever exists (both at once is an
error). The letter after ``_`` is the disease category (A, D, G, N).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.image2d import read_binary_mask, read_image
from omnimedseg.converters.formats.layout import find_folder
from omnimedseg.converters.formats.listing import list_files
from omnimedseg.errors import ConversionError

ROOT = "FIVES A Fundus Image Dataset for AI-based Vessel Segmentation"
MASK_FOLDERS = ("Ground truth", "Groud truth")
CATEGORIES = {"A": "age-related macular degeneration", "D": "diabetic retinopathy", "G": "glaucoma", "N": "normal"}


class Fives(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        root = raw_dir / ROOT
        for split in ("train", "test"):
            folder = root / split
            masks = find_folder(folder, MASK_FOLDERS, self.card.id)
            for image in list_files(folder / "Original", "*.png"):
                category = image.stem.rpartition("_")[2]
                if category not in CATEGORIES:
                    raise ConversionError(f"{image}: expected a name <n>_<A|D|G|N>.png")
                yield Case(
                    case_id=f"{split}_{image.stem}",  # train and test both number from 1
                    image=Source(image, read_image),
                    split=split,
                    masks={"retinal_vessel": Source(masks / image.name, read_binary_mask)},
                    meta={"category": CATEGORIES[category]},
                )
