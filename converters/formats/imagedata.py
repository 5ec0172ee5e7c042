"""The one in-memory currency of the conversion layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ImageData:
    """Pixels plus geometry.

    2D: ``array`` is (rows, cols) or (rows, cols, channels) in the file's own dtype;
    ``spacing`` is (row, col) in mm when the dataset provides it, and ``affine`` is None.
    3D: ``array`` is indexed (i, j, k[, c]) as nibabel does, ``affine`` is the 4x4
    voxel -> RAS+ world (mm) matrix that NIfTI stores, and ``spacing`` is derived from it.
    """

    array: np.ndarray
    affine: np.ndarray | None = None
    spacing: tuple[float, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.affine is not None:
            self.affine = np.asarray(self.affine, dtype=np.float64)
            if self.spacing is None:
                self.spacing = tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def is_3d(self) -> bool:
        return self.affine is not None


__all__ = ["ImageData"]
