"""Fake Chákṣu release: Train.zip and Test.zip with the real folder tree and its quirks, plus the readme PDF.

Quirks reproduced: the Test fusion folder "Remedio" (originals stay "Remidio"); Expert 4's
mask "22glsusp.png" for photo 22; photo extensions .png/.JPG/.jpg against .png masks;
"expert 5" lower-case in Test (capitalisation varies); Expert 2 lacks one photo. Masks
are grey levels 0 (background), 128 (disc), 255 (cup).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.converters.fake._release import disc, save_image, zip_tree

SHAPE = (24, 32)
# split -> device folder -> photo file names
PHOTOS = {"Train": {"Forus": ["22.png"], "Remidio": ["Image101.JPG"], "Bosch": ["Image145.jpg", "Image146.jpg"]},
          "Test": {"Forus": ["7.png"], "Remidio": ["p28_image1.JPG"], "Bosch": ["Image3.jpg"]}}
RATERS = ("expert1", "expert2", "expert3", "expert4", "expert5")
MISSING = ("expert2", "Train", "Bosch", "Image145")  # expert 2 did not delineate this photo


def disc_cup(source: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(disc incl. cup, cup) of one annotation source; each source draws slightly differently."""
    shift = RATERS.index(source) + 1 if source in RATERS else 0
    centre = (12, 14 + index)
    return disc(SHAPE, centre, 7 + shift % 3), disc(SHAPE, (centre[0], centre[1] + shift % 2), 3)


def _levels(source: str, index: int) -> np.ndarray:
    outer, inner = disc_cup(source, index)
    grey = np.zeros(SHAPE, np.uint8)
    grey[outer] = 128
    grey[inner] = 255
    return grey


def make_remote_files(folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for split, devices in PHOTOS.items():
        work = folder / f"_work_{split}"
        root = work / split  # each zip holds its split folder
        for index, (device, photos) in enumerate(devices.items()):
            fusion_device = "Remedio" if (split, device) == ("Test", "Remidio") else device
            for photo in photos:
                stem = Path(photo).stem
                save_image(rng.integers(0, 256, SHAPE + (3,), dtype=np.uint8),
                           root / "1.0_Original_Fundus_Images" / device / photo)
                for fusion in ("STAPLE", "Majority", "Mean", "Median"):
                    save_image(_levels("STAPLE", index), root / "4.0_OD_CO_Fusion_Images" / fusion_device / fusion
                               / f"{stem}.png")
                for k, rater in enumerate(RATERS, start=1):
                    if (rater, split, device, stem) == MISSING:
                        continue
                    name = f"{stem}glsusp.png" if (k, stem) == (4, "22") else f"{stem}.png"
                    expert = f"expert {k}" if (split, k) == ("Test", 5) else f"Expert {k}"
                    save_image(_levels(rater, index), root / "4.0_OD_CO_Fusion_Images" / expert / device / name)
        (root / "6.0_Glaucoma_Decision").mkdir(parents=True)
        (root / "6.0_Glaucoma_Decision" / "Glaucoma_Decision_Comparison_Forus_majority.csv").write_text(
            "Images,Expert.1,Expert.2,Expert.3,Expert.4,Expert.5,Majority Decision\n"
            "22.png-22-1.jpg,NORMAL,NORMAL,GLAUCOMA  SUSUPECT,NORMAL,NORMAL,NORMAL\n")
        zip_tree(work, folder / f"{split}.zip")
    (folder / "Readme_Chaksu IMAGE Database.pdf").write_bytes(b"%PDF-1.4 stand-in readme\n%%EOF\n")

