"""Where data lives: one root, with downloads, raw and converted data kept apart.

Layout under the data root (see docs/format.md)::

    downloads/<dataset_id>/          files exactly as fetched + manifest.lock.json (never modified)
    raw/<dataset_id>/                downloads made usable: archives extracted, other files linked
    converted/<dataset_id>/<converter_version>/   the standard output
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "OMNIMEDSEG_HOME"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$OMNIMEDSEG_HOME``, else the per-user cache directory."""
    if root:
        return Path(root).expanduser().resolve()
    if os.environ.get(ENV_HOME):
        return Path(os.environ[ENV_HOME]).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_cache_dir("omnimedseg")).resolve()


def downloads_dir(dataset_id: str, root: str | os.PathLike | None = None) -> Path:
    return data_root(root) / "downloads" / dataset_id


def raw_dir(dataset_id: str, root: str | os.PathLike | None = None) -> Path:
    return data_root(root) / "raw" / dataset_id


def converted_dir(dataset_id: str, converter_version: str, root: str | os.PathLike | None = None) -> Path:
    return data_root(root) / "converted" / dataset_id / converter_version
