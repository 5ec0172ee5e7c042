"""DeepBacs bacteria segmentation sets: images with instance-label TIFFs (registry/deepbacs_*.toml).

Each DeepBacs set is its own Zenodo record with one zip; the cards share this converter.
Raw layouts (zip contents at the top of the raw folder; torch-em
``light_microscopy/deepbacs.py`` @6f71247c, which reads exactly these folders)::

    deepbacs_mixed (Zenodo 5551009, StarDist "MIXED" set: S. aureus, E. coli, B. subtilis)
        training/source/<name>.tif   training/target/<name>.tif   (same name)
        test/source/<name>.tif       test/target/<name>.tif
    deepbacs_ecoli_stationary (Zenodo 6400327, E. coli in stationary phase, brightfield)
        training/brightfield/<name>.tif   training/masks/<name>.tif
        test/brightfield/<name>.tif       test/masks/<name>.tif

Targets are instance-label TIFFs (one id per cell, 0 = background), kept as the class's
instance map; the core derives the binary mask. Images keep their bit depth. The other
DeepBacs records (S. aureus 5550933, E. coli brightfield 5550935, B. subtilis 5639253)
have layouts torch-em does not read ("a bit more complicated") and have no card yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.image2d import read_image
from omnimedseg.converters.formats.instances import read_instance_map
from omnimedseg.converters.formats.listing import list_files
from omnimedseg.errors import ConversionError

# card id -> (image folder, instance folder) inside training/ and test/
FOLDERS = {"deepbacs_mixed": ("source", "target"), "deepbacs_ecoli_stationary": ("brightfield", "masks")}
SPLITS = {"train": "training", "test": "test"}


class DeepBacs(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        if self.card.id not in FOLDERS:
            raise ConversionError(f"{self.card.id}: the deepbacs converter knows the layouts of "
                                  f"{sorted(FOLDERS)} only; add this set's folders to converters/deepbacs.py")
        image_folder, instance_folder = FOLDERS[self.card.id]
        for split, folder in SPLITS.items():
            for image in list_files(raw_dir / folder / image_folder, "*.tif"):
                yield Case(
                    case_id=f"{split}_{image.stem}",
                    image=Source(image, read_image),
                    split=split,
                    instances={"bacterium": Source(raw_dir / folder / instance_folder / image.name,
                                                   read_instance_map)},
                )
