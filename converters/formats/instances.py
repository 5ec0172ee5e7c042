"""Instance annotations: one file per object merged into a label map, and instance-label files.

An instance-label map holds one integer id per object (0 = background). Object counts
always come from these ids (one per instance file, or the distinct ids of an instance
map), never from connected components: touching nuclei form one component, and one
object may be split into several by a thin gap.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from omnimedseg.converters.formats.image2d import _open, read_binary_mask
from omnimedseg.converters.formats.imagedata import ImageData
from omnimedseg.converters.formats.volumes import VOLUME_SUFFIXES, integral_labels, read_label_volume
from omnimedseg.errors import ConversionError

PathLike = str | os.PathLike


def instance_dtype(count: int) -> type:
    """Smallest unsigned dtype holding ids 0..count (uint16 up to 65535 objects, PNG-storable)."""
    return np.uint16 if count <= np.iinfo(np.uint16).max else np.uint32


def merge_instance_masks(*paths: PathLike) -> ImageData:
    """Binary masks, one per object (e.g. DSB2018 ``masks/*.png``) -> one instance-label map.

    Ids are stable: the masks are ordered by file name and the i-th file gets id i (1-based),
    whatever order the caller passes them in, so a re-run or a partial copy gives the same ids.
    Each file is read with :func:`~omnimedseg.converters.formats.image2d.read_binary_mask`
    (any value > 0; 1-bit PNGs included). A pixel claimed by two files is an error naming
    both: keeping either would silently change one object's shape. An empty file is an error
    too: it would leave a gap in the ids that no reader could explain.
    ``meta["instance_files"]`` maps each id to its file name (for provenance).
    """
    if not paths:
        raise ConversionError("merge_instance_masks: no instance files given; expected one binary mask per object")
    ordered = sorted((Path(p) for p in paths), key=lambda p: p.name)
    names = [p.name for p in ordered]
    if len(set(names)) != len(names):
        raise ConversionError(f"{ordered[0].parent}: instance file names repeat; expected one distinct file per object")
    labels: np.ndarray | None = None
    for instance_id, path in enumerate(ordered, start=1):
        mask = read_binary_mask(path).array
        if labels is None:
            labels = np.zeros(mask.shape, dtype=instance_dtype(len(ordered)))
            first = path
        elif mask.shape != labels.shape:
            raise ConversionError(f"{path}: instance mask of shape {mask.shape}; expected {labels.shape} like {first}")
        if not mask.any():
            raise ConversionError(f"{path}: empty instance mask; expected the pixels of one object")
        taken = labels[mask]
        if taken.any():
            other = ordered[int(taken[taken != 0][0]) - 1]
            raise ConversionError(f"{path}: {int(np.count_nonzero(taken))} pixel(s) also belong to {other.name}; "
                                  f"expected non-overlapping instance masks")
        labels[mask] = instance_id
    return ImageData(labels, meta={"instance_files": {i: n for i, n in enumerate(names, start=1)}})


def read_instance_map(path: PathLike) -> ImageData:
    """An instance-label file (TIFF/PNG/NIfTI...): integer ids >= 0 kept exactly (16-bit stays 16-bit).

    Ids need not be contiguous (StarDist's DSB2018 TIFF uses 125 ids up to 183); float files
    are accepted only when every value is an integer. ``meta["instance_count"]`` is the number
    of distinct non-zero ids.
    """
    if str(path).lower().endswith(VOLUME_SUFFIXES):
        image = read_label_volume(path)
    else:  # 2D files are read here, not by read_image: ids may be 32-bit or float, which images may not
        pixels = np.asarray(_open(Path(path)))
        if pixels.ndim != 2:
            raise ConversionError(f"{path}: instance map of shape {pixels.shape}; expected one id per pixel")
        image = ImageData(integral_labels(pixels, path))
    array = image.array
    if array.dtype.kind == "i":
        if array.size and array.min() < 0:
            raise ConversionError(f"{path}: negative instance ids (min {int(array.min())}); expected ids >= 0 "
                                  f"with 0 as background")
        array = array.astype(instance_dtype(int(array.max(initial=0))))
    ids = np.unique(array)
    return ImageData(array, image.affine, image.spacing,
                     {**image.meta, "instance_count": int(np.count_nonzero(ids))})


__all__ = ["instance_dtype", "merge_instance_masks", "read_instance_map"]
