"""Fake ISIC 2016 part 1 release: the four real zip names, each holding a folder of its own name.

Images are RGB JPEGs, masks single-channel 8-bit PNGs with 0/255 (as the challenge page
describes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.converters.fake._files2d import image_bytes, write_zip

TRAIN = ("ISIC_0000000", "ISIC_0000001")
TEST = ("ISIC_0000003",)
SHAPE = (30, 40)


def lesion_mask(name: str) -> np.ndarray:
    offset = int(name[-1])
    mask = np.zeros(SHAPE, bool)
    mask[5 + offset: 20 + offset, 8: 30 - offset] = True
    return mask


def make_remote_files(folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for part, names in (("Training", TRAIN), ("Test", TEST)):
        data, truth = f"ISBI2016_ISIC_Part1_{part}_Data", f"ISBI2016_ISIC_Part1_{part}_GroundTruth"
        images = {f"{data}/{n}.jpg": image_bytes(rng.integers(0, 255, (*SHAPE, 3), dtype=np.uint8), "JPEG")
                  for n in names}
        write_zip(folder / f"{data}.zip", images)
        write_zip(folder / f"{truth}.zip", {f"{truth}/{n}_Segmentation.png":
                                            image_bytes((lesion_mask(n) * 255).astype(np.uint8)) for n in names})
