"""Fake AMOS22 (Zenodo 7262581): ``amos22.zip`` with ``amos22/{imagesTr,labelsTr,imagesVa,labelsVa,imagesTs,
labelsTs}/amos_XXXX.nii.gz`` and ``amos22/dataset.json`` (label names with the release's typos), the macOS
``__MACOSX/amos22/.../._amos_XXXX.nii.gz`` AppleDouble tree the real zip carries (torch-em ``amos.py`` deletes
``__MACOSX`` after unzipping ``amos22.zip``), plus ``labeled_data_meta_0000_0599.csv`` beside it. CT images are int16 and MR images float32 (mixed dtypes,
as in the release); labels are uint8 label maps 0-15. ``labelsTs/`` is an empty folder. The columns of
``labeled_data_meta_0000_0599.csv`` are not in the evidence (the converter does not read it); the ones written
here are placeholders.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.converters.fake._common import appledouble, nifti_bytes, zip_members

SHAPE = (8, 7, 4)
# split folder suffix -> scan numbers (<= 500 CT, > 500 MR; 500 and 501 sit on the boundary)
CASES = {"Tr": (1, 500, 507), "Va": (8, 540), "Ts": (2, 501)}
LABELS = {"0": "background", "1": "spleen", "2": "right kidney", "3": "left kidney", "4": "gall bladder",
          "5": "esophagus", "6": "liver", "7": "stomach", "8": "arota", "9": "postcava", "10": "pancreas",
          "11": "right adrenal gland", "12": "left adrenal gland", "13": "duodenum", "14": "bladder",
          "15": "prostate/uterus"}


def label_map(number: int) -> np.ndarray:
    """Label ``1 + number % 15`` in a 2x2x1 box at i = number % 6, plus liver (6) on the patient's right
    (low i: the images' affine runs i towards the patient's left), so the QA sheets show it where a liver is."""
    labels = np.zeros(SHAPE, np.uint8)
    i = number % 6
    labels[i:i + 2, 0:2, 0] = 1 + number % 15
    labels[0:2, 3:5, 3] = 6
    return labels


def dataset_json() -> dict:
    def entry(folder, n, labelled=True):
        item = {"image": f"./images{folder}/amos_{n:04d}.nii.gz"}
        if labelled:
            item["label"] = f"./labels{folder}/amos_{n:04d}.nii.gz"
        return item

    return {"name": "AMOS", "description": "MICCAI2022 Multi-Modality Abdominal Multi-Organ Segmentation Challenge",
            "tensorImageSize": "3D", "reference": "SRIDB x CUHKSZ x HKU x SYSU x LGCHSZ x LGPHSZ",
            "licence": "CC-BY-SA 4.0", "release": "1.0 01/05/2022", "modality": {"0": "CT"}, "labels": dict(LABELS),
            "numTraining": len(CASES["Tr"]), "numValidation": len(CASES["Va"]), "numTest": len(CASES["Ts"]),
            "training": [entry("Tr", n) for n in CASES["Tr"]],
            "validation": [entry("Va", n) for n in CASES["Va"]],
            "test": [entry("Ts", n, False) for n in CASES["Ts"]]}


def make_remote_files(folder: Path) -> None:
    rng = np.random.default_rng(0)
    members = {"amos22/dataset.json": json.dumps(dataset_json(), indent=4).encode()}
    for split, numbers in CASES.items():
        for n in numbers:
            ct = n <= 500
            image = (rng.integers(-1024, 1500, SHAPE).astype(np.int16) if ct
                     else rng.uniform(0, 800, SHAPE).astype(np.float32))
            members[f"amos22/images{split}/amos_{n:04d}.nii.gz"] = nifti_bytes(image)
            members[f"__MACOSX/amos22/images{split}/._amos_{n:04d}.nii.gz"] = appledouble(f"amos_{n:04d}.nii.gz")
            if split != "Ts":
                members[f"amos22/labels{split}/amos_{n:04d}.nii.gz"] = nifti_bytes(label_map(n))
    zip_members(folder / "amos22.zip", members)
    # the empty labelsTs/ folder entry of the real archive
    import zipfile

    with zipfile.ZipFile(folder / "amos22.zip", "a") as zf:
        zf.writestr(zipfile.ZipInfo("amos22/labelsTs/", date_time=(2023, 1, 1, 0, 0, 0)), b"")
    rows = ["amos_id,Patient's Birth Date,Patient's Sex,Patient's Age,Manufacturer's Model Name,Manufacturer"]
    rows += [f"{n},19700101,F,050Y,Model,Vendor" for numbers in CASES.values() for n in numbers]
    (folder / "labeled_data_meta_0000_0599.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
