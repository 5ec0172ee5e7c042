"""Montgomery County chest X-rays with left/right lung masks (registry/montgomery_cxr.toml).

Raw layout (``NLM-MontgomeryCXRSet.zip`` extracted by the core; torch-em ``montgomery.py``,
https://github.com/constantinpape/torch-em)::

    MontgomerySet/CXR_png/MCUCXR_0001_0.png            (_0 normal, _1 tuberculosis)
    MontgomerySet/ManualMask/leftMask/MCUCXR_0001_0.png
    MontgomerySet/ManualMask/rightMask/MCUCXR_0001_0.png
    MontgomerySet/ClinicalReadings/MCUCXR_0001_0.txt

Masks are 0/255 greyscale PNGs of the image's size (read as > 0); ``lungs`` is the union of both.
No source states whose side ``leftMask`` means. The card takes the radiological convention
(patient's left = the image's right in a PA radiograph) and every mask is checked against it
by ``masks2d.read_mask_on_side``: a leftMask lung centred in the image's left half is an
error, never a silently swapped class.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.image2d import read_image
from omnimedseg.converters.formats.masks2d import read_binary_mask_union, read_mask_on_side
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
                masks={"left_lung": Source(left, partial(read_mask_on_side, side="image_right")),
                       "right_lung": Source(right, partial(read_mask_on_side, side="image_left")),
                       "lungs": Source((left, right), read_binary_mask_union)},
                meta={"tuberculosis": finding == "1"},
            )
