"""Write RAR 5 archives with stored (uncompressed) members, for tests and fake releases.

No free tool writes RAR (the format's compressor is proprietary), so fixtures are built
here by hand from the published format description (https://www.rarlab.com/technote.htm,
"RAR 5.0 archive format"): signature, main archive header, one file header per member
(method 0 = store, data CRC32, Unix host attributes), end-of-archive header. Every header
carries the CRC32 the format requires, so readers (libarchive, unrar) accept the result.
"""

from __future__ import annotations

import stat
import zlib
from pathlib import Path
from typing import Iterable

SIGNATURE = b"Rar!\x1a\x07\x01\x00"
HOST_UNIX = 1


def vint(value: int) -> bytes:
    """RAR 5 variable-length integer: 7 bits per byte, low bits first, high bit = more bytes."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _header(kind: int, flags: int, fields: bytes, data_size: int | None = None) -> bytes:
    body = vint(kind) + vint(flags | (0x0002 if data_size is not None else 0))
    if data_size is not None:
        body += vint(data_size)
    body += fields
    sized = vint(len(body)) + body
    return zlib.crc32(sized).to_bytes(4, "little") + sized


def _file_header(name: str, data: bytes, mode: int) -> bytes:
    is_dir = stat.S_ISDIR(mode)
    encoded = name.encode("utf-8")
    fields = (vint(0x0001 if is_dir else 0x0004)  # directory flag | data CRC32 present
              + vint(len(data)) + vint(mode)
              + (b"" if is_dir else zlib.crc32(data).to_bytes(4, "little"))
              + vint(0)  # compression info: version 0, method 0 (store)
              + vint(HOST_UNIX) + vint(len(encoded)) + encoded)
    return _header(2, 0, fields, data_size=len(data)) + data


def write_rar5(path: Path, members: Iterable[tuple[str, bytes | None, int]]) -> Path:
    """Write ``members`` = (name, data or None for a directory, Unix mode) as a RAR 5 archive."""
    parts = [SIGNATURE, _header(1, 0, vint(0))]  # main archive header, no archive flags
    for name, data, mode in members:
        parts.append(_file_header(name, data or b"", mode))
    parts.append(_header(5, 0, vint(0)))  # end of archive, last volume
    Path(path).write_bytes(b"".join(parts))
    return Path(path)


def rar5_of_folder(path: Path, folder: Path) -> Path:
    """A RAR 5 archive of everything under ``folder`` (names relative to it, directories included)."""
    members = []
    for item in sorted(folder.rglob("*")):
        name = item.relative_to(folder).as_posix()
        if item.is_dir():
            members.append((name, None, stat.S_IFDIR | 0o755))
        else:
            members.append((name, item.read_bytes(), stat.S_IFREG | 0o644))
    return write_rar5(path, members)
