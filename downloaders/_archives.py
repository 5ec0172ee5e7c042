"""Safe archive extraction (zip, tar, tar.gz/bz2/xz, 7z when py7zr is installed, RAR via libarchive: ``_rar``).

Every member is checked before anything is written: no absolute paths, no ``..``,
no links or device files, bounded member count, total size and compression ratio
(bomb protection), enough free disk. The member count is read from the ZIP end record
(or counted over tar headers only up to the limit) before any directory is loaded, and
sizes and ratio are enforced again, cumulatively, while bytes are written, so neither a
lying header nor a bomb padded with incompressible bytes gets far. Extraction goes to a
uniquely named staging folder that is renamed into place only when complete. Every
library error (bad CRC, truncated stream, not an archive) becomes one line naming the archive.
macOS debris (``__MACOSX/``, ``._*``, ``.DS_Store``: :func:`omnimedseg.files.is_macos_debris`)
is never written: two archives of one release that both carry ``__MACOSX/`` would otherwise
clash in the raw tree, and no converter reads it.
"""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import struct
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from omnimedseg.errors import DownloadError
from omnimedseg.files import is_macos_debris, naming_errors, repair_command

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".7z", ".rar")
# what zipfile, tarfile and the decompressors raise for damaged input
_LIBRARY_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, zlib.error, lzma.LZMAError,
                   EOFError, NotImplementedError, RuntimeError, ValueError, struct.error)


@dataclass(frozen=True)
class ExtractionLimits:
    max_members: int = 2_000_000
    max_total_bytes: int = 4 << 40  # 4 TiB of uncompressed content
    max_ratio: float = 1000.0  # uncompressed / compressed, for the whole archive
    ratio_floor: int = 1 << 30  # the running ratio is only judged once this many bytes were written


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _checked_member_path(archive: Path, name: str, is_dir: bool) -> PurePosixPath:
    """The member name as a safe relative path: one rule set for API names and archive members.

    A directory entry for the archive root (``./``) is allowed (empty path); a *file* without a
    name (``""``, ``.``) is refused: it could only be written over a folder.
    """
    from omnimedseg.downloaders._transfer import safe_name

    if name.replace("\\", "/").strip("/") in ("", "."):
        if is_dir:
            return PurePosixPath()
        raise DownloadError(f"{archive}: refusing member {name!r}: a file entry without a file name")
    return PurePosixPath(safe_name(name, f"{archive}: member"))


def zip_member_count(archive: Path) -> int:
    """Entries declared by the ZIP end-of-central-directory record (ZIP64 aware), read before the directory.

    Hand-written (APPNOTE 4.3.16/4.3.14/4.3.15) because ``zipfile`` only counts by loading the
    whole central directory into memory, which is what a member-count limit must avoid.
    """
    with open(archive, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        tail_len = min(size, 22 + 0xFFFF)
        fh.seek(size - tail_len)
        tail = fh.read(tail_len)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            raise DownloadError(f"{archive}: not a ZIP file (no end-of-central-directory record); the file is "
                                f"damaged or not a ZIP: delete it and rerun omnimedseg download")
        count = struct.unpack("<H", tail[at + 10:at + 12])[0]
        locator = at - 20
        if locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07":
            offset = struct.unpack("<Q", tail[locator + 8:locator + 16])[0]
            fh.seek(offset)
            record = fh.read(56)
            if len(record) == 56 and record[:4] == b"PK\x06\x06":
                count = struct.unpack("<Q", record[32:40])[0]
        return count


def _zip_members(archive: Path, limits: ExtractionLimits) -> list[tuple[PurePosixPath, int, bool]]:
    declared = zip_member_count(archive)
    if declared > limits.max_members:
        raise DownloadError(f"{archive}: {declared} members exceeds the limit of {limits.max_members}")
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:  # the end record lied about the count
            raise DownloadError(f"{archive}: {len(infos)} members exceeds the limit of {limits.max_members}")
        members = []
        packed = 0
        for info in infos:
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise DownloadError(f"{archive}: refusing symbolic link member {info.filename!r}")
            packed += info.compress_size
            is_dir = info.filename.endswith("/")  # ZipInfo.is_dir() fails on an empty name
            members.append((_checked_member_path(archive, info.filename, is_dir), info.file_size, is_dir))
        if packed > archive.stat().st_size:  # members sharing compressed bytes: an overlapping-entry bomb
            raise DownloadError(f"{archive}: members claim {packed} compressed bytes in a {archive.stat().st_size}"
                                f"-byte file (overlapping entries: possible archive bomb)")
        return members


def _tar_members(archive: Path, limits: ExtractionLimits) -> list[tuple[PurePosixPath, int, bool]]:
    members = []
    with tarfile.open(archive) as tf:
        for info in tf:  # header by header: stop at the limit, never load the whole index first
            if len(members) >= limits.max_members:
                raise DownloadError(f"{archive}: more than {limits.max_members} members (the limit)")
            if not (info.isfile() or info.isdir()):
                kind = "link" if (info.issym() or info.islnk()) else "special file"
                raise DownloadError(f"{archive}: refusing {kind} member {info.name!r}")
            members.append((_checked_member_path(archive, info.name, info.isdir()), info.size, info.isdir()))
            tf.members = []  # tarfile keeps every header it read; we already have what we need
    return members


def _7z_members(archive: Path, limits: ExtractionLimits) -> list[tuple[PurePosixPath, int, bool]]:
    try:
        import py7zr
    except ImportError:
        raise DownloadError(f"{archive}: 7z archives need the optional package py7zr (pip install py7zr)") from None
    with py7zr.SevenZipFile(archive) as sz:
        members = []
        for info in sz.list():
            if getattr(info, "is_symlink", False):
                raise DownloadError(f"{archive}: refusing symbolic link member {info.filename!r}")
            members.append((_checked_member_path(archive, info.filename, info.is_directory), info.uncompressed or 0,
                            info.is_directory))
            if len(members) > limits.max_members:
                raise DownloadError(f"{archive}: more than {limits.max_members} members (the limit)")
        return members


def extract(archive: Path, target: Path, limits: ExtractionLimits = ExtractionLimits()) -> list[Path]:
    """Extract ``archive`` into ``target`` (created; must not exist). Returns the files written."""
    try:
        return _extract(archive, target, limits)
    except _LIBRARY_ERRORS as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DownloadError(f"{archive}: damaged or unreadable archive ({detail}); check it with "
                            f"{repair_command(archive)}") from None


def _extract(archive: Path, target: Path, limits: ExtractionLimits) -> list[Path]:
    name = archive.name.lower()
    if name.endswith(".zip"):
        members = _zip_members(archive, limits)
    elif name.endswith(".7z"):
        members = _7z_members(archive, limits)
    elif name.endswith(".rar"):
        from omnimedseg.downloaders._rar import rar_members

        members = rar_members(archive, limits)
    elif tarfile.is_tarfile(archive):
        members = _tar_members(archive, limits)
    else:
        raise DownloadError(f"{archive}: not a supported archive (expected one of {', '.join(ARCHIVE_SUFFIXES)})")
    _refuse_twins(archive, members)
    total = sum(size for _, size, _ in members)
    if total > limits.max_total_bytes:
        raise DownloadError(f"{archive}: {total} uncompressed bytes exceeds the limit of {limits.max_total_bytes}")
    compressed = max(archive.stat().st_size, 1)
    if total / compressed > limits.max_ratio:
        raise DownloadError(f"{archive}: compression ratio {total / compressed:.0f} exceeds {limits.max_ratio:.0f} "
                            f"(possible archive bomb)")
    target.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target.parent).free
    if total > free:
        raise DownloadError(f"{archive}: needs {total} bytes to extract, only {free} free on {target.parent}")
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.extracting-"))
    try:
        written = _write_members(archive, staging, members, _Budget(archive, limits, min(total, free)))
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [target / p.relative_to(staging) for p in written]


def _refuse_twins(archive: Path, members: list[tuple[PurePosixPath, int, bool]]) -> None:
    """Two members that would be written to one file (the same name twice, or twins once names are NFC, as
    ``safe_name`` makes them): the later one silently replaced the earlier one. A folder and a file of one
    name clash too."""
    seen: dict[PurePosixPath, bool] = {}
    for path, _, is_dir in members:
        if is_macos_debris(path):
            continue  # never written
        if path in seen and not (is_dir and seen[path]):
            raise DownloadError(f"{archive}: two members are named {str(path)!r} (names compared after Unicode "
                                f"NFC normalisation); one would silently replace the other: the archive cannot be "
                                f"extracted safely")
        seen[path] = is_dir
    for path in seen:
        clash = next((parent for parent in path.parents if seen.get(parent) is False), None)
        if clash is not None:
            raise DownloadError(f"{archive}: member {str(path)!r} lies below {str(clash)!r}, which is a file member; "
                                f"the archive cannot be extracted")


class _Budget:
    """Bytes written so far against the declared total, the size limit and the running ratio."""

    def __init__(self, archive: Path, limits: ExtractionLimits, allowed: int):
        self.archive, self.limits, self.allowed = archive, limits, allowed
        self.written = 0

    def spend(self, n: int, consumed: int) -> None:
        """``n`` more bytes written; ``consumed`` compressed bytes of the archive read so far."""
        self.written += n
        if self.written > self.allowed:
            raise DownloadError(f"{self.archive}: members inflate past the {self.allowed} bytes declared in their "
                                f"headers (possible archive bomb)")
        if self.written > self.limits.ratio_floor and self.written / max(consumed, 1) > self.limits.max_ratio:
            raise DownloadError(f"{self.archive}: {self.written} bytes out of {consumed} compressed bytes exceeds "
                                f"the ratio {self.limits.max_ratio:.0f} (possible archive bomb)")


def _write_members(archive: Path, staging: Path, members: list[tuple[PurePosixPath, int, bool]],
                   budget: _Budget) -> list[Path]:
    written = []
    root = staging.resolve()
    if archive.name.lower().endswith(".rar"):
        from omnimedseg.downloaders._rar import write_rar_members

        return write_rar_members(archive, staging, members, budget)
    if archive.name.lower().endswith(".7z"):
        import py7zr

        for path, _, _ in members:
            _inside(root, path, archive)
        with py7zr.SevenZipFile(archive) as sz:
            sz.extractall(path=root)
        _remove_debris(root)
        total = 0
        for out in sorted(root.rglob("*")):
            if out.is_symlink() or not (out.is_file() or out.is_dir()):
                raise DownloadError(f"{archive}: refusing link or special file {out.relative_to(root)}")
            if out.is_file():
                total += out.stat().st_size
                written.append(out)
        if total > sum(size for _, size, _ in members):
            raise DownloadError(f"{archive}: members inflated past their declared sizes")
        return written
    is_zip = archive.name.lower().endswith(".zip")
    with (zipfile.ZipFile(archive) if is_zip else tarfile.open(archive)) as container:
        # the compressed bytes read so far: zip entries' sizes, or the tar stream's position in the file
        raw = None if is_zip else getattr(container.fileobj, "fileobj", None) or container.fileobj
        infos = iter(container.infolist()) if is_zip else container
        open_member = container.open if is_zip else container.extractfile
        consumed = 0
        for info, (path, size, is_dir) in zip(infos, members):
            consumed = consumed + info.compress_size if is_zip else _position(raw)
            out = file_target(root, path, is_dir, archive)
            if out is None:
                continue
            member_name = info.filename if is_zip else info.name
            try:
                with open_member(info) as src, open(out, "wb") as dst, naming_errors(out):
                    _bounded_copy(src, dst, size, archive, member_name, budget,
                                  (lambda: consumed) if is_zip else (lambda: _position(raw)))
            except _LIBRARY_ERRORS as exc:
                detail = " ".join(str(exc).split()) or type(exc).__name__
                raise DownloadError(f"{archive}: member {member_name!r} is damaged ({detail}); the archive cannot "
                                    f"be used: check it with {repair_command(archive)}") from None
            written.append(out)
            if not is_zip:
                container.members = []  # keep memory flat over millions of headers
    return written


def _remove_debris(root: Path) -> None:
    """Delete macOS debris a whole-archive extractor (py7zr) wrote: never part of a raw tree."""
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts)):
        if path.exists() and not path.is_symlink() and is_macos_debris(path.relative_to(root)):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _position(raw) -> int:
    try:
        return raw.tell()
    except (AttributeError, OSError, ValueError):
        return 0


def file_target(root: Path, member: PurePosixPath, is_dir: bool, archive: Path) -> Path | None:
    """Where a file member is written (its folder made); None for a folder (made) or macOS debris (skipped)."""
    out = _inside(root, member, archive)
    if is_macos_debris(member):
        return None
    if is_dir:
        out.mkdir(parents=True, exist_ok=True)
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _inside(root: Path, member: PurePosixPath, archive: Path) -> Path:
    out = (root / Path(*member.parts)).resolve() if member.parts else root
    if out != root and root not in out.parents:
        raise DownloadError(f"{archive}: member {str(member)!r} would be written outside {root}")
    return out


def _bounded_copy(src, dst, declared: int, archive: Path, name: str, budget: _Budget, consumed) -> int:
    """Copy at most ``declared`` bytes: a member that inflates past its header is refused."""
    copied = 0
    for chunk in iter(lambda: src.read(1 << 20), b""):
        copied += len(chunk)
        if copied > declared:
            raise DownloadError(f"{archive}: member {name!r} is larger than its declared {declared} bytes")
        budget.spend(len(chunk), consumed())
        dst.write(chunk)
    return copied
