"""Fake BUS-UCLM release: Mendeley's bundle 7fvgj4jsp7-1.zip as the authors' README downloads it.

It unzips to "BUS-UCLM Breast ultrasound lesion segmentation dataset/BUS-UCLM/" holding INFO.csv
(';', BOM), images/ and RGB masks/ with the same names.

ANFO_001 is a test-split patient with a malignant (red) lesion; MENE_002 a benign (green)
lesion on a colour Doppler frame; MENE_003 a normal image with an all-black mask and a
grey-looking RGB image carrying a faint yellow calliper mark (must stay RGB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.converters.fake._release import save_image, zip_tree

SHAPE = (22, 30)
ARCHIVE = "7fvgj4jsp7-1.zip"
ROOT = "BUS-UCLM Breast ultrasound lesion segmentation dataset/BUS-UCLM"  # inside the extracted bundle
CASES = {  # name: (label, benign box, malignant box)
    "ANFO_001.png": ("malignant", None, (slice(5, 12), slice(8, 20))),
    "MENE_002.png": ("benign", (slice(3, 9), slice(4, 14)), None),
    "MENE_003.png": ("normal", None, None),
}


def make_remote_files(folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    root = folder / "_work" / ROOT
    rows = ["Image;Label;Doppler;Marks"]
    for index, (name, (label, benign, malignant)) in enumerate(CASES.items()):
        grey = rng.integers(0, 200, SHAPE, dtype=np.uint8)
        image = np.stack([grey] * 3, axis=-1)
        if index == 1:
            image[2:6, 20:26] = (200, 30, 40)  # colour Doppler flow
        if index == 2:
            image[10, 10:14] = (230, 230, 0)  # yellow calliper mark
        save_image(image, root / "images" / name)
        mask = np.zeros(SHAPE + (3,), np.uint8)
        if benign:
            mask[benign] = (0, 255, 0)
        if malignant:
            mask[malignant] = (255, 0, 0)
        save_image(mask, root / "masks" / name)
        rows.append(f"{name};{label};{int(index == 1)};{int(index == 2)}")
    (root / "INFO.csv").write_bytes(("\n".join(rows) + "\n").encode("utf-8-sig"))
    zip_tree(folder / "_work", folder / ARCHIVE)
