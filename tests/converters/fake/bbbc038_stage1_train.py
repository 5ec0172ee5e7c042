"""Fake BBBC038 stage1_train.zip: <id>/images/<id>.png (RGBA, opaque) + <id>/masks/<mask id>.png per nucleus.

Ids are 64-hex like the real ones. One image is grey-looking fluorescence stored as RGBA, one
colour (H&E-like); two of its nuclei touch (one connected component, two instances). One mask
is a 1-bit PNG.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from tests.converters.fake._files2d import image_bytes, write_zip

SHAPE = (24, 28)


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


IMAGES = {
    _hex("fluo"): [(slice(2, 6), slice(2, 6)), (slice(10, 15), slice(10, 16)), (slice(18, 22), slice(3, 9))],
    _hex("histo"): [(slice(4, 10), slice(4, 9)), (slice(4, 10), slice(9, 14)), (slice(15, 20), slice(20, 26))],
}


def nuclei(image_id: str) -> dict[str, np.ndarray]:
    """mask file name -> bool mask of one nucleus."""
    found = {}
    for k, (rows, cols) in enumerate(IMAGES[image_id]):
        mask = np.zeros(SHAPE, bool)
        mask[rows, cols] = True
        found[f"{_hex(image_id + str(k))}.png"] = mask
    return found


def make_remote_files(folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    members = {}
    for n, image_id in enumerate(IMAGES):
        if n == 0:
            grey = rng.integers(0, 60, SHAPE, dtype=np.uint8)
            rgb = np.repeat(grey[..., None], 3, axis=2)
        else:
            rgb = rng.integers(90, 255, (*SHAPE, 3), dtype=np.uint8)
        rgba = np.concatenate([rgb, np.full((*SHAPE, 1), 255, np.uint8)], axis=2)
        members[f"{image_id}/images/{image_id}.png"] = image_bytes(rgba)
        for i, (name, mask) in enumerate(nuclei(image_id).items()):
            members[f"{image_id}/masks/{name}"] = image_bytes((mask * 255).astype(np.uint8),
                                                              mode="1" if i == 2 else None)
    write_zip(folder / "stage1_train.zip", members)
