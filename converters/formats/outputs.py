"""Reading back the files of the standard output (docs/format.md), one way for every reader."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.errors import OmnimedsegError, ValidationError


def read_output(path: Path, shape: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(pixels, affine) of a converted PNG (affine None) or NIfTI file, as stored; ``shape``: the spatial
    shape it must have (a mask on its image's grid). A damaged or foreign file is an error naming it."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    path = Path(path)
    try:
        if path.name.endswith(".png"):
            array, affine = read_png_array(path), None
        else:
            image = nib.load(path)
            array, affine = np.asanyarray(image.dataobj), image.affine
    except FileNotFoundError:
        raise ValidationError(f"{path}: missing; {_check(path)}") from None
    except OmnimedsegError:
        raise
    except (OSError, EOFError, ValueError, zlib.error, SyntaxError, ImageFileError) as exc:  # cut, garbage, foreign
        raise ValidationError(f"{path}: not readable ({type(exc).__name__}: {' '.join(str(exc).split())}); "
                              f"{_check(path)}") from None
    if shape is not None and tuple(array.shape[:len(shape)]) != tuple(shape):
        raise ValidationError(f"{path}: shape {array.shape}, expected {tuple(shape)} (its image's grid); {_check(path)}")
    return array, affine


def _check(path: Path) -> str:
    """The command that checks a converted folder: ``omnimedseg validate <id>`` (the id read from the path)."""
    parts = path.parts
    dataset = parts[parts.index("converted") + 1] if "converted" in parts[:-2] else "<dataset id>"
    return f"check the conversion with: omnimedseg validate {dataset} (then convert {dataset} --force)"


__all__ = ["read_output"]
