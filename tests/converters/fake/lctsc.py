"""Fake LCTSC as IDC serves it: per patient one CT and its RTSTRUCT (".simplified") with the five ROIs.

The CT shows the contoured anatomy (``_idc``): air, body, the two lungs, heart, esophagus and
spinal cord, each its own HU (:data:`HU`), painted from the same polygons (patient mm) that are
written as the contours. Their outlines lie between pixel centres, so the rasterised masks are
known exactly. The train patient is head-first supine, the test patient head-first prone (both
in-plane axes flipped); the test patient's RTSTRUCT spells the lungs "Lung R" / "lung l" (space,
lower case), the variant a public loader handles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

from tests.converters.fake._idc import (
    HFP,
    HFS,
    Grid,
    box,
    instance_name,
    outline,
    paint,
    row_for,
    series_uuid,
    write_ct,
    write_fake_index,
)
from tests.formats.test_rtstruct import make_rtstruct

ROIS = ("SpinalCord", "Lung_R", "Lung_L", "Heart", "Esophagus")
CLASSES = ("spinal_cord", "lung_right", "lung_left", "heart", "esophagus")
Z = [0.0, 3.0, 6.0, 9.0, 12.0]
BODY_HU = 0
HU = {"lung_right": -800, "lung_left": -760, "heart": 45, "esophagus": -60, "spinal_cord": 30}  # painted in order
# Polygons in patient mm (_idc.outline: (n, m) ~ between HFS columns n, n+1 and rows m, m+1; columns run
# to the patient's left, rows to posterior) and the slices k they are on.
BODY = box(0, 1, 21, 16)
POLYGONS = {
    "lung_right": outline((1, 3), (6, 3), (6, 6), (8, 6), (8, 12), (1, 12)),
    "lung_left": box(13, 4, 20, 13),
    "heart": box(9, 2, 13, 7),
    "esophagus": box(9, 9, 11, 11),
    "spinal_cord": box(10, 13, 12, 15),
}
SLICES = {"lung_right": range(1, 4), "lung_left": range(1, 5), "heart": range(2, 4), "esophagus": range(0, 3),
          "spinal_cord": range(0, 5)}


def polygon(name: str, k: int) -> list | None:
    return POLYGONS[name] if k in SLICES[name] else None


def anatomy(grid: Grid, k: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """HU plane of slice k and the (rows, cols) mask of every class on it."""
    hu, masks = paint(grid, Z[k], [(BODY_HU, BODY)] + [(value, polygon(c, k)) for c, value in HU.items()])
    return hu, dict(zip(HU, masks[1:]))


def expected_planes(roi: str, grid: Grid = HFS) -> np.ndarray:
    """(k, row, col): the pixels whose centres lie inside the contours of ``roi``."""
    name = CLASSES[ROIS.index(roi)]
    return np.stack([anatomy(grid, k)[1][name] for k in range(len(Z))])


def make_remote_files(root: Path) -> dict:
    rows, truth = [], {}
    for patient, grid in (("LCTSC-Train-S1-001", HFS), ("LCTSC-Test-S1-101", HFP)):
        study, frame = generate_uid(), generate_uid()
        ct_uid, (files,) = write_ct(root, patient, study, frame, Z, [1], "CT:RespCT  3.0  B30f  50% Ex", 1,
                                    hu=lambda acq, k: anatomy(grid, k)[0], grid=grid)
        tmp = root / "_rtstruct.dcm"
        names = dict(zip(ROIS, ROIS)) if "Train" in patient else {**dict(zip(ROIS, ROIS)), "Lung_R": "Lung R",
                                                                   "Lung_L": "lung l"}
        make_rtstruct(tmp, files, {names[roi]: [(k, POLYGONS[c]) for k in SLICES[c]] for roi, c in zip(ROIS, CLASSES)},
                      in_mm=True)
        ds = pydicom.dcmread(tmp)
        ds.PatientID, ds.PatientName, ds.SeriesDescription = patient, patient, ".simplified"
        folder = root / series_uuid(ds.SeriesInstanceUID)
        folder.mkdir()
        ds.save_as(folder / instance_name(ds.SOPInstanceUID), enforce_file_format=True)
        tmp.unlink()
        for uid, modality in ((ct_uid, "CT"), (str(ds.SeriesInstanceUID), "RTSTRUCT")):
            rows.append(row_for(root / series_uuid(uid), "lctsc", patient, uid, modality,
                                license_short_name="CC BY 3.0", source_DOI="10.7937/k9/tcia.2017.3r3fvz08"))
        truth[patient] = {"ct_files": files, "grid": grid}
    write_fake_index(root, rows)
    return truth
