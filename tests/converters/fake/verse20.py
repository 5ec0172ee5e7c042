"""Fake VerSe'20 complete release: ``dataset-verse20{training,validation,test}.zip`` extracting to
``dataset-0Nsplit/{rawdata,derivatives}/sub-*/``, with the real file-name tags (no tag, ``dir-ax``,
``dir-iso``, ``split-verse290``), centroid JSON (direction entry, then label/X/Y/Z), a preview PNG, and
images in different orientations (a sagittal-stored and an axial-stored one).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from tests.converters.fake._common import nifti_bytes, zip_members

SHAPE = (6, 6, 9)
# zip -> (folder, [(subject, prefix)])
ZIPS = {
    "dataset-verse20training.zip": ("dataset-01training", [("sub-verse004", "sub-verse004"),
                                                           ("sub-gl003", "sub-gl003_dir-ax")]),
    "dataset-verse20validation.zip": ("dataset-02validation", [("sub-verse823", "sub-verse823_dir-iso")]),
    "dataset-verse20test.zip": ("dataset-03test", [("sub-verse506", "sub-verse506_split-verse290")]),
}
SAGITTAL = np.array([[0, 0, -1.0, 50], [1.0, 0, 0, -30], [0, 1.0, 0, 10], [0, 0, 0, 1]])
AXIAL = np.array([[-1.0, 0, 0, 50], [0, -1.0, 0, 40], [0, 0, 1.0, -200], [0, 0, 0, 1]])


def labels(prefix: str) -> np.ndarray:
    """Three stacked vertebrae along k: L1 (20), L2 (21) and T13 (28) or T12 (19)."""
    out = np.zeros(SHAPE, np.uint8)
    out[1:5, 1:5, 0:2] = 20
    out[1:5, 1:5, 3:5] = 21
    out[1:5, 1:5, 6:8] = 28 if "gl003" in prefix else 19
    return out


def centroids(prefix: str) -> list:
    return [{"direction": ["P", "I", "R"]}] + [
        {"label": int(v), "X": 2.5, "Y": 2.5, "Z": float(k)} for v, k in ((20, 0.5), (21, 3.5),
                                                                        (28 if "gl003" in prefix else 19, 6.5))]


def make_remote_files(folder: Path) -> None:
    rng = np.random.default_rng(0)
    for zip_name, (root, subjects) in ZIPS.items():
        members = {}
        for i, (subject, prefix) in enumerate(subjects):
            affine = AXIAL if "dir-ax" in prefix else SAGITTAL
            members[f"{root}/rawdata/{subject}/{prefix}_ct.nii.gz"] = nifti_bytes(
                rng.integers(-1000, 1500, SHAPE).astype(np.int16), affine)
            members[f"{root}/derivatives/{subject}/{prefix}_seg-vert_msk.nii.gz"] = nifti_bytes(labels(prefix), affine)
            members[f"{root}/derivatives/{subject}/{prefix}_seg-subreg_ctd.json"] = json.dumps(centroids(prefix)).encode()
            preview = io.BytesIO()
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(preview, format="PNG")
            members[f"{root}/derivatives/{subject}/{prefix}_seg-vert_snp.png"] = preview.getvalue()
        zip_members(folder / zip_name, members)
