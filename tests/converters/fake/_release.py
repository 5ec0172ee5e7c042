"""Small helpers shared by the fake-release generators: images on disk, archives of folders."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def save_image(array: np.ndarray, path: Path, **options) -> Path:
    """Write ``array`` with Pillow (format from the suffix), creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **options)
    return path


def zip_tree(folder: Path, archive: Path, remove: bool = True) -> Path:
    """Zip everything under ``folder`` (directory entries included, as desktop zip tools write them)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for item in sorted(folder.rglob("*")):
            name = item.relative_to(folder).as_posix()
            if item.is_dir():
                zf.writestr(zipfile.ZipInfo(name + "/", date_time=(2020, 1, 1, 0, 0, 0)), b"")
            else:
                zf.write(item, name)
    if remove:
        shutil.rmtree(folder)
    return archive


def disc(shape, center, radius) -> np.ndarray:
    """Bool disc of ``radius`` pixels around (row, col) ``center``."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius ** 2
