"""Fake Montgomery release: NLM-MontgomeryCXRSet.zip with the real folder names and file naming.

Images are 8-bit greyscale PNGs, masks 0/255 8-bit PNGs of the same size (real: ~4020 x 4892).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.converters.fake._release import save_image, zip_tree

NAMES = ("MCUCXR_0001_0", "MCUCXR_0002_1")
SHAPE = (40, 32)  # rows, cols (portrait like the real radiographs)
# the patient's left lung appears on the image's right (PA view)
LEFT, RIGHT = (slice(8, 30), slice(18, 28)), (slice(6, 32), slice(3, 13))


def make_remote_files(folder: Path, seed: int = 0, swap_sides: bool = False) -> None:
    """``swap_sides`` puts each lung on the other half (a release breaking the side convention)."""
    rng = np.random.default_rng(seed)
    root = folder / "_work" / "MontgomerySet"
    for name in NAMES:
        save_image(rng.integers(0, 256, SHAPE, dtype=np.uint8), root / "CXR_png" / f"{name}.png")
        for side, where in (("leftMask", RIGHT if swap_sides else LEFT), ("rightMask", LEFT if swap_sides else RIGHT)):
            mask = np.zeros(SHAPE, np.uint8)
            mask[where] = 255
            save_image(mask, root / "ManualMask" / side / f"{name}.png")
        (root / "ClinicalReadings").mkdir(exist_ok=True)
        (root / "ClinicalReadings" / f"{name}.txt").write_text("Patient's Sex: F\nPatient's Age: 044Y\nnormal\n")
    zip_tree(folder / "_work", folder / "NLM-MontgomeryCXRSet.zip")
