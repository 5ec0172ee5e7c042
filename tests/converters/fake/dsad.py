"""Fake DSAD zip: organ folders and multilabel/ at the top, surgeries NN, imageXX.png + masks (0/255).

multilabel frames carry maskXX_<organ>.png for the structures they show only; one surgery per
split (01 train, 03 val, 02 test). Single-organ folders <organ>/<NN>/imageXX.png + maskXX.png
(one structure labelled, the others unknown) in every split; liver/01 frame 00 has an empty
mask (the organ not in view is still a labelled "absent").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.converters.fake._files2d import image_bytes, write_zip

SHAPE = (24, 30)
# (surgery, frame) -> organs shown, each with the rows it covers
FRAMES = {("01", "00"): {"liver": (0, 6), "colon": (8, 12), "small_intestine": (14, 20)},
          ("01", "07"): {"abdominal_wall": (2, 9)},
          ("03", "12"): {"stomach": (4, 10), "spleen": (12, 16)},
          ("02", "05"): {}}
# (organ, surgery, frame) -> rows the single labelled organ covers (None: labelled, not in view)
SINGLE = {("liver", "01", "00"): None, ("liver", "01", "03"): (5, 15), ("colon", "03", "04"): (2, 20),
          ("stomach", "02", "09"): (10, 22)}


def organ_mask(rows: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    mask[rows[0]:rows[1], 3:27] = True
    return mask


def make_remote_files(folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    members = {}
    for (surgery, frame), organs in FRAMES.items():
        members[f"multilabel/{surgery}/image{frame}.png"] = \
            image_bytes(rng.integers(0, 255, (*SHAPE, 3), dtype=np.uint8))
        for organ, rows in organs.items():
            members[f"multilabel/{surgery}/mask{frame}_{organ}.png"] = \
                image_bytes((organ_mask(rows) * 255).astype(np.uint8))
    for (organ, surgery, frame), rows in SINGLE.items():
        members[f"{organ}/{surgery}/image{frame}.png"] = \
            image_bytes(rng.integers(0, 255, (*SHAPE, 3), dtype=np.uint8))
        mask = organ_mask(rows) if rows else np.zeros(SHAPE, bool)
        members[f"{organ}/{surgery}/mask{frame}.png"] = image_bytes((mask * 255).astype(np.uint8))
    write_zip(folder / "DSAD.zip", members)
