"""Image and label stored side by side in one file (OIMHS, AMD-SD OCT B-scans).

The left half of each PNG is the image, the right half its colour-coded label, both
the same size: the file is split at width / 2 (an odd width is an error, since the two
halves could not be equal). Raw files are only read, never rewritten.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from omnimedseg.converters.formats.annotations2d import Colour, palette_masks
from omnimedseg.converters.formats.image2d import LOSSY_MASK_THRESHOLD, LOSSY_SUFFIXES, read_image
from omnimedseg.converters.formats.imagedata import ImageData
from omnimedseg.errors import ConversionError

PathLike = str | os.PathLike
HALVES = ("left", "right")


def split_halves(array: np.ndarray, path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) halves of a side-by-side image (rows, cols[, channels])."""
    width = array.shape[1]
    if width % 2:
        raise ConversionError(f"{path}: width {width} is odd; expected an image and its label side by side "
                              f"(two halves of equal width)")
    return array[:, : width // 2], array[:, width // 2:]


def _half(path: PathLike, half: str) -> np.ndarray:
    if half not in HALVES:
        raise ConversionError(f"{path}: half={half!r}; expected one of {HALVES}")
    return split_halves(read_image(Path(path)).array, path)[HALVES.index(half)]


def read_half(path: PathLike, *, half: str = "left") -> ImageData:
    """One half of a side-by-side file, pixels kept as stored (bit depth and colour)."""
    return ImageData(np.ascontiguousarray(_half(path, half)))


def snap_channels(array: np.ndarray) -> np.ndarray:
    """Each 8-bit channel rounded to 0 or 255 at ``LOSSY_MASK_THRESHOLD`` (128).

    For colour labels whose primaries were smoothed by resampling or compression
    (AMD-SD: torch-em rounds ``label / 255``, the same rule). A smoothed edge that mixes
    two classes becomes a third colour, which the palette then reports as unknown.
    """
    return np.where(array >= LOSSY_MASK_THRESHOLD, 255, 0).astype(np.uint8)


def read_half_palette_class(path: PathLike, *, palette: Mapping[str, Colour | Sequence[Colour]], class_name: str,
                            half: str = "right", snap: bool = False, background: Colour = (0, 0, 0)) -> ImageData:
    """One class's bool mask from the colour-coded half of a side-by-side file.

    Colours must match the palette exactly unless ``snap`` (see :func:`snap_channels`);
    every colour of the half is checked, whichever class is read.
    """
    if class_name not in palette:
        raise ConversionError(f"{path}: class {class_name!r} is not in the palette {sorted(palette)}")
    if not snap and Path(path).suffix.lower() in LOSSY_SUFFIXES:
        raise ConversionError(f"{path}: colour-coded label stored as lossy JPEG; expected PNG")
    array = _half(path, half)
    if snap:
        array = snap_channels(array)
    return ImageData(palette_masks(array, palette, background, f"{path} ({half} half)")[class_name])


__all__ = ["read_half", "read_half_palette_class", "snap_channels", "split_halves"]
