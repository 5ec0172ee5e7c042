"""Montgomery County chest X-rays with left/right lung masks (registry/montgomery_cxr.toml).

Raw layout (``NLM-MontgomeryCXRSet.zip`` extracted by the core; torch-em ``montgomery.py``,
https://github.com/constantinpape/torch-em)::

    MontgomerySet/CXR_png/MCUCXR_0001_0.png            (_0 normal, _1 tuberculosis)
    MontgomerySet/ManualMask/leftMask/MCUCXR_0001_0.png
    MontgomerySet/ManualMask/rightMask/MCUCXR_0001_0.png
    MontgomerySet/ClinicalReadings/MCUCXR_0001_0.txt

Masks are 0/255 greyscale PNGs of the image's size; ``lungs`` is the union of both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.image2d import read_binary_mask, read_image
from omnimedseg.converters.formats.masks2d import read_binary_mask_union
from omnimedseg.errors import ConversionError


class MontgomeryCXR(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        root = raw_dir / "MontgomerySet"
        images = sorted((root / "CXR_png").glob("MCUCXR_*.png"))
        if not images:
            raise ConversionError(f"{root / 'CXR_png'}: no MCUCXR_*.png images; expected the extracted "
                                  f"NLM-MontgomeryCXRSet.zip; run: omnimedseg download montgomery_cxr")
        for image in images:
            left = root / "ManualMask" / "leftMask" / image.name
            right = root / "ManualMask" / "rightMask" / image.name
            finding = image.stem.rsplit("_", 1)[-1]
            if finding not in ("0", "1"):
                raise ConversionError(f"{image}: expected a name ending in _0 (normal) or _1 (tuberculosis)")
            yield Case(
                case_id=image.stem,
                image=Source(image, read_image),
                split="train",
                masks={"left_lung": Source(left, read_binary_mask), "right_lung": Source(right, read_binary_mask),
                       "lungs": Source((left, right), read_binary_mask_union)},
                meta={"tuberculosis": finding == "1"},
            )
