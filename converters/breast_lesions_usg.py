"""BrEaST-Lesions-USG breast ultrasound (registry/breast_lesions_usg.toml).

Raw layout (the TCIA zip extracted by the core; public loaders and licences.md)::

    BrEaST-Lesions_USG-images_and_masks/case001.png          image (grey or RGB, kept as is)
    BrEaST-Lesions_USG-images_and_masks/case001_tumor.png    lesion mask (absent for normal scans)
    BrEaST-Lesions_USG-images_and_masks/case001_other1.png   other findings, 1..K per image

A scan without a ``_tumor`` file is a normal scan: labelled, with an empty ``tumor`` mask
(not "unlabelled"). ``other_findings`` is the union of all ``_otherK`` masks (empty if none).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.image2d import read_binary_mask, read_image
from omnimedseg.converters.formats.masks2d import read_binary_mask_union, read_empty_mask
from omnimedseg.errors import ConversionError

FOLDER = "BrEaST-Lesions_USG-images_and_masks"
IMAGE = re.compile(r"^case\d{3}\.png$")
MASK = re.compile(r"^(case\d{3})_(tumor|other\d+)\.png$")
CASE_PREFIX = re.compile(r"^(case\d{3})[^0-9]")


class BreastLesionsUSG(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        root = raw_dir / FOLDER
        if not root.is_dir():
            raise ConversionError(f"{root}: missing; expected the extracted BrEaST-Lesions_USG zip; "
                                  f"run: omnimedseg download breast_lesions_usg")
        images, masks, strange = [], {}, {}
        for path in sorted(root.iterdir()):
            if IMAGE.match(path.name):
                images.append(path)
            elif match := MASK.match(path.name):
                masks.setdefault(match.group(1), []).append(path)
            elif (named := CASE_PREFIX.match(path.name)) is not None:  # e.g. caseNNN_tumor2.png: that case fails
                strange.setdefault(named.group(1), path)
            elif not path.name.startswith("."):
                raise ConversionError(f"{path}: unexpected file; expected caseNNN.png, caseNNN_tumor.png or "
                                      f"caseNNN_otherK.png")
        orphans = sorted((set(masks) | set(strange)) - {p.stem for p in images})
        if orphans:
            raise ConversionError(f"{root}: masks without an image for {orphans}; expected caseNNN.png for each")
        for image in images:
            tumor = root / f"{image.stem}_tumor.png"
            others = [p for p in masks.get(image.stem, []) if p != tumor]
            yield Case(
                case_id=image.stem,
                image=Source(image, read_image),
                split="train",
                masks={
                    "tumor": Source(tumor, read_binary_mask) if tumor in masks.get(image.stem, [])
                    else Source(image, read_empty_mask),
                    "other_findings": Source(others, read_binary_mask_union) if others
                    else Source(image, read_empty_mask),
                },
                meta={"normal": tumor not in masks.get(image.stem, []), "other_findings": len(others)},
                problem=(f"{strange[image.stem]}: unexpected file; expected caseNNN.png, caseNNN_tumor.png or "
                         f"caseNNN_otherK.png") if image.stem in strange else None,
            )
