"""PSFHS intrapartum ultrasound (registry/psfhs.toml).

Raw layout (``PSFHS.zip`` extracted by the core; torch-em ``psfhs.py``,
https://github.com/constantinpape/torch-em)::

    PSFHS/image_mha/03744.mha     256 x 256 image; some stored as 3 x 256 x 256 (channels as slices)
    PSFHS/label_mha/03744.mha     256 x 256 labels: 0 background, 1 pubic symphysis, 2 fetal head

Both folders use the same file names. The label values are secondary evidence (FH-PS-AOP's
README, licences.md), so every label map is checked to have the fetal head (2) larger than the
pubic symphysis (1) when both are drawn; a swap is an error. The MetaImage quirks (channels as slices, repeated
components, (x, y) sizes) are handled by ``formats.metaimage2d``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.metaimage2d import read_metaimage_2d, read_metaimage_2d_labels
from omnimedseg.errors import ConversionError


class PSFHS(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        root = raw_dir / "PSFHS"
        images = sorted((root / "image_mha").glob("*.mha"))
        if not images:
            raise ConversionError(f"{root / 'image_mha'}: no .mha images; expected the extracted PSFHS.zip; "
                                  f"run: omnimedseg download psfhs")
        for image in images:
            yield Case(
                case_id=image.stem,
                image=Source(image, partial(read_metaimage_2d, slices_are_channels=True)),
                split="train",
                # 1 = pubic symphysis, 2 = fetal head is secondary evidence only: the head must be the larger
                label=Source(root / "label_mha" / image.name, partial(read_metaimage_2d_labels, area_order=(2, 1))),
            )
