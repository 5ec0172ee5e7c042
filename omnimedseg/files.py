"""File operations every layer shares: hashing, atomic files, atomic folders.

Nothing here ever leaves a half-written file or folder under its final name: readers
see either the old complete version or the new complete one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from filelock import FileLock, Timeout

from omnimedseg.errors import DatasetBusyError, OmnimedsegError, UsageError

CHUNK = 1 << 20


def file_hashes(path: Path, algorithms: tuple[str, ...] = ("sha256",)) -> dict[str, str]:
    """Hex digests of ``path`` for every algorithm, in one read."""
    digests = {alg: hashlib.new(alg) for alg in algorithms}
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            for d in digests.values():
                d.update(chunk)
    return {alg: d.hexdigest() for alg, d in digests.items()}


APPLEDOUBLE_PREFIX = "._"
MACOS_FOLDER = "__MACOSX"
MACOS_FILES = (".DS_Store",)


def is_macos_debris(path: str | os.PathLike) -> bool:
    """True for macOS archive debris: AppleDouble ``._*`` files (resource forks that carry no data),
    Finder's ``.DS_Store`` and anything under ``__MACOSX/``.

    The one definition both layers use: extraction never writes them into a raw tree
    (``downloaders._archives``), converters never list them (``converters.formats.listing``).
    """
    parts = Path(path).parts
    name = parts[-1] if parts else ""
    return name.startswith(APPLEDOUBLE_PREFIX) or name in MACOS_FILES or MACOS_FOLDER in parts


def file_stamp(path: str | os.PathLike) -> tuple[str, int, int]:
    """(path, size, mtime in ns): a cache key that changes whenever the file is rewritten or replaced."""
    st = os.stat(path)
    return str(path), st.st_size, st.st_mtime_ns


@contextmanager
def naming_errors(path: str | os.PathLike) -> Iterator[None]:
    """Give an ``OSError`` raised inside the block the file it concerns (``write`` errors such as
    ENOSPC carry none), so the one-line error the CLI prints names it."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None and not isinstance(exc, OmnimedsegError):
            exc.filename = str(path)  # only the kernel's errors: ours (DownloadError is an OSError) name theirs
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with naming_errors(path), os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Build ``target`` in a staging folder beside it; swap it into place only if the block succeeds.

    The staging name is unique per call, so two builders never delete each other's work; the
    swap moves any previous ``target`` aside first (a folder cannot be renamed over a non-empty
    one) and removes it only after the new one is in place. A failure (or Ctrl-C) removes the
    staging folder and leaves any previous ``target`` untouched; a rerun starts clean.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.staging-"))
    try:
        yield staging
        swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def swap_into_place(staging: Path, target: Path) -> None:
    """Rename the complete folder ``staging`` to ``target``; a previous ``target`` is removed after."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
        os.replace(target, old / target.name)
    try:
        os.replace(staging, target)
    except BaseException:
        if old is not None and not target.exists():
            os.replace(old / target.name, target)  # put the previous version back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def sweep_leftovers(target: Path) -> None:
    """Remove staging and set-aside folders that killed runs left beside ``target``.

    Only call this while holding the dataset's lock (:func:`dataset_lock`): then no other
    process can be building in them.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return
    for entry in target.parent.glob(f".{target.name}.*"):
        if entry.is_dir() and entry.name.startswith((f".{target.name}.staging-", f".{target.name}.old-",
                                                     f".{target.name}.extracting-")):
            shutil.rmtree(entry, ignore_errors=True)


ENV_NO_WAIT = "OMNIMEDSEG_NO_WAIT"
_LOCKS: dict[str, FileLock] = {}
_LOCKS_GUARD = threading.Lock()


def lock_path(dataset_id: str, root: str | os.PathLike | None = None) -> Path:
    """``<root>/.locks/<id>.lock``: outside downloads/, raw/ and converted/, so those only ever hold data."""
    import re

    from omnimedseg import paths

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", dataset_id):
        raise UsageError(f"{dataset_id!r} is not a dataset id (letters, digits, '.', '_', '-'); "
                         f"see: omnimedseg list")

    return paths.data_root(root) / ".locks" / f"{dataset_id}.lock"


@contextmanager
def dataset_lock(dataset_id: str, root: str | os.PathLike | None = None, wait: bool | None = None,
                 say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the per-dataset lock around every step writing ``downloads/<id>``, ``raw/<id>`` or ``converted/<id>``.

    Another process holding it makes this one wait (saying so once through ``say``, default
    stderr) or, with ``wait=False`` (or ``$OMNIMEDSEG_NO_WAIT=1`` when ``wait`` is None), refuse
    with :class:`DatasetBusyError`. Re-entrant within one thread (download -> prepare), an OS
    lock (``flock``) so a killed holder never blocks anyone. The lock file stays in
    ``<root>/.locks``: deleting a lock file while another process waits on it would let a
    third one in.
    """
    path = lock_path(dataset_id, root)
    if wait is None:
        wait = os.environ.get(ENV_NO_WAIT, "").strip().lower() not in ("1", "true", "yes")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(str(path), FileLock(str(path), thread_local=True))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise DatasetBusyError(f"{dataset_id}: another omnimedseg process is working on this dataset "
                                   f"(lock {path}); wait for it to finish, or rerun without --no-wait "
                                   f"to wait") from None
        (say or _to_stderr)(f"{dataset_id}: waiting for another omnimedseg process working on this dataset "
                            f"(lock {path})")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _to_stderr(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def repair_command(path: str | os.PathLike) -> str:
    """The command that re-checks (and repairs) the raw file ``path``: ``omnimedseg verify <id> --repair``.

    The dataset id is read from the ``raw/<id>/`` (or ``downloads/<id>/``) part of the path; a
    file elsewhere gets the generic form, so the advice is always a command that exists.
    """
    parts = Path(path).parts
    for anchor in ("raw", "downloads"):
        if anchor in parts:
            at = len(parts) - 1 - parts[::-1].index(anchor)
            if at + 1 < len(parts) - 1:
                return f"omnimedseg verify {parts[at + 1]} --repair"
    return "omnimedseg verify <dataset id> --repair"
