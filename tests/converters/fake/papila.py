"""Fake PAPILA v2 release: the zip's commit-named folder, JPEG fundus images and contour files.

Contours are written like np.savetxt writes them (``%.18e`` "x y" lines). RET002OD has both
experts; RET002OS only expert1 (a rater may lack an image).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.converters.fake._release import save_image, zip_tree

ROOT = "PapilaDB-PAPILA-17f8fa7746adb20275b5b6a0d99dc9dfe3007e9f"
SHAPE = (30, 40)  # rows, cols (real: 1934 x 2576)
# image -> expert -> structure -> (x0, y0, x1, y1) rectangle given as 4 corner points (pixel centres)
CONTOURS = {
    "RET002OD": {"exp1": {"disc": (10, 8, 22, 20), "cup": (13, 11, 18, 16)},
                 "exp2": {"disc": (11, 9, 23, 21), "cup": (14, 12, 19, 17)}},
    "RET002OS": {"exp1": {"disc": (20, 5, 30, 15), "cup": (22, 7, 27, 12)}},
}


def rectangle_mask(box) -> np.ndarray:
    x0, y0, x1, y1 = box
    mask = np.zeros(SHAPE, bool)
    mask[y0:y1 + 1, x0:x1 + 1] = True  # vertices on pixel centres, outline included
    return mask


def make_remote_files(folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    root = folder / "_work" / ROOT
    for image, experts in CONTOURS.items():
        save_image(rng.integers(0, 256, SHAPE + (3,), dtype=np.uint8), root / "FundusImages" / f"{image}.jpg")
        for expert, structures in experts.items():
            for structure, (x0, y0, x1, y1) in structures.items():
                points = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)
                path = root / "ExpertsSegmentations" / "Contours" / f"{image}_{structure}_{expert}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savetxt(path, points)
    (root / "ClinicalData").mkdir()
    (root / "ClinicalData" / "patient_data_od.xlsx").write_bytes(b"PK\x03\x04 stand-in spreadsheet")
    zip_tree(folder / "_work", folder / f"{ROOT}.zip")
