"""Reading back the files of the standard output (docs/format.md), one way for every reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omnimedseg.converters.formats.image2d import read_png_array


def read_output(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(pixels, affine) of a converted PNG (affine None) or NIfTI file, as stored."""
    path = Path(path)
    if path.name.endswith(".png"):
        return read_png_array(path), None
    import nibabel as nib

    image = nib.load(path)
    return np.asanyarray(image.dataobj), image.affine


__all__ = ["read_output"]
