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

SHAPE = (6, 6, 9)  # axial-stored (L, P, S); a sagittal-stored volume is (6, 9, 6) (P, I, R)
# zip -> (folder, [(subject, prefix)])
ZIPS = {
    "dataset-verse20training.zip": ("dataset-01training", [("sub-verse004", "sub-verse004"),
                                                           ("sub-gl003", "sub-gl003_dir-ax")]),
    "dataset-verse20validation.zip": ("dataset-02validation", [("sub-verse823", "sub-verse823_dir-iso")]),
    "dataset-verse20test.zip": ("dataset-03test", [("sub-verse506", "sub-verse506_split-verse290")]),
}
# sagittal-stored like VerSe's "P I R" volumes: i -> posterior, j -> inferior, k -> right (the slice axis)
SAGITTAL = np.array([[0, 0, 1.0, -50], [-1.0, 0, 0, 30], [0, -1.0, 0, 10], [0, 0, 0, 1]])
AXIAL = np.array([[-1.0, 0, 0, 50], [0, -1.0, 0, 40], [0, 0, 1.0, -200], [0, 0, 0, 1]])


def shape(prefix: str) -> tuple[int, int, int]:
    return SHAPE if "dir-ax" in prefix else (SHAPE[0], SHAPE[2], SHAPE[1])


def labels(prefix: str) -> np.ndarray:
    """Three vertebrae stacked head to foot as in a spine: T13 (28) or T12 (19) on top, then L1 (20), L2 (21).

    They lie along the volume's superior-inferior axis: k (superior) when axial-stored, j (inferior) when
    sagittal-stored, so the QA sheets show a spine, not vertebrae side by side.
    """
    out = np.zeros(SHAPE, np.uint8)
    out[1:5, 1:5, 0:2] = 21
    out[1:5, 1:5, 3:5] = 20
    out[1:5, 1:5, 6:8] = 28 if "gl003" in prefix else 19
    return out if "dir-ax" in prefix else np.ascontiguousarray(out.swapaxes(1, 2)[:, ::-1])


def centroids(prefix: str) -> list:
    """Voxel centres of the vertebrae (the release's direction entry first)."""
    direction = ["L", "P", "S"] if "dir-ax" in prefix else ["P", "I", "R"]
    mask = labels(prefix)
    return [{"direction": direction}] + [
        dict(zip(("label", "X", "Y", "Z"), (int(v), *(float(c) for c in np.argwhere(mask == v).mean(0)))))
        for v in np.unique(mask) if v]


def make_remote_files(folder: Path) -> None:
    rng = np.random.default_rng(0)
    for zip_name, (root, subjects) in ZIPS.items():
        members = {}
        for i, (subject, prefix) in enumerate(subjects):
            affine = AXIAL if "dir-ax" in prefix else SAGITTAL
            members[f"{root}/rawdata/{subject}/{prefix}_ct.nii.gz"] = nifti_bytes(
                rng.integers(-1000, 1500, shape(prefix)).astype(np.int16), affine)
            members[f"{root}/derivatives/{subject}/{prefix}_seg-vert_msk.nii.gz"] = nifti_bytes(labels(prefix), affine)
            members[f"{root}/derivatives/{subject}/{prefix}_seg-subreg_ctd.json"] = json.dumps(centroids(prefix)).encode()
            preview = io.BytesIO()
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(preview, format="PNG")
            members[f"{root}/derivatives/{subject}/{prefix}_seg-vert_snp.png"] = preview.getvalue()
        zip_members(folder / zip_name, members)
