"""Download layer: one downloader per platform, all on one shared transfer engine.

A platform plugin is a module ``downloaders/<platform>.py`` with one
:class:`Downloader` subclass whose ``resolve`` returns a pinned :class:`Manifest`.
Shared machinery lives in the private modules (``_transfer``, ``_archives``...).
"""

from omnimedseg.downloaders._base import MANIFEST_NAME, Downloader, Manifest
from omnimedseg.downloaders._dataset import download_dataset, prepare_raw, verify_dataset

__all__ = ["Downloader", "Manifest", "MANIFEST_NAME", "download_dataset", "prepare_raw", "verify_dataset"]
