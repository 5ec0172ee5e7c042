"""Fake HCC-TACE-Seg as IDC serves it: multi-phase CT + expert SEG + an AI SEG the card filters out.

HCC_001: "PRE LIVER" (one acquisition) and "LIVER 3 PHASE (AP)" with acquisitions 1-3 at the same
six positions; the expert SEG is drawn on acquisition 2, except one frame whose source reference
points at acquisition 1 at the same position (the SEG references SOPs across acquisitions).
HCC_002: one single-acquisition series and its SEG. Segment labels: Liver, Mass, Portal vein,
Abdominal aorta (see the card). Pixel values: 100 * AcquisitionNumber + slice index - 1024 HU.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from tests.converters.fake._idc import SHAPE, instance_name, row_for, series_uuid, write_ct, write_fake_index

LABELS = ("Liver", "Mass", "Portal vein", "Abdominal aorta")
TYPES = ("Liver", "Mass", "PortalVein", "AbdominalAorta")  # SNOMED CT property types (pydicom codes.SCT)
CLASSES = ("liver", "liver_tumour", "portal_vein", "aorta")
Z = [0.0, 2.5, 5.0, 7.5, 10.0, 12.5]


def masks_for(seed: int) -> np.ndarray:
    """(k, rows, cols, 4) bool: a box per segment, shifted by ``seed``; the tumour inside the liver."""
    m = np.zeros((len(Z), *SHAPE, 4), bool)
    m[1:5, 2 + seed:10, 3:12, 0] = True
    m[2:4, 4 + seed:6 + seed, 5:7, 1] = True
    m[0:3, 11:13, 8 + seed:10 + seed, 2] = True
    m[3:6, 13:15, 1:3, 3] = True
    return m


def write_seg(root: Path, patient_id: str, sources: list[Path], mask: np.ndarray, description: str,
              algorithm: str = "MANUAL") -> tuple[str, Path]:
    datasets = [pydicom.dcmread(p) for p in sources]
    descriptions = [hd.seg.SegmentDescription(
        segment_number=i + 1, segment_label=label, segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=getattr(codes.SCT, TYPES[i]), algorithm_type=algorithm,
        algorithm_identification=None if algorithm == "MANUAL" else hd.AlgorithmIdentificationSequence(
            name="ai", version="1", family=codes.cid7162.ArtificialIntelligence))
        for i, label in enumerate(LABELS)]
    series_uid = generate_uid()
    seg = hd.seg.Segmentation(
        source_images=datasets, pixel_array=mask, segmentation_type="BINARY", segment_descriptions=descriptions,
        series_instance_uid=series_uid, series_number=300, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="omnimedseg tests", manufacturer_model_name="tests", software_versions="1",
        device_serial_number="1", series_description=description)
    folder = root / series_uuid(series_uid)
    folder.mkdir(parents=True)
    path = folder / instance_name(seg.SOPInstanceUID)
    seg.save_as(path)
    return series_uid, path


def make_remote_files(root: Path, extra_patients: int = 0) -> dict:
    """Write the bucket tree + idc_index.csv; return what the test checks.

    ``extra_patients``: more single-phase patients (HCC_003 ...), for tests that need a collection
    where one case is a small part of the release (``download --sample``)."""
    rows, truth = [], {}
    coll = "hcc_tace_seg"
    patients = [("HCC_001", [1, 2, 3], 0), ("HCC_002", [1], 1)]
    patients += [(f"HCC_{i:03d}", [1], i % 3) for i in range(3, 3 + extra_patients)]
    for patient, phases, seed in patients:
        study, frame = generate_uid(), generate_uid()
        pre_uid, _ = write_ct(root, patient, study, frame, [z + 50 for z in Z], [1], "PRE LIVER", 2, base_value=500)
        ct_uid, acqs = write_ct(root, patient, study, frame, Z, phases, "LIVER 3 PHASE (AP)", 4)
        drawn_on = 2 if len(phases) > 1 else 1
        sources = list(acqs[drawn_on - 1])
        if len(phases) > 1:
            sources[5] = acqs[0][5]  # one frame references acquisition 1 at the same position
        mask = masks_for(seed)
        seg_uid, seg_path = write_seg(root, patient, sources, mask, "Segmentation")
        ai_uid, _ = write_seg(root, patient, sources, masks_for(2), "AIMI liver-tumor AI segmentation", "AUTOMATIC")
        for uid, modality, extra in ((pre_uid, "CT", {}), (ct_uid, "CT", {}), (seg_uid, "SEG", {}),
                                     (ai_uid, "SEG", {"analysis_result_id": "bamf_aimi_annotations",
                                                      "source_DOI": "10.5281/zenodo.8345959"})):
            rows.append(row_for(root / series_uuid(uid), coll, patient, uid, modality, **{
                "source_DOI": "10.7937/tcia.5fna-0924", "license_short_name": "CC BY 4.0", **extra}))
        truth[patient] = {"mask": mask, "acquisition": drawn_on, "seg": seg_path, "ct_uuid": series_uuid(ct_uid),
                          "ai_uuid": series_uuid(ai_uid)}
    write_fake_index(root, rows)
    return truth
