"""Fake CT-ORG: every volume-N / labels-N pair as float32 NIfTI, like the TCIA folder.

Labels are float32 with integral values (the real encoding); case 2 puts one box of
each organ class, the others a liver box, so tests know where every class lies.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.converters.fake._common import write_nifti

SHAPE = (6, 5, 3)
# class id -> where case 2 puts it (i, j, k slices)
BOXES = {1: np.s_[0:2, 0:2, 0:1], 2: np.s_[3:5, 0:2, 0:1], 3: np.s_[0:2, 3:5, 1:2],
         4: np.s_[3:5, 3:5, 1:2], 5: np.s_[0:2, 0:2, 2:3], 6: np.s_[4:6, 3:5, 2:3]}


def label_map(n: int) -> np.ndarray:
    labels = np.zeros(SHAPE, dtype=np.float32)
    if n == 2:
        for value, box in BOXES.items():
            labels[box] = value
    else:
        labels[1:3, 1:3, n % 3] = 1.0
    return labels


def make_remote_files(folder: Path, cases=range(140)) -> None:
    rng = np.random.default_rng(0)
    for n in cases:
        image = rng.normal(0, 300, SHAPE).astype(np.float32)
        write_nifti(folder / f"volume-{n}.nii.gz", image, dtype=np.float32)
        write_nifti(folder / f"labels-{n}.nii.gz", label_map(n), dtype=np.float32)
