"""DSAD: laparoscopic frames with one mask file per organ (registry/dsad.toml).

Raw layout of the figshare zip (organ folders at the top; torch-em ``medical/dsad.py``, which
globs ``<organ>/*/image*.png`` and takes the mask as the name with ``image`` -> ``mask``;
licences.md "DSAD (layout confirmation)")::

    <organ>/<NN>/imageXX.png + maskXX.png       single-organ subsets: ONE structure labelled
    multilabel/<NN>/imageXX.png                 frames annotated for all eleven structures
    multilabel/<NN>/maskXX_<organ>.png          one binary mask (0/255) per structure shown

``NN`` is the surgery (01..32), ``XX`` the frame. The multilabel mask naming is read from a
third-party script that reorganises this folder (organ = the stem after the first ``_``,
frame = the first digits of the name; github code index). A structure with no mask file in a
multilabel frame is taken as not visible (empty mask, via ``read_empty_mask``) because this
subset is annotated for all eleven structures (Carstens et al. 2023); the case's
``meta["no_mask_file"]`` lists them. A single-organ frame labels its folder's structure only:
the other ten are unknown there (not background), so the case lists them in ``unlabelled``
and no mask is written for them. Case ids: ``NN_XX`` (multilabel), ``<organ>_NN_XX``
(single-organ). Split by surgery as in Kolbinger et al. (2023), the split DSAD follow-up
work uses (val 03, 21, 26; test 02, 07, 11, 13, 14, 18, 20, 32).
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
FRAME_OF_MASK = re.compile(r"^mask(\d+)")


def surgery_split(surgery: str) -> str:
    return "val" if surgery in VALIDATION else "test" if surgery in TEST else "train"


class Dsad(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        organs = self.card.class_names
        subsets = [raw_dir / name for name in ("multilabel", *organs)]
        if not any(folder.is_dir() for folder in subsets):
            raise ConversionError(f"{raw_dir}: none of the DSAD subset folders {[f.name for f in subsets]}; expected "
                                  f"the DSAD zip's <organ>/<surgery>/imageXX.png and multilabel/ folders; run: "
                                  f"omnimedseg download dsad")
        yield from self._multilabel(raw_dir / "multilabel")
        for organ in organs:
            yield from self._single_organ(raw_dir / organ, organ)

    def _multilabel(self, root: Path) -> Iterator[Case]:
        organs = self.card.class_names
        for surgery in _surgeries(root):
            masks: dict[str, dict[str, Path]] = {}
            strange: list[Path] = []  # a mask no organ names: its frame cannot be trusted to be complete
            for path in list_files(surgery, "mask*.png"):
                match = MASK.match(path.name)
                if not match or match.group(2) not in organs:
                    strange.append(path)
                    continue
                masks.setdefault(match.group(1), {})[match.group(2)] = path
            for image in list_files(surgery, "image*.png"):
                match = FRAME.match(image.name)
                if not match:
                    continue
                found = masks.get(match.group(1), {})
                odd = [p for p in strange if _frame_of(p) in (match.group(1), None)]  # None: no frame number
                yield Case(
                    case_id=f"{surgery.name}_{match.group(1)}",
                    image=Source(image, read_image),
                    split=surgery_split(surgery.name),
                    masks={organ: Source(found[organ], read_binary_mask) if organ in found
                           else Source(image, read_empty_mask) for organ in organs},
                    meta={"surgery": surgery.name, "no_mask_file": [o for o in organs if o not in found]},
                    problem=f"{odd[0]}: unexpected mask name; expected maskXX_<organ>.png with an organ among "
                            f"{organs}" if odd else None,
                )

    def _single_organ(self, root: Path, organ: str) -> Iterator[Case]:
        """Frames of one organ's folder: that organ's mask; every other structure unlabelled."""
        others = tuple(o for o in self.card.class_names if o != organ)
        for surgery in _surgeries(root):
            for image in list_files(surgery, "image*.png"):
                match = FRAME.match(image.name)
                if not match:
                    continue
                yield Case(
                    case_id=f"{organ}_{surgery.name}_{match.group(1)}",
                    image=Source(image, read_image),
                    split=surgery_split(surgery.name),
                    masks={organ: Source(surgery / f"mask{match.group(1)}.png", read_binary_mask)},
                    unlabelled=others,
                    meta={"surgery": surgery.name, "subset": organ},
                )


def _frame_of(mask: Path) -> str | None:
    """The frame number a mask file's name starts with (``mask05...`` -> ``05``), None without one."""
    found = FRAME_OF_MASK.match(mask.name)
    return found.group(1) if found else None


def _surgeries(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit()) if root.is_dir() else []
