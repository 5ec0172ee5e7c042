"""Geometry checks shared by readers, converters and ``formats labels-to-masks``.

The core (``converters/_run.py``) and ``formats labels-to-masks --image`` put every mask on
its image's grid with :func:`conform_to_grid`: the same grid stored in another axis order
(flips, permutations) is reoriented losslessly and recorded; anything else is refused,
saying *which* way the grids differ (shape, voxel size, rotated axes, shifted centres). The
other helpers check that a mask is truly binary and that no slice went missing when slices
were stacked.
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
    if affine is None or ref_affine is None:
        return None if tuple(shape) == tuple(ref_shape) else f"shape {tuple(shape)} vs {tuple(ref_shape)}"
    if tuple(shape) == tuple(ref_shape) and affine_difference(affine, ref_affine) <= tolerance:
        return None
    return _grid_difference(shape, np.asarray(affine, dtype=np.float64), ref_shape,
                            np.asarray(ref_affine, dtype=np.float64), tolerance)


def _grid_difference(shape, affine, ref_shape, ref_affine, tolerance) -> str:
    """Which property of two 3D grids differs, compared in one axis order (the reference's)."""
    import nibabel as nib
    from nibabel import orientations

    codes, ref_codes = axcodes(affine), axcodes(ref_affine)
    orient = f"orientation {codes} vs {ref_codes}" if codes != ref_codes else f"orientation {codes}"
    if len(shape) != 3 or len(ref_shape) != 3:
        return f"shape {tuple(shape)} vs {tuple(ref_shape)}"
    transform = orientations.ornt_transform(nib.io_orientation(affine), nib.io_orientation(ref_affine))
    order = np.argsort(transform[:, 0])
    same_order_shape = tuple(int(shape[int(a)]) for a in order)
    new_affine = affine @ orientations.inv_ornt_aff(transform, shape)
    problems = []
    if same_order_shape != tuple(int(n) for n in ref_shape):
        in_order = f" ({same_order_shape} in the image's axis order)" if same_order_shape != tuple(shape) else ""
        problems.append(f"shape {tuple(shape)}{in_order} vs {tuple(ref_shape)}")
    spacing, ref_spacing = np.linalg.norm(new_affine[:3, :3], axis=0), np.linalg.norm(ref_affine[:3, :3], axis=0)
    if np.abs(spacing - ref_spacing).max() > tolerance:
        problems.append(f"voxel size {np.round(spacing, 4).tolist()} vs {np.round(ref_spacing, 4).tolist()} mm")
    cosines = new_affine[:3, :3] / spacing
    ref_cosines = ref_affine[:3, :3] / ref_spacing
    angle = float(np.degrees(np.arccos(np.clip(np.sum(cosines * ref_cosines, axis=0), -1, 1))).max())
    if angle > 1e-3:
        problems.append(f"axes rotated by up to {angle:.3g} deg")
    if not problems:  # same axes, spacing and extent: the voxel centres are shifted
        problems.append(f"voxel centres shifted by up to {_corner_distance(ref_shape, new_affine, ref_affine):.4g} mm")
    return f"{orient}; " + "; ".join(problems) + f" (tolerance {tolerance} mm)"


def _corner_distance(shape: Sequence[int], affine: np.ndarray, ref_affine: np.ndarray) -> float:
    """Largest distance (mm) between the voxel centres two affines give one index grid; an
    affine map's largest deviation over the grid is at one of its corners."""
    corners = np.array(np.meshgrid(*[(0, max(int(n) - 1, 0)) for n in shape], indexing="ij")).reshape(3, -1)
    homogeneous = np.vstack([corners, np.ones(corners.shape[1])])
    return float(np.linalg.norm((np.asarray(affine) @ homogeneous - np.asarray(ref_affine) @ homogeneous)[:3],
                                axis=0).max())


def grid_reorientation(shape: Sequence[int], affine: np.ndarray, ref_shape: Sequence[int], ref_affine: np.ndarray,
                       tolerance: float = AFFINE_TOLERANCE_MM) -> np.ndarray | None:
    """The nibabel orientation transform that puts an array on (``shape``, ``affine``) onto the
    reference grid, when both grids hold the same voxel centres (within ``tolerance`` mm) in
    another axis order or direction; None when they are not the same grid up to flips and
    permutations. ITK, Slicer and dcmqi store rows in DICOM order, dcm2niix and omnimedseg
    reverse them: the same voxels, another index order.
    """
    import nibabel as nib
    from nibabel import orientations

    if len(shape) != 3 or len(ref_shape) != 3:
        return None
    affine, ref_affine = np.asarray(affine, dtype=np.float64), np.asarray(ref_affine, dtype=np.float64)
    transform = orientations.ornt_transform(nib.io_orientation(affine), nib.io_orientation(ref_affine))
    new_shape = tuple(int(shape[int(axis)]) for axis in np.argsort(transform[:, 0]))
    if new_shape != tuple(int(n) for n in ref_shape):
        return None
    new_affine = affine @ orientations.inv_ornt_aff(transform, shape)
    return transform if _corner_distance(ref_shape, new_affine, ref_affine) <= tolerance else None


def conform_to_grid(data, path: str | Path, ref_shape: Sequence[int], ref_affine: np.ndarray | None,
                    ref_path: str | Path, tolerance: float = AFFINE_TOLERANCE_MM):
    """``data`` (an ImageData) on the reference image's grid, or a one-line ConversionError.

    Grids that agree are returned unchanged. A 3D grid equal to the reference up to axis flips
    and permutations is reoriented losslessly (nibabel ``apply_orientation``: voxels are moved,
    never interpolated) and the result's ``meta["reoriented"]`` records from which orientation,
    for provenance. Anything else is refused, saying which property differs.
    """
    from omnimedseg.converters.formats.imagedata import ImageData

    shape = data.array.shape[: len(ref_shape)]
    affine = data.affine if ref_affine is not None else None
    if geometry_mismatch(shape, affine, ref_shape, ref_affine, tolerance) is None:
        return data
    if affine is not None:
        transform = grid_reorientation(shape, affine, ref_shape, ref_affine, tolerance)
        if transform is not None:
            from nibabel import orientations

            array = orientations.apply_orientation(np.asarray(data.array), transform)
            record = {"from_orientation": axcodes(affine), "to_orientation": axcodes(ref_affine),
                      "from_shape": [int(n) for n in shape], "nibabel_ornt_transform": transform.tolist(),
                      "reason": f"same voxel grid as {Path(ref_path).name} in another axis order; moved "
                                f"losslessly (no interpolation)"}
            return ImageData(np.ascontiguousarray(array), np.asarray(ref_affine, dtype=np.float64),
                             meta={**data.meta, "reoriented": record})
    check_same_geometry(path, shape, affine, ref_path, ref_shape, ref_affine, tolerance)
    return data  # not reached: check_same_geometry raised


def check_same_geometry(path: str | Path, shape: Sequence[int], affine: np.ndarray | None, ref_path: str | Path,
                        ref_shape: Sequence[int], ref_affine: np.ndarray | None,
                        tolerance: float = AFFINE_TOLERANCE_MM) -> None:
    """Raise a one-line error naming ``path`` when its grid differs from the reference image's."""
    problem = geometry_mismatch(shape, affine, ref_shape, ref_affine, tolerance)
    if problem:
        raise ConversionError(f"{path}: geometry differs from image {Path(ref_path).name}: {problem}; expected the "
                              f"image's grid, or the same grid in another axis order; check that the label belongs "
                              f"to this image (no resampling is done)")


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
           "check_slice_count", "conform_to_grid", "geometry_mismatch", "grid_reorientation"]
