"""BUS-UCLM breast ultrasound with RGB colour-coded lesion masks (registry/bus_uclm.toml).

Raw layout (``7fvgj4jsp7-1.zip``, Mendeley's bundle of version 1, extracted by the core; the
authors' README and scripts, https://github.com/noeliavallez/BUS-UCLM-Dataset)::

    BUS-UCLM Breast ultrasound lesion segmentation dataset/BUS-UCLM/INFO.csv   Image;Label;Doppler;Marks
    .../BUS-UCLM/images/ANFO_005.png
    .../BUS-UCLM/masks/ANFO_005.png    RGB: black background, green benign, red malignant

``INFO.csv`` (';', UTF-8 with BOM) is looked up at the top or up to two folders down, so the
authors' renamed ``data/BUS-UCLM`` copy converts too. Every row of INFO.csv is a case; masks
are decoded with the card's ``[palette]`` (exact colours: PNG is lossless and the authors'
script tests G == 255 / R == 255, so any other colour is an error naming it). The test split
is the authors' own: patients COPE, ANFO, ELCO, CRCI, FLKA (``prepare_partitions.py``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.annotations2d import read_palette_mask_class
from omnimedseg.converters.formats.image2d import read_image
from omnimedseg.converters.formats.layout import find_side_file
from omnimedseg.converters.formats.tables import read_table

TEST_PATIENTS = ("COPE", "ANFO", "ELCO", "CRCI", "FLKA")


class BusUclm(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        info = find_side_file(raw_dir, "INFO.csv", self.card.id)
        root = info.parent
        for row in read_table(info, ("Image", "Label"), dataset=self.card.id):
            name = row["Image"]
            patient = name.split("_", 1)[0]
            yield Case(
                case_id=Path(name).stem,
                image=Source(root / "images" / name, read_image),
                split="test" if patient in TEST_PATIENTS else "train",
                masks={cls: Source(root / "masks" / name, partial(read_palette_mask_class, palette=self.card.palette,
                                                                 class_name=cls))
                       for cls in self.card.class_names},
                meta={"patient": patient, "label": row["Label"],
                      **{key.lower(): row[key] for key in ("Doppler", "Marks") if row.get(key) is not None}},
                metadata_sources=(info,),
            )
