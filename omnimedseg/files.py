"""File operations every layer shares: hashing, atomic files, atomic folders.

Nothing here ever leaves a half-written file or folder under its final name: readers
see either the old complete version or the new complete one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CHUNK = 1 << 20


def file_hashes(path: Path, algorithms: tuple[str, ...] = ("sha256",)) -> dict[str, str]:
    """Hex digests of ``path`` for every algorithm, in one read."""
    digests = {alg: hashlib.new(alg) for alg in algorithms}
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            for d in digests.values():
                d.update(chunk)
    return {alg: d.hexdigest() for alg, d in digests.items()}


def file_stamp(path: str | os.PathLike) -> tuple[str, int, int]:
    """(path, size, mtime in ns): a cache key that changes whenever the file is rewritten or replaced."""
    st = os.stat(path)
    return str(path), st.st_size, st.st_mtime_ns


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Build ``target`` in a staging folder beside it; swap it into place only if the block succeeds.

    A failure (or Ctrl-C) removes the staging folder and leaves any previous ``target``
    untouched; a rerun starts clean.
    """
    target = Path(target)
    staging = target.with_name(f".{target.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
