"""2D images and label maps stored as MetaImage (.mha/.mhd) in 3D or multi-component form.

Challenge releases often save a 2D image as a 3D MetaImage with one slice, or with the
colour channels as slices (FH-PS-AOP / PSFHS: 3 x 256 x 256), or with repeated grey
components. SimpleITK reports sizes as (x, y[, z]) but hands out arrays as
([z,] rows, cols[, components]); these readers always return (rows, cols[, channels])
arrays with (row, col) spacing, so the x/y swap cannot slip in.

* one slice -> that slice;
* ``slices_are_channels=True`` (a card-level fact, never guessed) -> 3 or 4 slices are the
  channels of one image;
* components (or channels) that are all equal -> one grey channel; different colour
  channels are kept as RGB(A).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from omnimedseg.converters.formats.imagedata import ImageData
from omnimedseg.converters.formats.volumes import integral_labels
from omnimedseg.errors import ConversionError


def _read(path: Path, slices_are_channels: bool) -> ImageData:
    import SimpleITK as sitk

    if not path.is_file():
        raise ConversionError(f"{path}: file not found")
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        raise ConversionError(f"{path}: not readable by SimpleITK ({lines[-1] if lines else exc}); expected a "
                              f"MetaImage (.mha, or .mhd with its data file)") from None
    array = sitk.GetArrayFromImage(img)  # ([z,] rows, cols[, components])
    size = img.GetSize()  # (x, y[, z]) = (cols, rows[, slices])
    spacing = img.GetSpacing()
    components = img.GetNumberOfComponentsPerPixel()
    if img.GetDimension() == 3:
        slices = size[2]
        if slices == 1:
            array = array[0]
        elif slices_are_channels and slices in (3, 4) and components == 1:
            array = np.moveaxis(array, 0, -1)
        else:
            hint = "" if slices_are_channels else " (if the slices are colour channels, read with slices_are_channels=True)"
            raise ConversionError(f"{path}: 3D image of {size[0]} x {size[1]} x {slices} voxels with {components} "
                                  f"component(s); expected a 2D image{hint}")
    elif img.GetDimension() != 2:
        raise ConversionError(f"{path}: {img.GetDimension()}D image; expected a 2D image")
    if array.ndim == 3 and all(np.array_equal(array[..., 0], array[..., c]) for c in range(1, array.shape[2])):
        array = array[..., 0]  # repeated grey components
    if array.ndim == 3 and (array.shape[2] not in (3, 4) or array.dtype != np.uint8):
        raise ConversionError(f"{path}: {array.shape[2]} differing {array.dtype} channels; expected grey or "
                              f"8-bit RGB(A)")
    return ImageData(np.ascontiguousarray(array), spacing=(float(spacing[1]), float(spacing[0])),
                     meta={"components": components, "size_xyz": list(size)})


def read_metaimage_2d(path: Path, *, slices_are_channels: bool = False) -> ImageData:
    """A 2D image from a MetaImage (see module docstring); bit depth kept; spacing (row, col) mm."""
    return _read(Path(path), slices_are_channels)


def read_metaimage_2d_labels(path: Path, *, area_order: Sequence[int] = ()) -> ImageData:
    """A 2D integer label map from a MetaImage (one slice or repeated components accepted).

    ``area_order`` lists label values from the largest expected area to the smallest: a
    sanity check for label meanings that no primary source documents (PSFHS: the fetal head,
    2, always covers more pixels than the pubic symphysis, 1). Among the listed labels that
    are present, a smaller label outgrowing a larger one is an error (a likely swap).
    """
    image = _read(Path(path), False)
    if image.array.ndim != 2:
        raise ConversionError(f"{path}: label map with {image.array.shape[2]} differing channels; expected one "
                              f"integer value per pixel")
    labels = integral_labels(image.array, path)
    present = [(value, int((labels == value).sum())) for value in area_order]
    present = [(value, count) for value, count in present if count]
    for (big, big_count), (small, small_count) in zip(present, present[1:]):
        if small_count > big_count:
            raise ConversionError(f"{path}: label {small} covers {small_count} pixels, more than label {big} "
                                  f"({big_count}); expected label {big} to be the larger structure (the label "
                                  f"meanings assumed for this release do not hold: report it)")
    return ImageData(labels, spacing=image.spacing, meta=image.meta)


__all__ = ["read_metaimage_2d", "read_metaimage_2d_labels"]
