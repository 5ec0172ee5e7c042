"""Fake HC18 raw data: the real Zenodo files' names, archive layout and CSV formats.

Images are 8-bit greyscale PNGs; annotations are one-pixel ellipse outlines (0/255)
drawn like the sonographers' ones; extra frames use the ``NNN_2HC.png`` naming.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

TRAIN = ("000_HC", "001_HC", "010_2HC")
TEST = ("000_HC", "001_HC")
SHAPE = (54, 80)  # rows, cols: the real 540 x 800 scaled down by 10


def ellipse_outline(shape, center, axes, angle_rad) -> np.ndarray:
    """One-pixel-wide closed ellipse outline (uint8 0/255), like HC18's annotations."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    y, x = rows - center[0], cols - center[1]
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    u, v = (x * c + y * s) / axes[1], (-x * s + y * c) / axes[0]
    inside = u ** 2 + v ** 2 <= 1.0
    from scipy import ndimage

    outline = inside & ~ndimage.binary_erosion(inside)
    return (outline * 255).astype(np.uint8)


def _png_bytes(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path)


def make_remote_files(folder: Path, seed: int = 0) -> None:
    """Write training_set.zip, test_set.zip and the two CSVs into ``folder``."""
    rng = np.random.default_rng(seed)
    work = folder / "_work"
    for split, names in (("training_set", TRAIN), ("test_set", TEST)):
        (work / split).mkdir(parents=True)
        for name in names:
            image = rng.integers(0, 244, SHAPE, dtype=np.uint8)
            _png_bytes(image, work / split / f"{name}.png")
            if split == "training_set":
                outline = ellipse_outline(SHAPE, (27 + rng.integers(-3, 4), 40 + rng.integers(-3, 4)),
                                          (15 + rng.integers(0, 5), 25 + rng.integers(0, 5)), rng.uniform(0, np.pi))
                _png_bytes(outline, work / split / f"{name}_Annotation.png")
        with zipfile.ZipFile(folder / f"{split}.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(work / split, f"{split}/")
            for path in sorted((work / split).iterdir()):
                zf.write(path, f"{split}/{path.name}")
    sizes = {name: round(float(rng.uniform(0.05, 0.3)), 9) for name in TRAIN + TEST}
    with open(folder / "training_set_pixel_size_and_HC.csv", "w", newline="") as fh:
        fh.write("filename,pixel size(mm),head circumference (mm)\n")
        for name in TRAIN:
            fh.write(f"{name}.png,{sizes[name]},{rng.uniform(50, 350):.2f}\n")
    with open(folder / "test_set_pixel_size.csv", "w", newline="") as fh:
        fh.write("filename,pixel size(mm)\n")
        for name in TEST:
            fh.write(f"{name}.png,{sizes[name]}\n")
    import shutil

    shutil.rmtree(work)
