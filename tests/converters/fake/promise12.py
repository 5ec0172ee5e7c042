"""Fake PROMISE12 (Zenodo 8026660): three zips that extract to ``training_data/``, ``test_data/`` and
``livechallenge_test_data/`` holding ``CaseNN.mhd`` + ``CaseNN.raw`` and ``CaseNN_segmentation.mhd`` + ``.raw``
(MetaImage header plus separate data file, as released), with AppleDouble ``._CaseNN.mhd`` debris in the
training zip, plus ``LICENSE.TXT``. Images are int16 (training) and uint16 (test), masks uint8 0/1.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from tests.converters.fake._common import appledouble, write_itk, zip_folder

SHAPE_KJI = (3, 8, 8)
CASES = {"training_data": ("Case00", "Case01"), "test_data": ("Case00",), "livechallenge_test_data": ("Case00",)}
SPACING = (0.625, 0.625, 3.6)


def mask_kji(folder: str, case: str) -> np.ndarray:
    mask = np.zeros(SHAPE_KJI, np.uint8)
    offset = len(folder) % 3 + int(case[-1])
    mask[1, 2 + offset:5 + offset, 2:5] = 1
    return mask


def make_remote_files(folder: Path) -> None:
    rng = np.random.default_rng(0)
    work = folder / "_work"
    for split, cases in CASES.items():
        for case in cases:
            dtype = np.int16 if split == "training_data" else np.uint16
            write_itk(work / split / f"{case}.mhd", rng.integers(0, 900, SHAPE_KJI).astype(dtype), SPACING)
            write_itk(work / split / f"{case}_segmentation.mhd", mask_kji(split, case), SPACING)
        if split == "training_data":
            (work / split / "._Case00.mhd").write_bytes(appledouble("Case00.mhd"))
        zip_folder(folder / f"{split}.zip", work / split, f"{split}/")
    (folder / "LICENSE.TXT").write_text("(licence text of the record; not reproduced in this fake)\n")
    shutil.rmtree(work)
