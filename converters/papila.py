"""PAPILA fundus images with two experts' disc and cup contours (registry/papila.toml).

Raw layout (figshare 14798004 v2 zip extracted by the core; torch-em ``papila.py``,
https://github.com/constantinpape/torch-em)::

    PapilaDB-PAPILA-<commit>/FundusImages/RET002OD.jpg
    PapilaDB-PAPILA-<commit>/ExpertsSegmentations/Contours/RET002OD_disc_exp1.txt   "x y" per line
    PapilaDB-PAPILA-<commit>/ExpertsSegmentations/Contours/RET002OD_cup_exp2.txt

Contours are filled on the image's pixel grid (pixel-centre coordinates, outline included)
by ``annotations2d.read_polygon_text``. Every expert whose contour files are listed for an
image is a rater of that case; the card's reference rater gives masks/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.annotations2d import read_polygon_text
from omnimedseg.converters.formats.image2d import read_image
from omnimedseg.converters.formats.listing import list_files
from omnimedseg.errors import ConversionError

CONTOUR = re.compile(r"^(RET\d{3}O[DS])_(disc|cup)_exp([12])\.txt$")
STRUCTURES = {"disc": "optic_disc", "cup": "optic_cup"}


class Papila(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        roots = sorted(raw_dir.glob("PapilaDB-PAPILA-*"))
        if len(roots) != 1:
            raise ConversionError(f"{raw_dir}: expected one PapilaDB-PAPILA-<commit> folder, found "
                                  f"{[p.name for p in roots] or 'none'}; run: omnimedseg download papila")
        root = roots[0]
        contours: dict[str, dict[str, dict[str, Path]]] = {}  # image -> rater -> class -> file
        for path in list_files(root / "ExpertsSegmentations" / "Contours", "*.txt"):
            match = CONTOUR.match(path.name)
            if not match:
                raise ConversionError(f"{path}: unexpected contour file name; expected RETnnnOD_disc_exp1.txt style")
            image, structure, expert = match.groups()
            contours.setdefault(image, {}).setdefault(f"expert{expert}", {})[STRUCTURES[structure]] = path
        if not contours:  # else every case would silently be image-only
            raise ConversionError(f"{root / 'ExpertsSegmentations' / 'Contours'}: no contour files; expected "
                                  f"RETnnnOD_disc_exp1.txt style files; run: omnimedseg download papila")
        for image in list_files(root / "FundusImages", "RET*.jpg"):
            raters = contours.get(image.stem, {})
            for rater, by_class in raters.items():
                if set(by_class) != set(self.card.class_names):
                    raise ConversionError(f"{root}: {rater} has contours {sorted(by_class)} for {image.stem}; "
                                          f"expected both disc and cup")
            yield Case(
                case_id=image.stem,
                image=Source(image, read_image),
                split="train",
                raters={rater: {cls: Source((path, image), read_polygon_text) for cls, path in by_class.items()}
                        for rater, by_class in sorted(raters.items())},
                meta={"patient": image.stem[3:6], "eye": image.stem[-2:]},
            )
