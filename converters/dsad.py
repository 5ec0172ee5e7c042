"""DSAD multi-organ frames: laparoscopic images with one mask file per organ (registry/dsad.toml).

Raw layout of the figshare zip (organ folders at the top; torch-em ``medical/dsad.py``)::

    <organ>/<NN>/imageXX.png + maskXX.png       single-organ subsets (not converted here, see below)
    multilabel/<NN>/imageXX.png                 frames annotated for all eleven structures
    multilabel/<NN>/maskXX_<organ>.png          one binary mask (0/255) per structure shown

``NN`` is the surgery (01..32), ``XX`` the frame. The multilabel mask naming is read from a
third-party script that reorganises this folder (organ = the stem after the first ``_``,
frame = the first digits of the name; github code index). A structure with no mask file in a
multilabel frame is taken as not visible (empty mask, via ``read_empty_mask``) because this
subset is annotated for all eleven structures (Carstens et al. 2023); the case's
``meta["no_mask_file"]`` lists them. Split by surgery as in Kolbinger et al. (2023),
the split DSAD follow-up work uses (val 03, 21, 26; test 02, 07, 11, 13, 14, 18, 20, 32).

The single-organ subsets label one structure per frame and leave the others unknown (not
background); the converter contract needs every class of a labelled case, so they are not
converted until it can mark classes as unlabelled per case.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.image2d import read_binary_mask, read_image
from omnimedseg.converters.formats.listing import list_files
from omnimedseg.converters.formats.masks2d import read_empty_mask
from omnimedseg.errors import ConversionError

VALIDATION = {"03", "21", "26"}
TEST = {"02", "07", "11", "13", "14", "18", "20", "32"}
FRAME = re.compile(r"^image(\d+)\.png$")
MASK = re.compile(r"^mask(\d+)_([a-z_]+)\.png$")


def surgery_split(surgery: str) -> str:
    return "val" if surgery in VALIDATION else "test" if surgery in TEST else "train"


class Dsad(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        root = raw_dir / "multilabel"
        if not root.is_dir():
            raise ConversionError(f"{root}: missing; expected the DSAD zip's multilabel/<surgery>/imageXX.png "
                                  f"folders; run: omnimedseg download dsad")
        organs = self.card.class_names
        for surgery in sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit()):
            masks: dict[str, dict[str, Path]] = {}
            for path in list_files(surgery, "mask*.png"):
                match = MASK.match(path.name)
                if not match or match.group(2) not in organs:
                    raise ConversionError(f"{path}: unexpected mask name; expected maskXX_<organ>.png with an "
                                          f"organ among {organs}")
                masks.setdefault(match.group(1), {})[match.group(2)] = path
            for image in list_files(surgery, "image*.png"):
                match = FRAME.match(image.name)
                if not match:
                    continue
                found = masks.get(match.group(1), {})
                yield Case(
                    case_id=f"{surgery.name}_{match.group(1)}",
                    image=Source(image, read_image),
                    split=surgery_split(surgery.name),
                    masks={organ: Source(found[organ], read_binary_mask) if organ in found
                           else Source(image, read_empty_mask) for organ in organs},
                    meta={"surgery": surgery.name, "no_mask_file": [o for o in organs if o not in found]},
                )
