"""Fake ARCADE (Zenodo 10390295) release: arcade.zip with both tasks, three splits, COCO JSONs.

The categories list is the release's full one (25 SYNTAX segments with ids 1..25 and
"stenosis" = 26) in both tasks' files. Polygons are x, y interleaved; one annotation has
two polygons; one val image has no annotation at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.converters.fake._release import save_image, zip_tree

SEGMENTS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "9a", "10", "10a", "11", "12", "12a", "13", "14", "14a",
            "15", "16", "16a", "16b", "16c", "12b", "14b")
CATEGORIES = [{"id": i, "name": n, "supercategory": ""} for i, n in enumerate(SEGMENTS, start=1)] + [
    {"id": 26, "name": "stenosis", "supercategory": ""}]
SHAPE = (16, 20)  # rows, cols (real: 512 x 512)
# task -> split -> file name -> [(category name, [polygon, ...]), ...]
ANNOTATIONS = {
    "syntax": {
        "train": {"1.png": [("1", [[1, 1, 9, 1, 9, 4, 1, 4]]), ("9a", [[10, 10, 14, 10, 14, 15, 10, 15]])],
                  "2.png": [("16c", [[0, 0, 4, 0, 4, 4, 0, 4], [15, 12, 20, 12, 20, 16, 15, 16]])]},
        "val": {"1.png": [("1", [[2, 2, 6, 2, 6, 6, 2, 6]])], "2.png": []},
        "test": {"1.png": [("12b", [[5, 5, 10, 5, 10, 8, 5, 8]])]},
    },
    "stenosis": {
        "train": {"1.png": [("stenosis", [[3, 3, 7, 3, 7, 5, 3, 5]]), ("stenosis", [[12, 1, 15, 1, 15, 3, 12, 3]])]},
        "val": {"1.png": [("stenosis", [[0, 10, 2, 10, 2, 16, 0, 16]])]},
        "test": {"1.png": []},
    },
}


def expected_mask(task: str, split: str, name: str, category: str) -> np.ndarray:
    """The polygons as boxes in COCO's corner convention: x0..x1 covers columns x0 .. x1-1."""
    mask = np.zeros(SHAPE, bool)
    for cat, polygons in ANNOTATIONS[task][split][name]:
        if cat == category:
            for p in polygons:
                mask[p[1]:p[5], p[0]:p[2]] = True
    return mask


def make_remote_files(folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    root = folder / "_work" / "arcade"
    for task, splits in ANNOTATIONS.items():
        for split, images in splits.items():
            coco = {"info": {"description": "ARCADE"}, "licenses": [], "categories": CATEGORIES,
                    "images": [], "annotations": []}
            for image_id, (name, anns) in enumerate(images.items(), start=1):
                save_image(rng.integers(0, 256, SHAPE, dtype=np.uint8), root / task / split / "images" / name)
                coco["images"].append({"id": image_id, "file_name": name, "height": SHAPE[0], "width": SHAPE[1],
                                       "license": 0, "date_captured": 0})
                for category, polygons in anns:
                    coco["annotations"].append({
                        "id": len(coco["annotations"]) + 1, "image_id": image_id,
                        "category_id": next(c["id"] for c in CATEGORIES if c["name"] == category),
                        "segmentation": [[float(v) for v in p] for p in polygons], "area": 0.0,
                        "bbox": [0, 0, 0, 0], "iscrowd": 0, "attributes": {"occluded": False}})
            path = root / task / split / "annotations" / f"{split}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(coco))
    zip_tree(folder / "_work", folder / "arcade.zip")
