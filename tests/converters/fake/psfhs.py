"""Fake PSFHS release: PSFHS.zip with image_mha/ and label_mha/ MetaImages like the real ones.

Image 03744 is a 2D grey MHA; 03745 is stored as 3 x rows x cols (equal channels as slices,
like the FH-PS-AOP-style files); 03746 has differing channels (kept as RGB). Labels are 2D
uint8 MHAs with 1 = pubic symphysis, 2 = fetal head. Images are not square (rows != cols)
so a swapped x/y would show.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from tests.converters.fake._release import disc, zip_tree

NAMES = ("03744", "03745", "03746")
SHAPE = (20, 28)  # rows, cols


def label_map(index: int) -> np.ndarray:
    labels = np.zeros(SHAPE, np.uint8)
    labels[3:7, 2 + index:10 + index] = 1  # pubic symphysis: a bar at the top left
    labels[disc(SHAPE, (13, 18), 5)] = 2  # fetal head
    return labels


def make_remote_files(folder: Path, seed: int = 0, swap_labels: bool = False) -> None:
    """``swap_labels`` writes 1 for the head and 2 for the symphysis (a release breaking the assumed meaning)."""
    rng = np.random.default_rng(seed)
    root = folder / "_work" / "PSFHS"
    (root / "image_mha").mkdir(parents=True)
    (root / "label_mha").mkdir(parents=True)
    for index, name in enumerate(NAMES):
        grey = rng.integers(0, 256, SHAPE, dtype=np.uint8)
        if index == 0:
            image = sitk.GetImageFromArray(grey)
        else:
            channels = np.stack([grey, grey, grey] if index == 1 else [grey, grey // 2, 255 - grey])
            image = sitk.GetImageFromArray(channels)  # (3, rows, cols) -> a 3D image of 3 slices
        image.SetSpacing((0.25,) * image.GetDimension())
        sitk.WriteImage(image, str(root / "image_mha" / f"{name}.mha"))
        labels = label_map(index)
        label = sitk.GetImageFromArray(np.where(labels > 0, 3 - labels, 0).astype(np.uint8) if swap_labels else labels)
        label.SetSpacing((0.25, 0.25))
        sitk.WriteImage(label, str(root / "label_mha" / f"{name}.mha"))
    zip_tree(folder / "_work", folder / "PSFHS.zip")
