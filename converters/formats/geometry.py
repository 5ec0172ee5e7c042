"""Geometry checks shared by readers, converters and ``formats labels-to-masks``.

The core (``converters/_run.py``) already refuses a mask whose shape or affine differs
from its image. These helpers add what it does not say: *which* way the grids differ
(orientation codes such as RAS vs LPS, the largest affine difference), that a mask is
truly binary, and that no slice went missing when slices were stacked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from omnimedseg.errors import ConversionError

# Same tolerance as the core (mm): affines that differ less are float noise of header round-trips.
AFFINE_TOLERANCE_MM = 1e-3


def axcodes(affine: np.ndarray) -> str:
    """Orientation of the voxel axes as three letters ("RAS", "LPS", ...), nibabel's convention."""
    import nibabel as nib

    return "".join(nib.aff2axcodes(np.asarray(affine, dtype=np.float64)))


def affine_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute element difference of two 4x4 affines (mm for the translation column)."""
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def geometry_mismatch(shape: Sequence[int], affine: np.ndarray | None, ref_shape: Sequence[int],
                      ref_affine: np.ndarray | None, tolerance: float = AFFINE_TOLERANCE_MM) -> str | None:
    """Describe how two grids differ (None when they agree): shape, orientation codes, affine."""
    if tuple(shape) != tuple(ref_shape):
        return f"shape {tuple(shape)} vs {tuple(ref_shape)}"
    if affine is None or ref_affine is None:
        return None
    diff = affine_difference(affine, ref_affine)
    if diff <= tolerance:
        return None
    codes, ref_codes = axcodes(affine), axcodes(ref_affine)
    orient = f"orientation {codes} vs {ref_codes}, " if codes != ref_codes else ""
    return f"{orient}affine differs by {diff:.4g} mm (tolerance {tolerance})"


def check_same_geometry(path: str | Path, shape: Sequence[int], affine: np.ndarray | None, ref_path: str | Path,
                        ref_shape: Sequence[int], ref_affine: np.ndarray | None,
                        tolerance: float = AFFINE_TOLERANCE_MM) -> None:
    """Raise a one-line error naming ``path`` when its grid differs from the reference image's."""
    problem = geometry_mismatch(shape, affine, ref_shape, ref_affine, tolerance)
    if problem:
        raise ConversionError(f"{path}: geometry differs from image {Path(ref_path).name}: {problem}; expected the "
                              f"image's grid; check that the label belongs to this image (no resampling is done)")


def check_binary(array: np.ndarray, path: str | Path) -> np.ndarray:
    """Return ``array`` as bool when it holds only 0/1 (or False/True); refuse anything else."""
    array = np.asarray(array)
    if array.dtype == bool:
        return array
    values = np.unique(array)
    if not np.isin(values, (0, 1)).all():
        shown = values[:8].tolist()
        raise ConversionError(f"{path}: expected a binary mask (0/1), found values {shown}"
                              f"{' ...' if values.size > 8 else ''}; read it as a label map instead")
    return array.astype(bool)


def check_slice_count(found: int, expected: int, path: str | Path) -> None:
    """Refuse a stack with missing or extra slices (no slice may be dropped or invented)."""
    if found != expected:
        raise ConversionError(f"{path}: {found} slice file(s) for a volume of {expected} slices; expected one "
                              f"slice mask per image slice (empty slices as empty masks)")


__all__ = ["AFFINE_TOLERANCE_MM", "affine_difference", "axcodes", "check_binary", "check_same_geometry",
           "check_slice_count", "geometry_mismatch"]
