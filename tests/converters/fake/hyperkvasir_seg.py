"""Fake HyperKvasir segmented-images release: the real zip name, folders, JPEG masks, box JSON.

Images are RGB JPEGs with the black corner vignette of endoscopy frames; masks are RGB
JPEGs (white polyp on black) whose edges JPEG compression smears, like the real ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.converters.fake._files2d import image_bytes, write_zip

IDS = ("cju0qkwl35piu0993l0dewei2", "cju0roawvklrq0799vmjorwfv", "cju0s690hkp960855tjuaqvv0")
SHAPE = (36, 44)
# polyp discs (centre row, centre col, radius) per image; the second has two polyps
POLYPS = {IDS[0]: [(16, 20, 8)], IDS[1]: [(10, 12, 5), (24, 30, 6)], IDS[2]: [(18, 22, 10)]}


def polyp_mask(name: str) -> np.ndarray:
    rows, cols = np.mgrid[: SHAPE[0], : SHAPE[1]]
    mask = np.zeros(SHAPE, bool)
    for r, c, radius in POLYPS[name]:
        mask |= (rows - r) ** 2 + (cols - c) ** 2 <= radius ** 2
    return mask


def make_remote_files(folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    members, boxes = {}, {}
    for name in IDS:
        image = rng.integers(60, 230, (*SHAPE, 3), dtype=np.uint8)
        image[:4, :4] = image[:4, -4:] = image[-4:, :4] = image[-4:, -4:] = 0  # vignette corners
        members[f"segmented-images/images/{name}.jpg"] = image_bytes(image, "JPEG", quality=90)
        mask = np.repeat((polyp_mask(name) * 255).astype(np.uint8)[..., None], 3, axis=2)
        members[f"segmented-images/masks/{name}.jpg"] = image_bytes(mask, "JPEG", quality=75)
        boxes[name] = {"height": SHAPE[0], "width": SHAPE[1],
                       "bbox": [{"label": "polyp", "xmin": c - r, "ymin": rr - r, "xmax": c + r, "ymax": rr + r}
                                for rr, c, r in POLYPS[name]]}
    members["segmented-images/bounding-boxes.json"] = json.dumps(boxes).encode()
    write_zip(folder / "hyper-kvasir-segmented-images.zip", members)
