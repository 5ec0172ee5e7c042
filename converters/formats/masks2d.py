"""2D masks made from several files, or from none: unions, and empty masks on an image's grid.

A class that a release stores as several files (Montgomery's left and right lungs for
``lungs``; BrEaST-Lesions-USG's several findings per image) is the union of their masks;
a class that a labelled image simply lacks (no file for it) is an all-zero mask on the
image's grid, so every labelled case still has one mask per class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omnimedseg.converters.formats.image2d import _grey, read_binary_mask, read_image
from omnimedseg.converters.formats.imagedata import ImageData
from omnimedseg.errors import ConversionError


def read_binary_mask_union(*paths: Path) -> ImageData:
    """Union of binary masks (each read by ``read_binary_mask``: > 0, or >= 128 for JPEG); same size required."""
    if not paths:
        raise ConversionError("read_binary_mask_union: no mask file given; expected at least one")
    union = None
    for path in paths:
        mask = read_binary_mask(Path(path)).array
        if union is not None and mask.shape != union.shape:
            raise ConversionError(f"{path}: mask of {mask.shape[1]} x {mask.shape[0]} pixels; expected "
                                  f"{union.shape[1]} x {union.shape[0]} like {paths[0]}")
        union = mask if union is None else union | mask
    return ImageData(union)


def read_mask_above(path: Path, *, above: int) -> ImageData:
    """Mask of the pixels brighter than ``above`` in a multi-level grey mask (e.g. disc < cup levels).

    Fusion masks code nested structures as grey levels (Chákṣu: background, disc, cup);
    a structure is every pixel above the midpoint below its level, which also keeps the
    boundary where it was for JPEG-compressed masks.
    """
    return ImageData(_grey(Path(path)) > above)


def empty_mask_like(reference: Path) -> ImageData:
    """All-False mask on ``reference``'s pixel grid: the class is absent from this labelled image."""
    return ImageData(np.zeros(read_image(Path(reference)).array.shape[:2], dtype=bool))


__all__ = ["empty_mask_like", "read_binary_mask_union", "read_mask_above"]
