"""Fake BUS-BRA release: BUSBRA.zip with Images/, Masks/, bus_data.csv and the fold files.

Column sets follow the real CSVs as public loaders read them; ``BBOX`` holds a quoted list
(commas inside quotes), as in the real file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.converters.fake._release import save_image, zip_tree

# (ID, patient, pathology, fold); the two views of patient 1 share a fold
CASES = (("bus_0001-l", "1", "benign", 1), ("bus_0001-r", "1", "benign", 1), ("bus_0002-l", "2", "malignant", 2),
         ("bus_0003-s", "3", "benign", 3), ("bus_0004-l", "4", "malignant", 4), ("bus_0005-r", "5", "benign", 5))
SHAPE = (24, 36)


def lesion_box(index: int) -> tuple[slice, slice]:
    return slice(4 + index, 12 + index), slice(6, 20 + index)


def make_remote_files(folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    root = folder / "_work" / "BUSBRA"
    data = ["ID,Case,Histology,Pathology,BIRADS,Device,Width,Height,Side,BBOX"]
    # the fold files also carry the inner train/validation flags valid_1..valid_K (the authors' seg_partitions.m)
    five = ["ID,Pathology,kFold," + ",".join(f"valid_{k}" for k in range(1, 6))]
    ten = ["ID,Pathology,kFold," + ",".join(f"valid_{k}" for k in range(1, 11))]
    for index, (image_id, patient, pathology, fold) in enumerate(CASES):
        save_image(rng.integers(0, 256, SHAPE, dtype=np.uint8), root / "Images" / f"{image_id}.png")
        mask = np.zeros(SHAPE, np.uint8)
        mask[lesion_box(index)] = 255
        save_image(mask, root / "Masks" / f"mask_{image_id[4:]}.png")
        data.append(f'{image_id},{patient},Fibroadenoma,{pathology},{3 + index % 3},GE Logiq 5,{SHAPE[1]},{SHAPE[0]},'
                    f'{"left" if image_id.endswith("-l") else "right"},"[6, {4 + index}, 14, 8]"')
        five.append(f"{image_id},{pathology},{fold}," + ",".join("1" if k != fold else "0" for k in range(1, 6)))
        ten.append(f"{image_id},{pathology},{2 * fold}," + ",".join("1" for _ in range(1, 11)))
    for name, lines in (("bus_data.csv", data), ("5-fold-cv.csv", five), ("10-fold-cv.csv", ten)):
        (root / name).write_text("\n".join(lines) + "\n")
    zip_tree(folder / "_work", folder / "BUSBRA.zip")
