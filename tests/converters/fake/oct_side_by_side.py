"""Fake OIMHS and AMD-SD zips: PNGs with the B-scan on the left and the RGB label on the right.

OIMHS labels use exact primaries; AMD-SD labels are slightly off (e.g. 250 instead of 255, 3
instead of 0), which is why the converter snaps them like torch-em does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.converters.fake._files2d import image_bytes, write_zip

SHAPE = (16, 20)  # one half
LAYOUT = {"oimhs": ("Images", ("1", "2"), "OIMHS dataset.zip"),
          "amd_sd": ("AMD-SD/images", ("P001", "P002"), "AMD-SD.zip")}
COLOURS = {"oimhs": {"choroid": (255, 255, 0), "retina": (0, 255, 0), "intraretinal_cyst": (0, 0, 255),
                     "macular_hole": (255, 0, 0)},
           "amd_sd": {"ellipsoid_zone_disruption": (255, 0, 255), "intraretinal_fluid": (0, 255, 0),
                      "subretinal_fluid": (255, 0, 0), "subretinal_hyperreflective_material": (255, 255, 0),
                      "pigment_epithelial_detachment": (0, 0, 255)}}


def class_masks(card_id: str, group: str) -> dict[str, np.ndarray]:
    """class -> bool mask in the label half; the last class is absent (an empty mask)."""
    names = list(COLOURS[card_id])
    shift = int(group[-1])
    masks = {name: np.zeros(SHAPE, bool) for name in names}
    for i, name in enumerate(names[:-1]):
        masks[name][2 + 3 * i: 4 + 3 * i, shift: 10 + shift] = True
    return masks


def maker(card_id: str):
    def make_remote_files(folder: Path, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        root, groups, archive = LAYOUT[card_id]
        members = {}
        for group in groups:
            grey = rng.integers(0, 200, SHAPE, dtype=np.uint8)
            left = np.repeat(grey[..., None], 3, axis=2)
            right = np.zeros((*SHAPE, 3), np.uint8)
            for name, mask in class_masks(card_id, group).items():
                right[mask] = COLOURS[card_id][name]
            if card_id == "amd_sd":
                right = np.where(right == 255, 250, 3).astype(np.uint8)
            members[f"{root}/{group}/001.png"] = image_bytes(np.concatenate([left, right], axis=1))
        write_zip(folder / archive, members)
    return make_remote_files


def left_half(card_id: str, group: str) -> np.ndarray:
    """The B-scan half as written (regenerated with the same seed)."""
    rng = np.random.default_rng(0)
    for g in LAYOUT[card_id][1]:
        grey = rng.integers(0, 200, SHAPE, dtype=np.uint8)
        if g == group:
            return np.repeat(grey[..., None], 3, axis=2)
    raise KeyError(group)
