"""OCT B-scans stored with their colour label side by side in one PNG (registry/oimhs.toml, amd_sd.toml).

Raw layouts (zip contents; torch-em ``medical/oimhs.py`` and ``medical/amd_sd.py`` @6f71247c)::

    oimhs:   Images/<eye>/<scan>.png            left half B-scan, right half RGB label
    amd_sd:  AMD-SD/images/<patient>/<scan>.png  same arrangement (split at width / 2)

The label colours are the card's ``[palette]``. OIMHS labels are matched exactly (torch-em
compares exact colours); AMD-SD labels are first snapped to 0/255 per channel, the rounding
torch-em applies (``(label / 255).round() * 255``), because their primaries are not exact.
Neither release defines a split; every scan is "train" and the eye/patient is kept in meta.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.listing import list_files
from omnimedseg.converters.formats.side_by_side import read_half, read_half_palette_class
from omnimedseg.errors import ConversionError

# card id -> (folder holding one sub-folder per eye/patient, snap label colours to 0/255, meta key)
LAYOUTS = {"oimhs": ("Images", False, "eye"), "amd_sd": ("AMD-SD/images", True, "patient")}


class OctSideBySide(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        if self.card.id not in LAYOUTS:
            raise ConversionError(f"{self.card.id}: converters/oct_side_by_side.py knows {sorted(LAYOUTS)} only")
        folder, snap, key = LAYOUTS[self.card.id]
        palette = self.card.palette
        if not (raw_dir / folder).is_dir():
            raise ConversionError(f"{raw_dir / folder}: missing; expected {folder}/<eye or patient>/<scan>.png "
                                  f"from the release zip; run: omnimedseg download {self.card.id}")
        for group in sorted(p for p in (raw_dir / folder).iterdir() if p.is_dir()):
            for scan in list_files(group, "*.png"):
                yield Case(
                    case_id=f"{group.name}_{scan.stem}".replace(" ", "_"),
                    image=Source(scan, partial(read_half, half="left")),
                    split="train",
                    masks={name: Source(scan, partial(read_half_palette_class, palette=palette, class_name=name,
                                                      snap=snap))
                           for name in self.card.class_names},
                    meta={key: group.name},
                )
