"""Listing the files of an extracted release, without the debris archives carry.

Archives packed on macOS hold AppleDouble companions (``._<name>``, resource forks that
carry no image) beside real files, often inside ``__MACOSX/``, and Finder's ``.DS_Store``.
Raw trees made by ``omnimedseg download`` hold none (the extractor leaves them out), but a
folder given to ``convert --raw`` may. They match a converter's glob (``imagesTr/*.nii.gz``
also matches ``imagesTr/._la_003.nii.gz``, as in the Medical Segmentation Decathlon tars) and
then fail to read, so every converter lists files through :func:`list_files`. What counts as
debris is defined once, in :func:`omnimedseg.files.is_macos_debris`.
"""

from __future__ import annotations

import os
from pathlib import Path

from omnimedseg.files import APPLEDOUBLE_PREFIX, is_macos_debris


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
