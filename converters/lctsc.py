"""LCTSC from Imaging Data Commons (registry/lctsc.toml).

Raw layout (the IDC bucket, ``s3://idc-open-data/<crdc_series_uuid>/<instance>.dcm``)::

    <uuid>/<uuid>.dcm ...   the planning CT of a patient
    <uuid>/<uuid>.dcm       its RTSTRUCT (".simplified"), ROIs SpinalCord, Lung_R, Lung_L, Heart, Esophagus

One case per RTSTRUCT. Its CT is found by the Series Instance UID it references and checked by
Frame of Reference and referenced SOP instances (``formats.dicom_refs``), never by folder.
ROI names -> classes by the explicit table below; splits from the PatientID
(``LCTSC-Train-*`` / ``LCTSC-Test-*``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.dicom_refs import (
    read_referenced_image,
    read_rtstruct_mask,
    referenced_image_files,
    series_folders,
)

# card class -> ROIName values that mean it (compared case-insensitively; evidence in the card)
ROI_NAMES = {
    "spinal_cord": ("SpinalCord",),
    # "Lung R" / "Lung L": a public LCTSC loader replaces spaces by underscores before matching these names
    "lung_right": ("Lung_R", "Lung R"),
    "lung_left": ("Lung_L", "Lung L"),
    "heart": ("Heart",),
    "esophagus": ("Esophagus",),
}
SPLITS = {"LCTSC-Train-": "train", "LCTSC-Test-": "test"}


class Lctsc(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        folders = series_folders(raw_dir)
        for rts in sorted((f for f in folders if f.kind == "rtstruct"), key=lambda f: (f.patient_id, f.series_uid)):
            split = next((s for prefix, s in SPLITS.items() if rts.patient_id.startswith(prefix)), None)
            problem = None if split else (f"{rts.files[0]}: PatientID {rts.patient_id!r}; expected LCTSC-Train-* or "
                                          f"LCTSC-Test-* (the split is taken from it)")  # that case fails, not all
            paths = (rts.files[0], *referenced_image_files(rts, folders))
            yield Case(
                case_id=rts.patient_id,
                image=Source(paths, read_referenced_image),
                split=split or "unknown",
                masks={name: Source(paths, partial(read_rtstruct_mask, rois=rois)) for name, rois in ROI_NAMES.items()},
                meta={"patient_id": rts.patient_id, "rtstruct_series_uid": rts.series_uid},
                problem=problem,
            )
