"""Fake SPIDER (Zenodo 10159290): ``images.zip`` / ``masks.zip`` holding ``images/<n>_<seq>.mha`` and
``masks/<n>_<seq>.mha`` (a sagittal direction matrix with permuted axes), ``overview.csv`` and
``radiological_gradings.csv``. Masks use the real encoding: vertebrae 1-25 (partial 101-125),
canal 100, discs 201-225; images are uint16 for T1/T2 and int16 for T2-SPACE (mixed dtypes).
``overview.csv`` has the two columns the converter reads (``new_file_name`` [S] and ``subset``; their values
are not verified on the real file) plus placeholder columns; ``radiological_gradings.csv`` is a placeholder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.converters.fake._common import write_itk, zip_folder

SHAPE_KJI = (4, 10, 6)  # SimpleITK order (k, j, i)
SERIES = {"1_t1": "training", "1_t2": "training", "2_t2_SPACE": "validation"}
# sagittal: image i runs along patient y (A->P), j along -z (S->I), k along x (R->L)
SAGITTAL = (0, 0, 1, 1, 0, 0, 0, -1, 0)


def mask_kji(stem: str) -> np.ndarray:
    labels = np.zeros(SHAPE_KJI, np.uint8)
    labels[1:3, 0:2, 1:4] = 1      # L5
    labels[1:3, 2:3, 1:4] = 201    # L5/S1 disc
    labels[1:3, 3:5, 1:4] = 2      # L4
    labels[1:3, 5:6, 1:4] = 202
    labels[1:3, 9:10, 1:4] = 106   # partially visible vertebra at the edge
    labels[1:3, 0:10, 5] = 100     # canal
    if stem.endswith("t2"):
        labels[3, 0:10, 5] = 0     # a slice without canal
    return labels


def make_remote_files(folder: Path) -> None:
    rng = np.random.default_rng(0)
    work = folder / "_work"
    for stem in SERIES:
        dtype = np.int16 if "SPACE" in stem else np.uint16
        image = rng.integers(0, 2000, SHAPE_KJI).astype(dtype)
        spacing = (0.9, 0.47, 0.47) if "SPACE" in stem else (0.6, 0.6, 3.3)
        write_itk(work / "images" / f"{stem}.mha", image, spacing, (10.0, -20.0, 30.0), SAGITTAL)
        write_itk(work / "masks" / f"{stem}.mha", mask_kji(stem), spacing, (10.0, -20.0, 30.0), SAGITTAL)
    zip_folder(folder / "images.zip", work / "images", "images/")
    zip_folder(folder / "masks.zip", work / "masks", "masks/")
    rows = ["new_file_name,subset,num_vertebrae,num_discs,sex,age"]
    rows += [f"{stem},{subset},3,2,F,50" for stem, subset in SERIES.items()]
    (folder / "overview.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "radiological_gradings.csv").write_text("Patient,IVD label,Modic,Pfirrman grade\n1,1,0,3\n",
                                                       encoding="utf-8")
    import shutil

    shutil.rmtree(work)
