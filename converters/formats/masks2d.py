"""2D mask quirks of released files: unions, empty masks, grey levels, lossy JPEG masks, constant alpha.

A class that a release stores as several files (Montgomery's left and right lungs for
``lungs``; BrEaST-Lesions-USG's several findings per image) is the union of their masks;
a class that a labelled image simply lacks (no file for it) is an all-zero mask on the
image's grid, so every labelled case still has one mask per class. The threshold for lossy
masks is one documented constant, so every dataset that ships JPEG masks (HyperKvasir,
Kvasir-SEG, TN3K ...) is binarised the same way and provenance names the rule.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from omnimedseg.converters.formats.image2d import _grey, read_binary_mask, read_image
from omnimedseg.converters.formats.imagedata import ImageData
from omnimedseg.errors import ConversionError

PathLike = str | os.PathLike

# A lossy 0/255 mask is foreground where the mean of its colour channels is >= 128, the midpoint:
# JPEG ringing and chroma subsampling smear the two levels symmetrically around the drawn edge,
# so the midpoint keeps the boundary where the annotator put it (the rule image2d.read_binary_mask
# applies to grey JPEGs). Averaging the channels handles masks saved as RGB JPEG, whose channels
# drift apart by a few levels.
LOSSY_MASK_THRESHOLD = 128


def read_lossy_mask(path: PathLike, *, background_corners: bool = False) -> ImageData:
    """A JPEG (grey or RGB) 0/255 mask -> bool: channel mean >= ``LOSSY_MASK_THRESHOLD`` (128).

    A file whose values do not cluster near 0 and 255 is not a binary mask; when more than
    5% of the pixels sit in the middle band 64..191 it is refused rather than thresholded.
    ``background_corners``: the dataset's objects never reach all four image corners (e.g.
    endoscopy frames, whose corners are the black vignette), so a mask that is foreground in
    all four corners has the opposite polarity and is refused instead of being inverted.
    """
    array = read_image(Path(path)).array
    if array.dtype != np.uint8:
        raise ConversionError(f"{path}: lossy mask of type {array.dtype}; expected 8-bit JPEG")
    grey = array[..., :3].mean(axis=2) if array.ndim == 3 else array.astype(np.float64)
    middle = float(np.mean((grey >= 64) & (grey < 192)))
    if middle > 0.05:
        raise ConversionError(f"{path}: {middle:.0%} of the pixels are mid-grey (64..191); expected a 0/255 mask "
                              f"with JPEG noise only")
    mask = grey >= LOSSY_MASK_THRESHOLD
    if background_corners and mask[0, 0] and mask[0, -1] and mask[-1, 0] and mask[-1, -1]:
        raise ConversionError(f"{path}: all four corners are foreground; expected white objects on a black "
                              f"background (inverted mask polarity?)")
    return ImageData(mask)


def drop_constant_alpha(array: np.ndarray, path: PathLike) -> np.ndarray:
    """RGBA / LA whose alpha is one value everywhere -> RGB / grey; a varying alpha is an error.

    Many microscopy PNGs (DSB2018, TNBC) carry an opaque alpha channel that holds no
    information; keeping it would make the image a four-channel one for no reason. An alpha
    that varies means transparency the dataset may rely on, so it is not dropped silently.
    """
    if array.ndim != 3 or array.shape[2] not in (2, 4):
        return array
    alpha = array[..., -1]
    if alpha.size and (alpha != alpha.flat[0]).any():
        values = np.unique(alpha)
        raise ConversionError(f"{path}: alpha channel varies ({values.size} values, {int(values[0])}..{int(values[-1])}); "
                              f"expected a constant alpha to drop")
    return array[..., :-1] if array.shape[2] == 4 else array[..., 0]


def read_image_without_alpha(path: PathLike) -> ImageData:
    """:func:`~omnimedseg.converters.formats.image2d.read_image`, with a constant alpha channel dropped."""
    image = read_image(Path(path))
    return ImageData(drop_constant_alpha(image.array, path), image.affine, image.spacing, image.meta)


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


IMAGE_SIDES = ("image_left", "image_right")


def read_mask_on_side(path: PathLike, *, side: str) -> ImageData:
    """Binary mask (as ``read_binary_mask``) that must lie mostly in the given half of the image.

    For releases that name a lateral structure by side without saying whose side
    (Montgomery's ``leftMask``: the patient's left lung sits on the image's right in a PA
    radiograph). The centre of mass of the mask decides; a mask on the other half means the
    assumed convention is wrong, which is an error rather than a silently swapped class.
    An empty mask passes (nothing to place).
    """
    if side not in IMAGE_SIDES:
        raise ConversionError(f"{path}: side={side!r}; expected one of {IMAGE_SIDES}")
    mask = read_binary_mask(Path(path)).array
    cols = np.nonzero(mask)[1]
    if cols.size:
        centre, middle = float(cols.mean()), (mask.shape[1] - 1) / 2
        found = "image_right" if centre > middle else "image_left"
        if centre != middle and found != side:
            raise ConversionError(f"{path}: mask centred at column {centre:.0f} of {mask.shape[1]}, in the "
                                  f"{found.replace('_', ' ')} half; expected the {side.replace('_', ' ')} half (the "
                                  f"side convention assumed for this release does not hold: report it)")
    return ImageData(mask)


SOLID_HOLE_LIMIT = 0.25  # hole area / filled area above which a "solid" structure is taken to be a ring


def read_mask_above(path: Path, *, above: int, solid: bool = False) -> ImageData:
    """Mask of the pixels brighter than ``above`` in a multi-level grey mask (e.g. disc < cup levels).

    Fusion masks code nested structures as grey levels (Chákṣu: background, disc, cup);
    a structure is every pixel above the midpoint below its level, which also keeps the
    boundary where it was for JPEG-compressed masks. ``solid`` asserts the level order for
    the innermost structure: if the brightest level were the outer ring instead (order not
    documented by the release), its mask would be an annulus, so a mask whose holes cover
    more than ``SOLID_HOLE_LIMIT`` of its filled area is an error, never a silent swap.
    """
    mask = _grey(Path(path)) > above
    if solid and mask.any():
        from scipy import ndimage

        filled = ndimage.binary_fill_holes(mask)
        holes = int(filled.sum() - mask.sum())
        if holes > SOLID_HOLE_LIMIT * filled.sum():
            raise ConversionError(f"{path}: the pixels above {above} form a ring ({holes} of {int(filled.sum())} "
                                  f"enclosed pixels are holes); expected a solid innermost structure, so the "
                                  f"grey-level order assumed for this release does not hold: report it")
    return ImageData(mask)


def read_empty_mask(reference: PathLike) -> ImageData:
    """An all-False mask on ``reference``'s pixel grid.

    For a class that a fully annotated image does not show, where the dataset writes no
    file for absent classes (e.g. DSAD's multi-organ frames): the class is known to be
    absent, so its mask is empty, and provenance names this operation and the image.
    """
    image = read_image(Path(reference))
    return ImageData(np.zeros(image.array.shape[:2], dtype=bool))


__all__ = ["LOSSY_MASK_THRESHOLD", "drop_constant_alpha", "read_binary_mask_union", "read_empty_mask",
           "read_image_without_alpha", "read_lossy_mask", "read_mask_above", "read_mask_on_side"]
