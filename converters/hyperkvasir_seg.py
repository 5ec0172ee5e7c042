"""HyperKvasir segmented images: polyp masks stored as JPEG (registry/hyperkvasir_seg.toml).

Raw layout (``hyper-kvasir-segmented-images.zip``, extracted by the core)::

    segmented-images/images/<id>.jpg
    segmented-images/masks/<id>.jpg          same name, lossy JPEG 0/255 mask
    segmented-images/bounding-boxes.json     {<id>: {height, width, bbox: [{label, xmin, ymin, xmax, ymax}]}}

Sources: IMSY-DKFZ/mml ``creators/segmentation/hyper_kvasir.py`` (folders, JPEG masks) and
loaders reading ``bounding-boxes.json`` (keys = image names without ``.jpg``). Cases come
from the JSON's keys, so images missing from a partial copy are listed as absent. Masks
go through :func:`read_lossy_mask` (midpoint threshold, polarity check on the corners).
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.image2d import read_image
from omnimedseg.converters.formats.masks2d import read_lossy_mask
from omnimedseg.errors import ConversionError

ROOT = "segmented-images"
BOXES = f"{ROOT}/bounding-boxes.json"


def read_boxes(path: Path) -> dict[str, dict]:
    """image id -> {"height", "width", "bbox": [...]} from bounding-boxes.json."""
    try:
        table = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConversionError(f"{path}: missing; expected the HyperKvasir box file; "
                              f"run: omnimedseg download hyperkvasir_seg") from None
    except json.JSONDecodeError as exc:
        raise ConversionError(f"{path}: not valid JSON ({exc}); run: omnimedseg download hyperkvasir_seg --force") \
            from None
    if not isinstance(table, dict) or not all(isinstance(v, dict) and "bbox" in v for v in table.values()):
        raise ConversionError(f"{path}: expected an object image id -> {{height, width, bbox: [...]}}")
    return table


class HyperKvasirSeg(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        boxes_path = raw_dir / BOXES
        for name, info in sorted(read_boxes(boxes_path).items()):
            yield Case(
                case_id=name,
                image=Source(raw_dir / ROOT / "images" / f"{name}.jpg", read_image),
                split="train",  # the release has no official split
                masks={"polyp": Source(raw_dir / ROOT / "masks" / f"{name}.jpg",
                                       partial(read_lossy_mask, background_corners=True))},
                meta={"bounding_boxes": info["bbox"]},
                metadata_sources=(boxes_path,),
            )
