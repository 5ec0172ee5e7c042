"""COCO annotation files (instances JSON): polygons, uncompressed and compressed RLE.

Masks are rasterised by pycocotools, the COCO reference implementation, so a converted
mask equals what ``COCO.annToMask`` gives: polygon coordinates are continuous with the
origin at the top-left *corner* of pixel (0, 0) (pixel (r, c) covers x in [c, c+1),
y in [r, r+1)); ``segmentation`` may be a list of polygons (x, y interleaved), an
uncompressed RLE (``counts`` a list, column-major runs) or a compressed RLE (``counts`` a
string). A class mask is the union of every annotation of that class on the image.

The JSON is parsed once per process and file version (cached on path, size and mtime):
a converter reads one mask per case and class, and real files hold thousands of images.
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from omnimedseg.converters.formats.imagedata import ImageData
from omnimedseg.errors import ConversionError


class CocoFile:
    """The parts of a COCO file a converter needs: images, categories, annotations per image."""

    def __init__(self, path: Path, data: dict):
        self.path = path
        for key in ("images", "annotations", "categories"):
            if not isinstance(data.get(key), list):
                raise ConversionError(f"{path}: no '{key}' list; expected a COCO instances file")
        self.images = {int(image["id"]): image for image in data["images"]}
        self.categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        self.by_image: dict[int, list[dict]] = {}
        for ann in data["annotations"]:
            if int(ann["image_id"]) not in self.images:
                raise ConversionError(f"{path}: annotation {ann.get('id')} refers to image {ann['image_id']}, "
                                      f"which is not in 'images'")
            if int(ann["category_id"]) not in self.categories:
                raise ConversionError(f"{path}: annotation {ann.get('id')} has category {ann['category_id']}, "
                                      f"which is not in 'categories' {sorted(self.categories)}")
            self.by_image.setdefault(int(ann["image_id"]), []).append(ann)


@lru_cache(maxsize=8)
def _load(path: str, size: int, mtime_ns: int) -> CocoFile:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{path}: not valid JSON ({exc}); expected a COCO instances file") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: a JSON {type(data).__name__}; expected a COCO instances object")
    return CocoFile(Path(path), data)


def load_coco(path: Path) -> CocoFile:
    """The parsed COCO file at ``path`` (a small side file for ``cases()``; cached)."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ConversionError(f"{path}: file not found; expected a COCO annotation file") from None
    return _load(str(path), stat.st_size, stat.st_mtime_ns)


def _segmentation_rle(segmentation, height: int, width: int, where: str):
    from pycocotools import mask as coco_mask

    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if len(p) >= 6]
        if len(polygons) != len(segmentation) or any(len(p) % 2 for p in segmentation):
            raise ConversionError(f"{where}: polygon with fewer than 3 points or an odd number of coordinates; "
                                  f"expected [x0, y0, x1, y1, ...] lists")
        return coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if list(segmentation["size"]) != [height, width]:
            raise ConversionError(f"{where}: RLE size {segmentation['size']}; expected [{height}, {width}] "
                                  f"(the image's height and width)")
        if isinstance(segmentation["counts"], list):
            if sum(segmentation["counts"]) != height * width:
                raise ConversionError(f"{where}: RLE runs cover {sum(segmentation['counts'])} pixels; expected "
                                      f"{height * width}")
            return coco_mask.frPyObjects(segmentation, height, width)
        counts = segmentation["counts"]
        return {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    raise ConversionError(f"{where}: segmentation of type {type(segmentation).__name__}; expected polygons or RLE")


def read_coco_mask(path: Path, *, image_id: int, categories: Sequence[str]) -> ImageData:
    """Bool mask of one image: the union of its annotations whose category name is in ``categories``.

    An image without such annotations gives an all-False mask of the image's size.
    """
    from pycocotools import mask as coco_mask

    coco = load_coco(path)
    if image_id not in coco.images:
        raise ConversionError(f"{path}: no image with id {image_id}")
    unknown = sorted(set(categories) - set(coco.categories.values()))
    if unknown:
        raise ConversionError(f"{path}: categories {unknown} not in the file; found "
                              f"{sorted(set(coco.categories.values()))}")
    image = coco.images[image_id]
    height, width = int(image["height"]), int(image["width"])
    mask = np.zeros((height, width), dtype=bool)
    for ann in coco.by_image.get(image_id, []):
        if coco.categories[int(ann["category_id"])] in categories:
            where = f"{path}: annotation {ann.get('id')} (image {image_id})"
            rle = _segmentation_rle(ann["segmentation"], height, width, where)
            with warnings.catch_warnings():  # pycocotools 2.0.x warns about numpy 2's copy keyword on every decode
                warnings.simplefilter("ignore", DeprecationWarning)
                mask |= coco_mask.decode(rle).astype(bool)
    return ImageData(mask)


__all__ = ["CocoFile", "load_coco", "read_coco_mask"]
