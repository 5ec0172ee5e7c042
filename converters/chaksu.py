"""Chákṣu fundus images, five experts and the dataset's fusions (registry/chaksu.toml).

Raw layout (Train.zip and Test.zip extracted by the core; MedIMeta ``chaksu.py``,
https://github.com/StefanoWoerner/medimeta-dataset-scripts)::

    Train/1.0_Original_Fundus_Images/Remidio/Image101.JPG
    Train/4.0_OD_CO_Fusion_Images/Expert 3/Remidio/Image101.png     grey levels: 0 < disc < cup
    Train/4.0_OD_CO_Fusion_Images/Remidio/STAPLE/Image101.png       the dataset's fusion (reference)
    Test/4.0_OD_CO_Fusion_Images/Remedio/STAPLE/...                 (sic: "Remedio" in Test)

Folders are matched ignoring case and known misspellings (``formats.layout``), masks by
lower-cased stem (extensions differ; Expert 4 adds "glsusp" to some names). An expert
without a mask for a photo is not a rater of that case. Disc = grey > 255//3 (cup
included), cup = grey > 2*255//3 (``masks2d.read_mask_above``). MedIMeta uses the same two
thresholds but names them the other way round ("cup" > 85); the order background < disc < cup
is not documented, so the cup mask is checked to be solid (a ring would mean the order is
reversed) and a ring is an error.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.image2d import read_image
from omnimedseg.converters.formats.layout import files_by_stem, find_folder
from omnimedseg.converters.formats.masks2d import read_mask_above
from omnimedseg.errors import ConversionError

DEVICES = {"forus": ("Forus",), "remidio": ("Remidio", "Remedio"), "bosch": ("Bosch",)}
LEVELS = {"optic_disc": 255 // 3, "optic_cup": 2 * 255 // 3}
IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg", ".tif", ".tiff")
FUSION = "STAPLE"


class Chaksu(Converter):
    def _masks(self, path: Path) -> dict[str, Source]:
        # the cup (brightest level) must be solid: a ring would mean the grey-level order is the other way round
        return {cls: Source(path, partial(read_mask_above, above=level, solid=cls == "optic_cup"))
                for cls, level in LEVELS.items()}

    def cases(self, raw_dir: Path) -> Iterator[Case]:
        for split in ("Train", "Test"):
            root = find_folder(raw_dir, (split,), self.card.id)
            originals = find_folder(root, ("1.0_Original_Fundus_Images",), self.card.id)
            fusions = find_folder(root, ("4.0_OD_CO_Fusion_Images",), self.card.id)
            for device, names in DEVICES.items():
                images = [p for p in sorted(find_folder(originals, names, self.card.id).iterdir())
                          if p.suffix.lower() in IMAGE_SUFFIXES]
                reference = files_by_stem(find_folder(find_folder(fusions, names, self.card.id), (FUSION,),
                                                      self.card.id))
                experts = {}
                for k in range(1, 6):
                    expert_dir = find_folder(fusions, (f"Expert {k}",), self.card.id)
                    experts[f"expert{k}"] = files_by_stem(find_folder(expert_dir, names, self.card.id),
                                                          drop_suffixes=("glsusp",))
                for image in images:
                    stem = image.stem.lower()
                    if stem not in reference:
                        raise ConversionError(f"{image}: no {FUSION} fusion mask named {image.stem}.* in "
                                              f"{fusions}/<device>/{FUSION}; expected one per photo")
                    yield Case(
                        case_id=f"{split.lower()}_{device}_{image.stem}",
                        image=Source(image, read_image),
                        split=split.lower(),
                        masks=self._masks(reference[stem]),
                        raters={rater: self._masks(files[stem]) for rater, files in experts.items() if stem in files},
                        meta={"device": names[0]},
                    )
