"""Listing the files of an extracted release, without the debris archives carry.

Archives packed on macOS hold AppleDouble companions (``._<name>``, resource forks that
carry no image) beside real files, often inside ``__MACOSX/``, and Finder's ``.DS_Store``.
They match a converter's glob (``imagesTr/*.nii.gz`` also matches ``imagesTr/._la_003.nii.gz``,
as in the Medical Segmentation Decathlon tars) and then fail to read, so every converter lists
files through :func:`list_files`, the one place that knows about them.
"""

from __future__ import annotations

import os
from pathlib import Path

APPLEDOUBLE_PREFIX = "._"
MACOS_FOLDER = "__MACOSX"
MACOS_FILES = (".DS_Store",)


def is_macos_debris(path: str | os.PathLike) -> bool:
    """True for AppleDouble ``._*`` files, ``.DS_Store`` and anything under ``__MACOSX/``."""
    parts = Path(path).parts
    name = parts[-1] if parts else ""
    return name.startswith(APPLEDOUBLE_PREFIX) or name in MACOS_FILES or MACOS_FOLDER in parts


def list_files(folder: str | os.PathLike, pattern: str = "*") -> list[Path]:
    """Sorted files in ``folder`` matching ``pattern`` (``Path.glob`` syntax), macOS debris left out.

    A missing folder gives an empty list: converters that read a side file yield every listed
    case and let the core report absent ones; converters that glob find nothing there.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(pattern)
                  if p.is_file() and not is_macos_debris(p.relative_to(folder)))


__all__ = ["APPLEDOUBLE_PREFIX", "is_macos_debris", "list_files"]
