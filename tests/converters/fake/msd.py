"""Fake Medical Segmentation Decathlon tars: ``TaskNN_Name.tar`` (uncompressed tar, as on the bucket) holding
``TaskNN_Name/dataset.json`` with the release's own label and modality spellings, ``imagesTr/``, ``labelsTr/``
and ``imagesTs/``, plus an AppleDouble ``._<case>.nii.gz`` companion beside every NIfTI, as in the real tars.
Task01 and Task05 images are 4D (x, y, z, channel) float32; the others 3D (CT int16, MRI float32).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.converters.fake._common import appledouble, nifti_bytes, tar_members

SHAPE = (6, 5, 4)
# task -> (case name pattern, raw labels, raw modality)
TASKS = {
    "Task01_BrainTumour": ("BRATS_{:03d}", {"1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
                           {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}),
    "Task02_Heart": ("la_{:03d}", {"1": "left atrium"}, {"0": "MRI"}),
    "Task03_Liver": ("liver_{}", {"1": "liver", "2": "cancer"}, {"0": "CT"}),
    "Task04_Hippocampus": ("hippocampus_{:03d}", {"1": "Anterior", "2": "Posterior"}, {"0": "MRI"}),
    "Task05_Prostate": ("prostate_{:02d}", {"1": "PZ", "2": "TZ"}, {"0": "T2", "1": "ADC"}),
    "Task06_Lung": ("lung_{:03d}", {"1": "cancer"}, {"0": "CT"}),
    "Task07_Pancreas": ("pancreas_{:03d}", {"1": "pancreas", "2": "cancer"}, {"0": "CT"}),
    "Task08_HepaticVessel": ("hepaticvessel_{:03d}", {"1": "Vessel", "2": "Tumour"}, {"0": "CT"}),
    "Task09_Spleen": ("spleen_{}", {"1": "spleen"}, {"0": "CT"}),
    "Task10_Colon": ("colon_{:03d}", {"1": "colon cancer primaries"}, {"0": "CT"}),
}
TRAIN, TEST = (3, 7), (1,)


def label_map(task: str, n: int) -> np.ndarray:
    """Each label value v in a 1-voxel-thick slab at i = v - 1, j >= n % 3 (so cases differ)."""
    labels = np.zeros(SHAPE, np.uint8)
    for value in range(1, len(TASKS[task][1]) + 1):
        labels[value - 1, n % 3:, 1:3] = value
    return labels


def channel_values(channel: int, n: int) -> np.ndarray:
    """100 * (channel + 1) + n plus a ramp (a constant channel would be refused as empty) along axis
    ``channel % 3``, reversed from channel 3 on: channels differ in pattern, not only in offset, so the
    QA channels sheet (each tile windowed on its own) shows which channel is which."""
    axis = channel % 3
    ramp = np.arange(SHAPE[axis], dtype=np.float32)
    ramp = (ramp[::-1] if channel >= 3 else ramp).reshape([-1 if a == axis else 1 for a in range(3)])
    return (100.0 * (channel + 1) + n + ramp + np.zeros(SHAPE)).astype(np.float32)


def image(task: str, n: int) -> np.ndarray:
    """4D images hold channel c as ``channel_values(c, n)``, so each channel is recognisable."""
    channels = len(TASKS[task][2])
    if channels > 1:
        return np.stack([channel_values(c, n) for c in range(channels)], axis=-1)
    ct = TASKS[task][2]["0"] == "CT"
    rng = np.random.default_rng(n)
    return rng.integers(-1000, 1000, SHAPE).astype(np.int16) if ct else rng.uniform(0, 500, SHAPE).astype(np.float32)


def dataset_json(task: str) -> dict:
    pattern, labels, modality = TASKS[task]
    return {"name": task.split("_")[1], "description": "fake", "reference": "fake", "licence": "CC-BY-SA 4.0",
            "release": "1.0 04/05/2018", "tensorImageSize": "4D" if len(modality) > 1 else "3D",
            "modality": dict(modality), "labels": {"0": "background", **labels},
            "numTraining": len(TRAIN), "numTest": len(TEST),
            "training": [{"image": f"./imagesTr/{pattern.format(n)}.nii.gz",
                          "label": f"./labelsTr/{pattern.format(n)}.nii.gz"} for n in TRAIN],
            "test": [f"./imagesTs/{pattern.format(n)}.nii.gz" for n in TEST]}


def make_task(folder: Path, task: str) -> None:
    pattern = TASKS[task][0]
    members = {f"{task}/dataset.json": json.dumps(dataset_json(task), indent=4).encode()}
    for n in TRAIN:
        members[f"{task}/imagesTr/{pattern.format(n)}.nii.gz"] = nifti_bytes(image(task, n))
        members[f"{task}/labelsTr/{pattern.format(n)}.nii.gz"] = nifti_bytes(label_map(task, n))
    for n in TEST:
        members[f"{task}/imagesTs/{pattern.format(n)}.nii.gz"] = nifti_bytes(image(task, n))
    for name in [m for m in members if m.endswith(".nii.gz")]:
        folder_name, file_name = name.rsplit("/", 1)
        members[f"{folder_name}/._{file_name}"] = appledouble(file_name)
    tar_members(folder / f"{task}.tar", members)


def remote_files(task: str):
    """A ``make_remote_files`` for one task (the harness calls it with the folder)."""
    return lambda folder: make_task(folder, task)
