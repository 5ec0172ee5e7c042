"""TNBC nuclei: H&E patches with binary nucleus masks (registry/tnbc_nuclei.toml).

Raw layout (``TNBC_NucleiSegmentation.zip`` of Zenodo 2579118, extracted by the core)::

    TNBC_NucleiSegmentation/Slide_01/01_1.png     RGB or RGBA (opaque alpha) H&E patch
    TNBC_NucleiSegmentation/GT_01/01_1.png        binary nucleus mask, same name
    __MACOSX/...                                  AppleDouble entries, ignored

Sources: licences.md (TNBC notes) and torch-em ``histopathology/tnbc.py``. The masks are
semantic only; instances are not derived by connected components (touching nuclei merge).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.image2d import read_binary_mask
from omnimedseg.converters.formats.listing import list_files
from omnimedseg.converters.formats.masks2d import read_image_without_alpha

ROOT = "TNBC_NucleiSegmentation"
SLIDE = re.compile(r"^Slide_(\d+)$")


class TnbcNuclei(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        for folder in sorted((raw_dir / ROOT).glob("Slide_*")):
            match = SLIDE.match(folder.name)
            if not match or not folder.is_dir():
                continue
            for image in list_files(folder, "*.png"):
                yield Case(
                    case_id=image.stem,  # "01_1": slide number + patch number, unique
                    image=Source(image, read_image_without_alpha),
                    split="train",  # the release has no official split
                    masks={"nucleus": Source(raw_dir / ROOT / f"GT_{match.group(1)}" / image.name, read_binary_mask)},
                    meta={"slide": match.group(1)},
                )
