"""Fake TNBC v1.1 release: TNBC_NucleiSegmentation.zip with Slide_XX/GT_XX folders and __MACOSX.

Slide 01 is RGB, slide 02 RGBA with an opaque alpha (as some real slides are); masks are
8-bit 0/255, one as a 1-bit PNG (Pillow gives it back as bool).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.converters.fake._files2d import image_bytes, write_zip

PATCHES = {"01": ("01_1", "01_2"), "02": ("02_1",)}
SHAPE = (32, 32)


def nucleus_mask(name: str) -> np.ndarray:
    k = int(name[-1]) + int(name[1])
    mask = np.zeros(SHAPE, bool)
    mask[2 + k: 8 + k, 3:9] = True
    mask[20:26, 10 + k: 15 + k] = True
    return mask


def make_remote_files(folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    members = {}
    for slide, names in PATCHES.items():
        for name in names:
            image = rng.integers(0, 255, (*SHAPE, 3), dtype=np.uint8)
            if slide == "02":
                image = np.concatenate([image, np.full((*SHAPE, 1), 255, np.uint8)], axis=2)
            members[f"TNBC_NucleiSegmentation/Slide_{slide}/{name}.png"] = image_bytes(image)
            mask = (nucleus_mask(name) * 255).astype(np.uint8)
            members[f"TNBC_NucleiSegmentation/GT_{slide}/{name}.png"] = \
                image_bytes(mask, mode="1" if name == "01_2" else None)
            members[f"__MACOSX/TNBC_NucleiSegmentation/Slide_{slide}/._{name}.png"] = b"\x00\x05\x16\x07Mac OS X"
    write_zip(folder / "TNBC_NucleiSegmentation.zip", members)
