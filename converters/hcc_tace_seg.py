"""HCC-TACE-Seg from Imaging Data Commons (registry/hcc_tace_seg.toml).

Raw layout (the IDC bucket, ``s3://idc-open-data/<crdc_series_uuid>/<instance>.dcm``)::

    <uuid>/<uuid>.dcm ...   one folder per series: CT series (pre-contrast, "LIVER 3 PHASE" ...)
    <uuid>/<uuid>.dcm       one DICOM-SEG per patient ("Segmentation")

One case per ground-truth SEG. Its image is the CT acquisition it references: the multi-phase
series is split by AcquisitionNumber and the acquisition holding the SEG's referenced SOP
instances is chosen (``formats.dicom_refs``), never a folder or a series by position. AI SEGs
(IDC analysis result ``bamf_aimi_annotations``, https://doi.org/10.5281/zenodo.8345959) are not
downloaded (card record filter) and are skipped by description when a full IDC copy is given
with ``--raw``. Segments -> classes by the explicit table below, on the segment label or its
coded property type (SegmentedPropertyTypeCodeSequence CodeMeaning); a class is the union of
its segments, and a segment the table does not name is an error; evidence in the card.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.dicom_refs import (
    read_referenced_image,
    read_seg_mask,
    referenced_image_files,
    series_folders,
)

# card class -> the segments whose union it is: SegmentLabel values or coded property type meanings, case-insensitive.
# The released "Liver" segment is the liver WITHOUT the tumour and the portal vein (RadiomicsHub README), and some
# SEGs add a "Necrosis" segment: MIC-DKFZ/radioactive (d920_d921_hcc_tace_liver.py @26a717ba, run on the real SEGs)
# builds the tumour from Mass + Necrosis and the whole liver from Liver + Mass + Necrosis + Portal vein; so do we.
TUMOUR = ("Mass", "Liver tumor", "Necrosis")
SEGMENT_LABELS = {
    "liver": ("Liver", "Portal vein", *TUMOUR),
    "liver_tumour": TUMOUR,
    "portal_vein": ("Portal vein",),
    "aorta": ("Abdominal aorta", "Aorta"),
}
KNOWN_SEGMENTS = tuple(dict.fromkeys(name for names in SEGMENT_LABELS.values() for name in names))
# SeriesDescription of the AI-generated SEG series IDC adds (analysis_result_id bamf_aimi_annotations)
AI_SEG_DESCRIPTIONS = ("AIMI liver-tumor AI segmentation", "AIMI liver-tumor radiologist 7 corrected segmentation")


class HccTaceSeg(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        folders = series_folders(raw_dir)
        segs = sorted((f for f in folders if f.kind == "seg" and f.description not in AI_SEG_DESCRIPTIONS),
                      key=lambda f: (f.patient_id, f.series_uid))
        per_patient: dict[str, int] = {}
        for seg in segs:
            per_patient[seg.patient_id] = per_patient.get(seg.patient_id, 0) + 1
        for seg in segs:
            paths = (seg.files[0], *referenced_image_files(seg, folders))
            case_id = seg.patient_id if per_patient[seg.patient_id] == 1 else f"{seg.patient_id}_{seg.path.name}"
            yield Case(
                case_id=case_id,
                image=Source(paths, read_referenced_image),
                split="all",  # the collection defines no split
                masks={name: Source(paths, partial(read_seg_mask, segments=labels, known=KNOWN_SEGMENTS))
                       for name, labels in SEGMENT_LABELS.items()},
                meta={"patient_id": seg.patient_id, "seg_series_uid": seg.series_uid},
            )
