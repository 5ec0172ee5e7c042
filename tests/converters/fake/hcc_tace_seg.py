"""Fake HCC-TACE-Seg as IDC serves it: multi-phase CT + expert SEG + an AI SEG the card filters out.

HCC_001: "PRE LIVER" (one acquisition) and "LIVER 3 PHASE (AP)" with acquisitions 1-3 at the same
six positions; the expert SEG is drawn on acquisition 2, except one frame whose source reference
points at acquisition 1 at the same position (the SEG references SOPs across acquisitions).
HCC_002: one single-acquisition series and its SEG, imaged head-first prone (both in-plane axes
flipped). Segments as the real SEGs hold them (see the card): "Liver" is the liver WITHOUT the tumour and
the portal vein, "Mass" the tumour, HCC_001's SEG adds a "Necrosis" segment (part of the tumour, not of
"Mass"), then "Portal vein" and "Abdominal aorta". :func:`masks_for` gives the classes' truth (the whole
liver, the whole tumour), :func:`segments_for` what the SEG stores.

The CT shows the segmented anatomy (``_idc``): air, body, liver (the tumour inside it) near the
patient's right anterior corner, portal vein, aorta, each its own HU (:data:`HU`) plus
``offset(acquisition, k)`` = 10 * (acquisition - 1) + k, so the acquisition and slice a converted
voxel came from can be read off its value (the "PRE LIVER" series: 30 + k).
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
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

LABELS = ("Liver", "Mass", "Portal vein", "Abdominal aorta", "Necrosis")
TYPES = ("Liver", "Mass", "PortalVein", "AbdominalAorta", "Necrosis")  # SNOMED CT property types (pydicom codes.SCT)
CLASSES = ("liver", "liver_tumour", "portal_vein", "aorta")
Z = [0.0, 2.5, 5.0, 7.5, 10.0, 12.5]
BODY_HU = 0
HU = {"liver": 60, "liver_tumour": 120, "portal_vein": 170, "aorta": 220}  # painted in this order
# Polygons in patient mm (_idc.outline: (n, m) ~ between HFS columns n, n+1 and rows m, m+1; columns
# run to the patient's left, rows to posterior). Air around the body, one column on the patient's
# right, two on the left; an L-shaped liver in the right anterior corner with the tumour inside.
BODY = box(0, 1, 21, 17)
POLYGONS = {
    "liver": outline((1, 2), (11, 2), (11, 8), (6, 8), (6, 12), (1, 12)),
    "liver_tumour": box(3, 4, 6, 6),
    "portal_vein": box(11, 7, 13, 10),
    "aorta": box(14, 12, 16, 14),
}
SLICES = {"liver": range(1, 5), "liver_tumour": range(2, 4), "portal_vein": range(0, 3), "aorta": range(3, 6)}
# per patient seed: the tumour moves (1, 1) pixels, the vein 1 pixel towards the patient's left
SHIFTS = {"liver": (0.0, 0.0), "liver_tumour": (0.9, 0.7), "portal_vein": (0.9, 0.0), "aorta": (0.0, 0.0)}


def offset(acquisition: int, k: int) -> int:
    """HU added to every pixel of slice k of a 3-phase acquisition (acquisition 0: the "PRE LIVER" series)."""
    return 30 + k if acquisition == 0 else 10 * (acquisition - 1) + k


def polygon(name: str, k: int, seed: int) -> list | None:
    """Where ``name`` is on slice k of a patient (``seed`` moves the tumour and the vein), None when absent."""
    if k not in SLICES[name]:
        return None
    return [(x + SHIFTS[name][0] * seed, y + SHIFTS[name][1] * seed) for x, y in POLYGONS[name]]


def anatomy(grid: Grid, k: int, seed: int, z: float) -> tuple[np.ndarray, np.ndarray]:
    """HU plane (no phase offset) and the (rows, cols, 4) segment masks of slice k at ``z``."""
    hu, masks = paint(grid, z, [(BODY_HU, BODY)] + [(HU[c], polygon(c, k, seed)) for c in CLASSES])
    return hu, np.stack(masks[1:], axis=-1)


def masks_for(seed: int, grid: Grid = HFS, z_positions=Z) -> np.ndarray:
    """(k, rows, cols, 4) bool: the segments as drawn on ``grid``; the tumour inside the liver."""
    return np.stack([anatomy(grid, k, seed, z)[1] for k, z in enumerate(z_positions)])


def segments_for(mask: np.ndarray, necrosis: bool) -> np.ndarray:
    """(k, rows, cols, 4 or 5) what the SEG stores for the classes' truth ``mask`` (:func:`masks_for`): the liver
    without tumour and vein, and with ``necrosis`` the tumour's left half (in columns) as its own segment."""
    liver, tumour, vein, aorta = (mask[..., c] for c in range(4))
    dead = np.zeros_like(tumour)
    if necrosis:
        for k in range(tumour.shape[0]):
            cols = np.flatnonzero(tumour[k].any(axis=0))
            if cols.size:
                dead[k, :, :cols[cols.size // 2]] = tumour[k, :, :cols[cols.size // 2]]
    parts = [liver & ~tumour & ~vein, tumour & ~dead, vein, aorta] + ([dead] if necrosis else [])
    return np.stack(parts, axis=-1)


def write_seg(root: Path, patient_id: str, sources: list[Path], mask: np.ndarray, description: str,
              algorithm: str = "MANUAL") -> tuple[str, Path]:
    """``mask``: the segments in :data:`LABELS` order (4, or 5 with Necrosis)."""
    datasets = [pydicom.dcmread(p) for p in sources]
    descriptions = [hd.seg.SegmentDescription(
        segment_number=i + 1, segment_label=label, segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=getattr(codes.SCT, TYPES[i]), algorithm_type=algorithm,
        algorithm_identification=None if algorithm == "MANUAL" else hd.AlgorithmIdentificationSequence(
            name="ai", version="1", family=codes.cid7162.ArtificialIntelligence))
        for i, label in enumerate(LABELS[:mask.shape[-1]])]
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
    patients = [("HCC_001", [1, 2, 3], 0, HFS), ("HCC_002", [1], 1, HFP)]
    patients += [(f"HCC_{i:03d}", [1], i % 3, HFS) for i in range(3, 3 + extra_patients)]
    for patient, phases, seed, grid in patients:
        study, frame = generate_uid(), generate_uid()
        pre = [z + 50 for z in Z]
        pre_uid, _ = write_ct(root, patient, study, frame, pre, [1], "PRE LIVER", 2, grid=grid,
                              hu=lambda acq, k: anatomy(grid, k, seed, pre[k])[0] + offset(0, k))
        ct_uid, acqs = write_ct(root, patient, study, frame, Z, phases, "LIVER 3 PHASE (AP)", 4, grid=grid,
                                hu=lambda acq, k: anatomy(grid, k, seed, Z[k])[0] + offset(acq, k))
        drawn_on = 2 if len(phases) > 1 else 1
        sources = list(acqs[drawn_on - 1])
        if len(phases) > 1:
            sources[5] = acqs[0][5]  # one frame references acquisition 1 at the same position
        mask = masks_for(seed, grid)
        seg_uid, seg_path = write_seg(root, patient, sources, segments_for(mask, necrosis=patient == "HCC_001"),
                                      "Segmentation")
        ai_uid, _ = write_seg(root, patient, sources, segments_for(masks_for(2, grid), necrosis=False),
                              "AIMI liver-tumor AI segmentation", "AUTOMATIC")
        for uid, modality, extra in ((pre_uid, "CT", {}), (ct_uid, "CT", {}), (seg_uid, "SEG", {}),
                                     (ai_uid, "SEG", {"analysis_result_id": "bamf_aimi_annotations",
                                                      "source_DOI": "10.5281/zenodo.8345959"})):
            rows.append(row_for(root / series_uuid(uid), coll, patient, uid, modality, **{
                "source_DOI": "10.7937/tcia.5fna-0924", "license_short_name": "CC BY 4.0", **extra}))
        truth[patient] = {"mask": mask, "acquisition": drawn_on, "grid": grid, "seed": seed, "seg": seg_path,
                          "ct_uuid": series_uuid(ct_uid), "ai_uuid": series_uuid(ai_uid)}
    write_fake_index(root, rows)
    return truth
