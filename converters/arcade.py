"""ARCADE coronary angiography, COCO polygons (registry/arcade_syntax.toml, arcade_stenosis.toml).

Raw layout (Zenodo 10390295 ``arcade.zip`` extracted by the core; torch-em ``arcade.py``,
https://github.com/constantinpape/torch-em)::

    arcade/<task>/<split>/images/<n>.png               task: syntax | stenosis; split: train | val | test
    arcade/<task>/<split>/annotations/<split>.json     COCO: images, categories, polygon annotations

One card per task; the task is the card id's suffix. Cases are the ``images`` entries of
each split's JSON (an image without annotations has empty masks). A class is the union of
the annotations whose category name maps to it: syntax classes are ``segment_<SYNTAX
segment>`` (category "9a" -> ``segment_9a``), the stenosis class is the category
"stenosis". Annotations of a category the card does not name are an error, never dropped.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.coco import load_coco, read_coco_mask
from omnimedseg.converters.formats.image2d import read_image
from omnimedseg.errors import ConversionError

SPLITS = ("train", "val", "test")


def class_of_category(task: str, category: str) -> str:
    return f"segment_{category}" if task == "syntax" else category


class Arcade(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        task = self.card.id.removeprefix("arcade_")
        if task not in ("syntax", "stenosis"):
            raise ConversionError(f"{self.card.path}: converter 'arcade' serves arcade_syntax and arcade_stenosis, "
                                  f"not {self.card.id!r}")
        for split in SPLITS:
            folder = raw_dir / "arcade" / task / split
            annotations = folder / "annotations" / f"{split}.json"
            coco = load_coco(annotations)
            used = {coco.categories[int(a["category_id"])] for anns in coco.by_image.values() for a in anns}
            unknown = sorted(c for c in used if class_of_category(task, c) not in self.card.class_names)
            if unknown:
                raise ConversionError(f"{annotations}: annotations of categories {unknown}, which are not classes "
                                      f"of {self.card.id} ({len(self.card.class_names)} classes); expected only "
                                      f"{task} categories")
            categories = {name: tuple(c for c in set(coco.categories.values()) if class_of_category(task, c) == name)
                          for name in self.card.class_names}
            for image_id, image in sorted(coco.images.items()):
                name = Path(image["file_name"]).name
                yield Case(
                    case_id=f"{split}_{Path(name).stem}",  # every split numbers its images from 1
                    image=Source(folder / "images" / name, read_image),
                    split=split,
                    masks={cls: Source(annotations, partial(read_coco_mask, image_id=image_id, categories=cats))
                           for cls, cats in categories.items()},
                    meta={"coco_image_id": image_id},
                    metadata_sources=(annotations,),
                )
