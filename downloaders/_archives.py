"""Safe archive extraction (zip, tar, tar.gz/bz2/xz, 7z when py7zr is installed, RAR via libarchive: ``_rar``).

Every member is checked before anything is written: no absolute paths, no ``..``,
no links or device files, bounded member count, total size and compression ratio
(bomb protection), enough free disk. Extraction goes to a staging folder that is
renamed into place only when complete.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from omnimedseg.errors import DownloadError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".7z", ".rar")


@dataclass(frozen=True)
class ExtractionLimits:
    max_members: int = 2_000_000
    max_total_bytes: int = 4 << 40  # 4 TiB of uncompressed content
    max_ratio: float = 1000.0  # uncompressed / compressed, for the whole archive


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _checked_member_path(archive: Path, name: str) -> PurePosixPath:
    """The member name as a safe relative path: one rule set for API names and archive members."""
    from omnimedseg.downloaders._transfer import safe_name

    if name.replace("\\", "/").strip("/") in ("", "."):
        return PurePosixPath()
    return PurePosixPath(safe_name(name, f"{archive}: member"))


def _zip_members(archive: Path) -> list[tuple[PurePosixPath, int, bool]]:
    with zipfile.ZipFile(archive) as zf:
        members = []
        for info in zf.infolist():
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise DownloadError(f"{archive}: refusing symbolic link member {info.filename!r}")
            members.append((_checked_member_path(archive, info.filename), info.file_size, info.is_dir()))
        return members


def _tar_members(archive: Path) -> list[tuple[PurePosixPath, int, bool]]:
    with tarfile.open(archive) as tf:
        members = []
        for info in tf.getmembers():
            if not (info.isfile() or info.isdir()):
                kind = "link" if (info.issym() or info.islnk()) else "special file"
                raise DownloadError(f"{archive}: refusing {kind} member {info.name!r}")
            members.append((_checked_member_path(archive, info.name), info.size, info.isdir()))
        return members


def _7z_members(archive: Path) -> list[tuple[PurePosixPath, int, bool]]:
    try:
        import py7zr
    except ImportError:
        raise DownloadError(f"{archive}: 7z archives need the optional package py7zr (pip install py7zr)") from None
    with py7zr.SevenZipFile(archive) as sz:
        members = []
        for info in sz.list():
            if getattr(info, "is_symlink", False):
                raise DownloadError(f"{archive}: refusing symbolic link member {info.filename!r}")
            members.append((_checked_member_path(archive, info.filename), info.uncompressed or 0, info.is_directory))
        return members


def extract(archive: Path, target: Path, limits: ExtractionLimits = ExtractionLimits()) -> list[Path]:
    """Extract ``archive`` into ``target`` (created; must not exist). Returns the files written."""
    name = archive.name.lower()
    if name.endswith(".zip"):
        members = _zip_members(archive)
    elif name.endswith(".7z"):
        members = _7z_members(archive)
    elif name.endswith(".rar"):
        from omnimedseg.downloaders._rar import rar_members

        members = rar_members(archive)
    elif tarfile.is_tarfile(archive):
        members = _tar_members(archive)
    else:
        raise DownloadError(f"{archive}: not a supported archive (expected one of {', '.join(ARCHIVE_SUFFIXES)})")
    total = sum(size for _, size, _ in members)
    if len(members) > limits.max_members:
        raise DownloadError(f"{archive}: {len(members)} members exceeds the limit of {limits.max_members}")
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
    staging = target.with_name(f".{target.name}.extracting")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        written = _write_members(archive, staging, members)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [target / p.relative_to(staging) for p in written]


def _write_members(archive: Path, staging: Path, members: list[tuple[PurePosixPath, int, bool]]) -> list[Path]:
    written = []
    root = staging.resolve()
    if archive.name.lower().endswith(".rar"):
        from omnimedseg.downloaders._rar import write_rar_members

        return write_rar_members(archive, staging, members)
    if archive.name.lower().endswith(".7z"):
        import py7zr

        for path, _, _ in members:
            _inside(root, path, archive)
        with py7zr.SevenZipFile(archive) as sz:
            sz.extractall(path=root)
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
        infos = container.infolist() if is_zip else container.getmembers()
        open_member = container.open if is_zip else container.extractfile
        for info, (path, size, is_dir) in zip(infos, members):
            out = _inside(root, path, archive)
            if is_dir:
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            with open_member(info) as src, open(out, "wb") as dst:
                _bounded_copy(src, dst, size, archive, info.filename if is_zip else info.name)
            written.append(out)
    return written


def _inside(root: Path, member: PurePosixPath, archive: Path) -> Path:
    out = (root / Path(*member.parts)).resolve() if member.parts else root
    if out != root and root not in out.parents:
        raise DownloadError(f"{archive}: member {str(member)!r} would be written outside {root}")
    return out


def _bounded_copy(src, dst, declared: int, archive: Path, name: str) -> int:
    """Copy at most ``declared`` bytes: a member that inflates past its header is refused."""
    copied = 0
    for chunk in iter(lambda: src.read(1 << 20), b""):
        copied += len(chunk)
        if copied > declared:
            raise DownloadError(f"{archive}: member {name!r} is larger than its declared {declared} bytes")
        dst.write(chunk)
    return copied
