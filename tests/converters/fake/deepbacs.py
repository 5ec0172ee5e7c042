"""Fake DeepBacs zips: training/ and test/ at the zip root, images and same-named instance TIFFs.

Images are 16-bit TIFFs (microscope data), instance labels 16-bit TIFFs with non-contiguous
ids, two cells touching. Names follow the mixed set's prefixes (JE2..., pos..., train_...).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.converters.fake._files2d import image_bytes, write_zip

SHAPE = (20, 24)
NAMES = {"training": ("JE2_001", "pos12_003"), "test": ("train_007",)}
FOLDERS = {"deepbacs_mixed": ("source", "target"), "deepbacs_ecoli_stationary": ("brightfield", "masks")}
ZIPS = {"deepbacs_mixed": "DeepBacs_Data_Segmentation_StarDist_MIXED_dataset.zip",
        "deepbacs_ecoli_stationary": "DeepBacs_Data_Segmentation_Ecoli_stationary_phase.zip"}


def cell_labels(name: str) -> np.ndarray:
    labels = np.zeros(SHAPE, np.uint16)
    k = len(name) % 3
    labels[2:6, 2 + k:8 + k] = 3
    labels[2:6, 8 + k:12 + k] = 17  # touches cell 3
    labels[12:18, 15:19] = 300
    return labels


def maker(card_id: str):
    def make_remote_files(folder: Path, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        image_folder, label_folder = FOLDERS[card_id]
        members = {}
        for split, names in NAMES.items():
            for name in names:
                members[f"{split}/{image_folder}/{name}.tif"] = \
                    image_bytes(rng.integers(0, 4000, SHAPE, dtype=np.uint16), "TIFF")
                members[f"{split}/{label_folder}/{name}.tif"] = image_bytes(cell_labels(name), "TIFF")
        write_zip(folder / ZIPS[card_id], members)
    return make_remote_files
