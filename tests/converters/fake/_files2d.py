"""Bytes of small 2D files and zip archives for the fake releases of 2D datasets."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np
from PIL import Image


def image_bytes(array: np.ndarray, format: str = "PNG", mode: str | None = None, **save) -> bytes:
    """Encoded image (PNG, JPEG, TIFF ...) of ``array``; ``mode`` converts first (e.g. "1", "RGBA")."""
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=format, **save)
    return buffer.getvalue()


def write_zip(path: Path, members: Mapping[str, bytes], folders: bool = True) -> None:
    """A zip with ``members`` (archive name -> bytes), plus explicit folder entries as zip tools write them."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        written = set()
        for name in sorted(members):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                folder = "/".join(parts[:i]) + "/"
                if folders and folder not in written:
                    zf.writestr(folder, b"")
                    written.add(folder)
            zf.writestr(name, members[name])
