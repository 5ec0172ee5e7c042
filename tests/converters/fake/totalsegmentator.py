"""Fake TotalSegmentator CT releases: one zip laid out like the real v2.0.1 / v3.0.0 archives.

v2.0.1 (``Totalsegmentator_dataset_v201.zip``) has no top folder, v3.0.0 (``Totalsegmentator_dataset_v300.zip``)
has ``Totalsegmentator_dataset_v300/``; inside: ``meta.csv`` (';'-separated, UTF-8 BOM, the real 11 columns)
and ``sXXXX/ct.nii.gz`` (int16, RAS, 1.5 mm) plus ``sXXXX/segmentations/<structure>.nii.gz`` for all 117
structures (uint8 0/1; most empty, as out-of-view structures are in the real release; vertebra files
mixed-case). One case's masks carry only a qform (sform code 0), as some real files do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omnimedseg.registry import load_registry
from tests.converters.fake._common import nifti_bytes, zip_members

SHAPE = (6, 5, 4)
AFFINE = np.diag([1.5, 1.5, 1.5, 1.0])
META_HEADER = ("image_id;age;gender;institute;study_type;split;manufacturer;scanner_model;kvp;pathology;"
               "pathology_location")
CASES = {"v2": {"s0000": "train", "s0011": "val", "s0864": "test"}, "v3": {"s0000": "train", "s1403": "test"}}
ZIPS = {"v2": ("Totalsegmentator_dataset_v201.zip", ""),
        "v3": ("Totalsegmentator_dataset_v300.zip", "Totalsegmentator_dataset_v300/")}
# raw file stem -> box (i, j, k) where every case has that structure; the rest are empty. The affine is RAS
# (i -> patient right, j -> anterior, k -> superior), so the boxes sit where the anatomy is: liver right and
# anterior, the vertebra in the middle at the back, the first left rib left and on top (QA sheets look right).
BOXES = {"liver": np.s_[4:6, 2:5, 0:2], "rib_left_1": np.s_[0:2, 2:4, 3:4]}
VERTEBRA = {"v2": "vertebrae_L5", "v3": "vertebrae_L6"}
VERTEBRA_BOX = np.s_[2:4, 0:2, 1:3]


def raw_stems(version: str) -> list[str]:
    """The release's file stems: card class names with the vertebra levels upper-case again."""
    card = load_registry().get(f"totalsegmentator_{version}")
    return [n if not n.startswith("vertebrae_") else "vertebrae_" + n.split("_")[1].upper() for n in card.class_names]


def expected_mask(version: str, stem: str) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    box = BOXES.get(stem, VERTEBRA_BOX if stem == VERTEBRA[version] else None)
    if box is not None:
        mask[box] = True
    return mask


def make_release(folder: Path, version: str) -> None:
    rng = np.random.default_rng(0)
    zip_name, top = ZIPS[version]
    rows = [META_HEADER]
    members = {}
    for i, (case, split) in enumerate(CASES[version].items()):
        rows.append(f"{case};{60 + i};{'m' if i % 2 else 'f'};A;ct thorax-abdomen;{split};Siemens;"
                    f"SOMATOM Definition Flash;120;no_pathology;")
        ct = rng.integers(-1024, 1500, SHAPE).astype(np.int16)
        members[f"{top}{case}/ct.nii.gz"] = nifti_bytes(ct, AFFINE)
        for stem in raw_stems(version):
            members[f"{top}{case}/segmentations/{stem}.nii.gz"] = nifti_bytes(
                expected_mask(version, stem).astype(np.uint8), AFFINE, sform=(i != 1))
    members[f"{top}meta.csv"] = ("\ufeff" + "\n".join(rows) + "\n").encode("utf-8")
    zip_members(folder / zip_name, members)


def make_remote_files_v2(folder: Path) -> None:
    make_release(folder, "v2")


def make_remote_files_v3(folder: Path) -> None:
    make_release(folder, "v3")
