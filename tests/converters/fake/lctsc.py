"""Fake LCTSC as IDC serves it: per patient one CT and its RTSTRUCT (".simplified") with the five ROIs.

Contours are squares on pixel edges, so the rasterised masks are known exactly. The test patient's
RTSTRUCT spells the lungs "Lung R" / "lung l" (space, lower case), the variant a public loader handles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from tests.converters.fake._idc import SHAPE, instance_name, row_for, series_uuid, write_ct, write_fake_index
from tests.formats.test_rtstruct import make_rtstruct, square

ROIS = ("SpinalCord", "Lung_R", "Lung_L", "Heart", "Esophagus")
CLASSES = ("spinal_cord", "lung_right", "lung_left", "heart", "esophagus")
Z = [0.0, 3.0, 6.0, 9.0, 12.0]
# ROI -> (slice, (x0, y0, x1, y1)) squares in pixel coordinates (column, row)
BOXES = {"SpinalCord": [(1, (7, 12, 9, 14)), (2, (7, 12, 9, 14))], "Lung_R": [(2, (1, 3, 6, 10))],
         "Lung_L": [(2, (10, 3, 15, 10)), (3, (10, 4, 14, 9))], "Heart": [(3, (5, 6, 10, 11))],
         "Esophagus": [(1, (7, 8, 8, 10))]}


def expected_planes(roi: str) -> np.ndarray:
    """(k, row, col): the pixels whose centres lie inside the squares of ``roi``."""
    planes = np.zeros((len(Z), *SHAPE), bool)
    for k, (x0, y0, x1, y1) in BOXES[roi]:
        planes[k, int(np.ceil(y0)):int(np.ceil(y1)), int(np.ceil(x0)):int(np.ceil(x1))] = True
    return planes


def make_remote_files(root: Path) -> dict:
    rows, truth = [], {}
    for patient in ("LCTSC-Train-S1-001", "LCTSC-Test-S1-101"):
        study, frame = generate_uid(), generate_uid()
        ct_uid, (files,) = write_ct(root, patient, study, frame, Z, [1], "CT:RespCT  3.0  B30f  50% Ex", 1)
        tmp = root / "_rtstruct.dcm"
        names = dict(zip(ROIS, ROIS)) if "Train" in patient else {**dict(zip(ROIS, ROIS)), "Lung_R": "Lung R",
                                                                   "Lung_L": "lung l"}
        make_rtstruct(tmp, files, {names[roi]: [(k, square(*box)) for k, box in BOXES[roi]] for roi in ROIS})
        import pydicom

        ds = pydicom.dcmread(tmp)
        ds.PatientID, ds.PatientName, ds.SeriesDescription = patient, patient, ".simplified"
        folder = root / series_uuid(ds.SeriesInstanceUID)
        folder.mkdir()
        ds.save_as(folder / instance_name(ds.SOPInstanceUID), enforce_file_format=True)
        tmp.unlink()
        for uid, modality in ((ct_uid, "CT"), (str(ds.SeriesInstanceUID), "RTSTRUCT")):
            rows.append(row_for(root / series_uuid(uid), "lctsc", patient, uid, modality,
                                license_short_name="CC BY 3.0", source_DOI="10.7937/k9/tcia.2017.3r3fvz08"))
        truth[patient] = {"ct_files": files}
    write_fake_index(root, rows)
    return truth
