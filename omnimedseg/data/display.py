"""How a volume is shown on a picture: the one definition used by QA sheets and interaction sheets.

A volume with a world affine is shown in radiological convention: the array is read as if
reoriented to RAS (nibabel's ``io_orientation``, the nearest axes for an oblique affine), and
each plane is drawn with patient right on the image's left and anterior (axial) or superior
(coronal, sagittal) at the top. A :class:`DisplayView` is that rule for one plane written as an
axis permutation plus flips of the stored array, so the image and every prompt coordinate
(array index order) go through the same map; the slice index shown is the RAS index along the
plane's normal (the number QA sheets print). A volume without geometry is shown as stored
(:func:`array_view`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PLANES", "DisplayView", "radiological_view", "array_view", "to_ras", "display_plane"]

PLANES = ("axial", "coronal", "sagittal")  # slice along RAS axis 2, 1, 0
# per plane, the RAS axes shown as (slice, rows, columns); rows and columns run against RAS
# (anterior / superior at the top, patient right on the left), the slice index runs with it
_PLANE_RAS_AXES = {"axial": (2, 1, 0), "coronal": (1, 2, 0), "sagittal": (0, 2, 1)}
_RUNS_AGAINST_RAS = (False, True, True)


@dataclass(frozen=True)
class DisplayView:
    """Stored array -> displayed volume ``(slice, row, column)``: displayed axis ``d`` is array axis
    ``axes[d]``, reversed where ``flips[d]``; ``spacing`` is mm per displayed axis (None: unknown)."""

    axes: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    shape: tuple[int, int, int]  # of the stored array
    plane: str | None = None  # None: the array as stored, no geometry
    spacing: tuple[float, float, float] | None = None

    @property
    def displayed_shape(self) -> tuple[int, int, int]:
        return tuple(self.shape[a] for a in self.axes)

    @property
    def pixel_spacing(self) -> tuple[float, float] | None:
        """(row, column) mm of a displayed pixel."""
        return None if self.spacing is None else (self.spacing[1], self.spacing[2])

    def volume(self, array: np.ndarray) -> np.ndarray:
        """``array`` (I, J, K[, ...]) as the displayed volume (slice, row, column[, ...]): a numpy view."""
        out = np.moveaxis(np.asarray(array), self.axes, (0, 1, 2))
        return out[tuple(slice(None, None, -1) if f else slice(None) for f in self.flips)]

    def image(self, array: np.ndarray, index: int) -> np.ndarray:
        """Displayed slice ``index`` of ``array`` as a contiguous (row, column[, ...]) image."""
        return np.ascontiguousarray(self.volume(array)[index])

    def points(self, coords) -> np.ndarray:
        """Array-order coordinates (n, 3) (integers, or pixel-centre floats) -> displayed (slice, row, col)."""
        c = np.asarray(coords).reshape(-1, 3)[:, list(self.axes)]
        size = np.asarray(self.displayed_shape, dtype=c.dtype) - 1
        return np.where(self.flips, size - c, c)

    def axis(self, array_axis: int) -> int:
        """The displayed axis array axis ``array_axis`` becomes."""
        return self.axes.index(array_axis)


def radiological_view(affine, shape, plane: str = "axial") -> DisplayView:
    """The radiological ``plane`` of an array of ``shape`` (I, J, K) stored with ``affine``."""
    import nibabel as nib

    ornt = nib.orientations.io_orientation(np.asarray(affine, dtype=np.float64))  # per array axis: RAS axis, +-1
    ras_to_array = {int(ras): (axis, ornt[axis, 1] < 0) for axis, ras in enumerate(ornt[:, 0])}
    mm = np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(0))
    axes, flips = zip(*(ras_to_array[r] for r in _PLANE_RAS_AXES[plane]))
    return DisplayView(tuple(int(a) for a in axes), tuple(bool(f != against) for f, against in
                                                          zip(flips, _RUNS_AGAINST_RAS)),
                       tuple(int(s) for s in shape[:3]), plane, tuple(float(mm[a]) for a in axes))


def array_view(shape, slice_axis: int = 2) -> DisplayView:
    """A volume without geometry, as stored: slices along ``slice_axis``, rows and columns the other
    two array axes in order."""
    axes = (slice_axis, *(a for a in range(3) if a != slice_axis))
    return DisplayView(axes, (False, False, False), tuple(int(s) for s in shape[:3]))


def to_ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float]]:
    """``array`` (I, J, K[, ...]) reoriented so its axes run to patient Right, Anterior, Superior; spacing in mm."""
    import nibabel as nib

    ornt = nib.orientations.io_orientation(affine)
    ras = nib.orientations.apply_orientation(array, ornt)
    canonical = affine @ nib.orientations.inv_ornt_aff(ornt, array.shape[:3])
    return ras, tuple(float(v) for v in np.sqrt((canonical[:3, :3] ** 2).sum(0)))


def display_plane(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """One slice of a RAS ``volume`` as displayed: rows run anterior->posterior (axial) or superior->inferior,
    columns run from patient right to left (axial, coronal) or anterior to posterior (sagittal)."""
    return radiological_view(np.eye(4), volume.shape, plane).image(volume, index)
