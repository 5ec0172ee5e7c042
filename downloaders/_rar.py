"""RAR archives (RAR 4 and RAR 5), read through libarchive.

RAR is a proprietary format: no free library writes it, and Python has no reader of its
own. libarchive (the C library behind ``bsdtar``; BSD-licensed, maintained, reads RAR 4
and RAR 5 including compressed members) is reached through its ``libarchive-c`` binding,
so no ``unrar`` binary is needed. Install: ``pip install libarchive-c`` plus the system
library (Debian/Ubuntu ``apt-get install libarchive13``, macOS ``brew install libarchive``).

The download layer's safety rules apply unchanged (``_archives.extract`` calls these two
functions): names are checked by the same rule as zip/tar members, links and special
files are refused, and each member is copied with the same bound on its declared size.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from omnimedseg.errors import DownloadError
from omnimedseg.files import repair_command

INSTALL_HINT = ("RAR archives need libarchive: pip install libarchive-c, plus the system library "
                "(apt-get install libarchive13 / brew install libarchive)")


def _libarchive(archive: Path):
    try:
        import libarchive
    except (ImportError, OSError, AttributeError) as exc:  # the binding raises if libarchive.so is absent
        raise DownloadError(f"{archive}: cannot read RAR ({exc}); {INSTALL_HINT}") from None
    return libarchive


def _reading(archive: Path):
    libarchive = _libarchive(archive)
    try:
        return libarchive.file_reader(str(archive))
    except libarchive.ArchiveError as exc:
        raise DownloadError(f"{archive}: not a readable RAR archive ({exc}); check it with "
                            f"{repair_command(archive)}") from None


class _Blocks:
    """File-like view of libarchive's data blocks, for ``_archives._bounded_copy``."""

    def __init__(self, entry):
        self._blocks = iter(entry.get_blocks())

    def read(self, _size: int = -1) -> bytes:
        return next(self._blocks, b"")


def _checked(archive: Path, entry) -> tuple[PurePosixPath, int, bool]:
    from omnimedseg.downloaders._archives import _checked_member_path

    name = entry.pathname
    if entry.issym or entry.islnk:
        raise DownloadError(f"{archive}: refusing link member {name!r}")
    if not (entry.isfile or entry.isdir):
        raise DownloadError(f"{archive}: refusing special file member {name!r}")
    return _checked_member_path(archive, name, bool(entry.isdir)), int(entry.size or 0), bool(entry.isdir)


def rar_members(archive: Path, limits) -> list[tuple[PurePosixPath, int, bool]]:
    """(safe relative path, declared size, is directory) of every member; refuses links and devices.

    Stops counting at ``limits.max_members`` (an ``ExtractionLimits``), before reading further headers.
    """
    libarchive = _libarchive(archive)
    members = []
    try:
        with _reading(archive) as reader:
            for entry in reader:
                members.append(_checked(archive, entry))
                if len(members) > limits.max_members:
                    raise DownloadError(f"{archive}: more than {limits.max_members} members (the limit)")
    except libarchive.ArchiveError as exc:
        raise _damaged(archive, exc, f" in or after member {str(members[-1][0])!r}" if members else "") from None
    return members


def _damaged(archive: Path, exc: Exception, where: str) -> DownloadError:
    return DownloadError(f"{archive}: damaged RAR archive{where} ({exc}); check it with {repair_command(archive)}")


def write_rar_members(archive: Path, staging: Path, members: list[tuple[PurePosixPath, int, bool]],
                      budget) -> list[Path]:
    """Write the members listed by :func:`rar_members` under ``staging``; returns the files written.

    ``budget`` (the extractor's running size/ratio limits) is charged per chunk; libarchive does not
    expose the compressed position, so the ratio is taken against the whole archive's size.
    """
    from omnimedseg.downloaders._archives import _bounded_copy, file_target

    libarchive = _libarchive(archive)
    root = staging.resolve()
    written = []
    size_on_disk = archive.stat().st_size
    compressed = lambda: size_on_disk  # noqa: E731
    path = None  # the member being read, named when libarchive fails on it
    try:
        with _reading(archive) as reader:
            for index, entry in enumerate(reader):
                path, size, is_dir = _checked(archive, entry)
                if index >= len(members) or members[index][0] != path:
                    raise DownloadError(f"{archive}: member list changed between listing and extraction "
                                        f"at {entry.pathname!r}")
                out = file_target(root, path, is_dir, archive)
                if out is None:
                    continue
                with open(out, "wb") as dst:
                    _bounded_copy(_Blocks(entry), dst, size, archive, entry.pathname, budget, compressed)
                written.append(out)
    except libarchive.ArchiveError as exc:
        raise _damaged(archive, exc, f" at member {str(path)!r}" if path is not None else "") from None
    return written
