"""Fake BrEaST-Lesions-USG release: the TCIA zip's flat folder and the clinical spreadsheet's name.

case001: RGB image, tumour with two separate blobs and two other findings (1-bit PNG masks,
which Pillow reads as bool); case002: grey image, tumour only (0/255 masks); case003: a
normal scan (no mask files at all).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.converters.fake._release import save_image, zip_tree

FOLDER = "BrEaST-Lesions_USG-images_and_masks"
SHAPE = (18, 26)
TUMOR = {"case001": [(slice(2, 6), slice(2, 8)), (slice(10, 15), slice(15, 22))],
         "case002": [(slice(4, 12), slice(5, 18))], "case003": []}
OTHERS = {"case001": [(slice(12, 16), slice(1, 5)), (slice(1, 4), slice(20, 25))], "case002": [], "case003": []}


def box_mask(boxes) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    for box in boxes:
        mask[box] = True
    return mask


def make_remote_files(folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    root = folder / "_work" / FOLDER
    for case in TUMOR:
        grey = rng.integers(0, 256, SHAPE, dtype=np.uint8)
        save_image(np.stack([grey, grey, grey // 2], -1) if case == "case001" else grey, root / f"{case}.png")
        one_bit = case == "case001"
        if TUMOR[case]:
            mask = box_mask(TUMOR[case])
            save_image(mask if one_bit else (mask * 255).astype(np.uint8), root / f"{case}_tumor.png")
        for k, box in enumerate(OTHERS[case], start=1):
            save_image(box_mask([box]), root / f"{case}_other{k}.png")
    zip_tree(folder / "_work", folder / "BrEaST-Lesions_USG-images_and_masks-Dec-15-2023.zip")
    # the real spreadsheet is xlsx; the converter does not parse it, so any bytes stand in
    (folder / "BrEaST-Lesions-USG-clinical-data-Dec-15-2023.xlsx").write_bytes(b"PK\x03\x04 stand-in spreadsheet")
