"""Fake FIVES release: one RAR archive (FIVES.rar, RAR 5 written by tests/rar5.py) with the real root folder.

The mask folder is "Ground truth" in train and test, as every public loader found reads it
(see registry/fives.toml); ``mask_folder="Groud truth"`` writes the catalogue's unconfirmed
misspelling instead, which the converter also accepts. Masks are 0/255 RGB PNGs with equal
channels (grey-looking; their real encoding is not documented, the converter takes > 0), images RGB.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from tests.converters.fake._release import save_image
from tests.rar5 import rar5_of_folder

ROOT = "FIVES A Fundus Image Dataset for AI-based Vessel Segmentation"
SHAPE = (24, 24)  # real: 2048 x 2048
CASES = {"train": ("1_A", "2_N"), "test": ("1_D", "3_G")}
MASK_FOLDER = "Ground truth"


def vessel(split: str, name: str) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    column = int(name.split("_")[0]) * 3 + (split == "test")
    mask[:, column] = True
    mask[12, :] = True
    return mask


def make_remote_files(folder: Path, seed: int = 0, mask_folder: str = MASK_FOLDER) -> None:
    rng = np.random.default_rng(seed)
    work = folder / "_work"
    for split, names in CASES.items():
        for name in names:
            save_image(rng.integers(0, 256, SHAPE + (3,), dtype=np.uint8), work / ROOT / split / "Original" / f"{name}.png")
            grey = vessel(split, name).astype(np.uint8) * 255
            save_image(np.stack([grey] * 3, -1), work / ROOT / split / mask_folder / f"{name}.png")
    rar5_of_folder(folder / "FIVES.rar", work)
    shutil.rmtree(work)
