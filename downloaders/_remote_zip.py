"""Read a ZIP archive on a server by HTTP Range requests: its central directory, then chosen members.

Why: ``download --sample N`` of a dataset that is one 23-37 GB ZIP (TotalSegmentator on Zenodo)
must not fetch the archive. The end-of-central-directory record (and its ZIP64 locator and
record) sits in the last bytes; the central directory gives every member's name, sizes,
CRC-32 and local header offset; a member is its local header plus compressed bytes. Python's
``zipfile`` needs a seekable file, and a seekable HTTP file object would issue one request per
``read``; reading the few structures we need by hand (layout: PKWARE APPNOTE 6.3.x, sections
4.3.7, 4.3.12, 4.3.14-16, 4.5.3) lets neighbouring members share one request. Every member is
verified against the central directory's CRC-32 and size after inflating.

Transfers go through the shared :class:`~omnimedseg.downloaders._http.HttpClient` (retries,
rate limits, safe redirects); a byte run is streamed to a ``.part`` file and resumed with Range
after a dropped connection or a rerun; the ETag of the first answer must hold for every range, so
bytes of two different archives are never mixed.
"""

from __future__ import annotations

import bz2
import http.client
import os
import re
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import unquote, urlparse

import requests
import urllib3

from omnimedseg.downloaders._http import HttpClient, redact
from omnimedseg.downloaders._transfer import _body_reader
from omnimedseg.errors import ChecksumMismatchError, DownloadError
from omnimedseg.files import CHUNK

EOCD = struct.Struct("<4sHHHHIIH")  # end of central directory (APPNOTE 4.3.16)
ZIP64_LOCATOR = struct.Struct("<4sIQI")  # 4.3.15
ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")  # 4.3.14
CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")  # central directory file header, 4.3.12
LOCAL = struct.Struct("<4sHHHHHIIIHH")  # local file header, 4.3.7
TAIL = EOCD.size + 0xFFFF + ZIP64_LOCATOR.size  # the EOCD lies within this many final bytes
RUN_GAP = 256 << 10  # members closer than this are fetched in one request (a gap costs less than a request)
_STREAM_ERRORS = (requests.ConnectionError, requests.Timeout, urllib3.exceptions.HTTPError,
                  http.client.HTTPException, OSError)


@dataclass(frozen=True)
class Member:
    """One entry of the central directory."""

    name: str
    method: int
    flags: int
    crc: int
    compressed_size: int
    size: int
    offset: int  # of the local header
    end: int = 0  # where the next entry (or the central directory) starts: the member's span

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


class RangeSource:
    """Bytes of one remote (``http(s)://``) or local (``file://``) archive by offset."""

    def __init__(self, url: str, size: int | None, client: HttpClient | None = None,
                 refresh: Callable[[], str] | None = None, name: str = ""):
        self.url, self.size, self.client, self.refresh = url, size, client or HttpClient(), refresh
        self.name = name or Path(urlparse(url).path).name
        self.local = Path(unquote(urlparse(url).path)) if urlparse(url).scheme == "file" else None
        self.etag: str | None = None
        self.received = 0  # bytes read from the archive so far (a sample's cost)
        if self.local is not None and self.size is None:
            self.size = self.local.stat().st_size

    def read(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` in memory (small structures)."""
        if self.local is not None:
            with open(self.local, "rb") as fh:
                fh.seek(start)
                self.received += end - start
                return fh.read(end - start)
        chunks = bytearray()
        self._stream(start, end, chunks.extend)
        return bytes(chunks)

    def fetch_to(self, start: int, end: int, part: Path) -> None:
        """Bytes ``[start, end)`` into ``part``, resuming from what ``part`` already holds."""
        have = part.stat().st_size if part.exists() else 0
        if have > end - start:
            part.unlink()
            have = 0
        if have == end - start:
            return
        with open(part, "ab") as out:
            if self.local is not None:
                with open(self.local, "rb") as fh:
                    fh.seek(start + have)
                    shutil.copyfileobj(_Limited(fh, end - start - have), out, CHUNK)
                    self.received += end - start - have
            else:
                self._stream(start + have, end, out.write)

    def _stream(self, start: int, end: int, sink: Callable[[bytes], object]) -> None:
        """GET ``Range: bytes=start-(end-1)``; a dropped stream resumes where it stopped."""
        failures = 0
        while start < end:
            headers = {"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}
            response = self.client.request("GET", self.url, headers=headers, stream=True, ok=(200, 206, 403),
                                           what=self.name)
            if response.status_code == 403 and self.refresh is not None and failures < self.client.retries:
                response.close()
                self.url, failures = self.refresh(), failures + 1  # a signed link expired
                continue
            self._check_range(response, start, end)
            readinto = _body_reader(response, decode=False)  # keeps a short read when the connection drops
            buffer = memoryview(bytearray(CHUNK))
            try:
                while start < end:
                    n = readinto(buffer[: min(CHUNK, end - start)])
                    if not n:
                        break
                    sink(buffer[:n])
                    start += n
                    self.received += n
            except _STREAM_ERRORS as exc:
                failures += 1
                if failures > self.client.retries:
                    raise DownloadError(f"{self.name}: connection lost at byte {start} of a range from "
                                        f"{redact(self.url)} ({type(exc).__name__}, {failures} attempts); "
                                        f"rerun the same command to resume") from None
                continue
            finally:
                response.close()
            if start < end:
                failures += 1
                if failures > self.client.retries:
                    raise DownloadError(f"{self.name}: {redact(self.url)} ended a range early at byte {start}; "
                                        f"rerun the same command to resume")

    def _check_range(self, response: requests.Response, start: int, end: int) -> None:
        if response.status_code != 206:
            response.close()
            raise DownloadError(f"{self.name}: {redact(self.url)} answered HTTP {response.status_code} to a Range "
                                f"request; the server cannot serve parts of the archive, so --sample cannot work "
                                f"here: run omnimedseg download without --sample")
        match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
        total = int(match.group(3)) if match and match.group(3) != "*" else None
        etag = response.headers.get("ETag") or None
        if not match or int(match.group(1)) != start or (self.size is not None and total not in (None, self.size)):
            response.close()
            raise DownloadError(f"{self.name}: asked {redact(self.url)} for bytes {start}-{end - 1} of "
                                f"{self.size}, got Content-Range {response.headers.get('Content-Range')!r}")
        if self.etag is not None and etag is not None and etag != self.etag:
            response.close()
            raise DownloadError(f"{self.name}: the archive changed on the server (ETag {self.etag} -> {etag}) "
                                f"while reading it; rerun the same command")
        self.etag = self.etag or etag
        if self.size is None:
            self.size = total


class _Limited:
    def __init__(self, fh, left: int):
        self.fh, self.left = fh, left

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(self.left if n < 0 else min(n, self.left))
        self.left -= len(data)
        return data


def read_central_directory(source: RangeSource) -> list[Member]:
    """Every member of the archive, from its end records and central directory (ZIP64 aware)."""
    size = source.size
    if size is None or size < EOCD.size:
        raise DownloadError(f"{source.name}: size unknown or too small ({size} bytes) to be a ZIP archive")
    for window in (4096, TAIL):  # most archives have no comment: 4 KiB suffice
        tail = source.read(max(0, size - window), size)
        at = _find_eocd(tail)
        if at >= 0 or window >= size:
            break
    if at < 0:
        raise DownloadError(f"{source.name}: no end-of-central-directory record in the last {len(tail)} bytes; "
                            f"not a ZIP archive (or truncated on the server)")
    _, disk, cd_disk, _, count, cd_size, cd_offset, _ = EOCD.unpack_from(tail, at)
    if at >= ZIP64_LOCATOR.size and tail[at - ZIP64_LOCATOR.size:at - ZIP64_LOCATOR.size + 4] == b"PK\x06\x07":
        _, _, record_offset, disks = ZIP64_LOCATOR.unpack_from(tail, at - ZIP64_LOCATOR.size)
        record = source.read(record_offset, record_offset + ZIP64_EOCD.size)
        if record[:4] != b"PK\x06\x06":
            raise DownloadError(f"{source.name}: ZIP64 locator points at byte {record_offset}, which holds no "
                                f"ZIP64 end record")
        (_, _, _, _, disk, cd_disk, _, count, cd_size, cd_offset) = ZIP64_EOCD.unpack(record)
    if disk or cd_disk:
        raise DownloadError(f"{source.name}: multi-disk (split) ZIP archives are not supported for --sample")
    if cd_offset + cd_size > size:
        raise DownloadError(f"{source.name}: central directory at {cd_offset}+{cd_size} lies beyond the "
                            f"archive's {size} bytes")
    members = _parse_central(source.read(cd_offset, cd_offset + cd_size), count, source.name)
    starts = sorted({m.offset for m in members} | {cd_offset})
    following = dict(zip(starts, starts[1:]))  # a member's span ends where the next one starts
    return [Member(m.name, m.method, m.flags, m.crc, m.compressed_size, m.size, m.offset, following[m.offset])
            for m in members]


def _find_eocd(tail: bytes) -> int:
    """Offset in ``tail`` of the end record whose comment ends exactly at the end, or -1."""
    at = tail.rfind(b"PK\x05\x06")
    while at >= 0 and (len(tail) - at < EOCD.size or at + EOCD.size + EOCD.unpack_from(tail, at)[7] != len(tail)):
        at = tail.rfind(b"PK\x05\x06", 0, at)  # a signature inside the comment: look further back
    return at


def _parse_central(data: bytes, count: int, where: str) -> list[Member]:
    members, pos = [], 0
    for _ in range(count):
        if data[pos:pos + 4] != b"PK\x01\x02":
            raise DownloadError(f"{where}: central directory entry {len(members)} at +{pos} has a bad signature")
        (_, _, _, flags, method, _, _, crc, csize, usize, nlen, elen, clen, _, _, _,
         offset) = CENTRAL.unpack_from(data, pos)
        raw_name = data[pos + CENTRAL.size:pos + CENTRAL.size + nlen]
        extra = data[pos + CENTRAL.size + nlen:pos + CENTRAL.size + nlen + elen]
        usize, csize, offset = _zip64_values(extra, usize, csize, offset)
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
        members.append(Member(name, method, flags, crc, csize, usize, offset))
        pos += CENTRAL.size + nlen + elen + clen
    return members


def _zip64_values(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Sizes and offset from the ZIP64 extra field (id 1) where the 32-bit fields are saturated."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            values = iter(struct.unpack_from(f"<{length // 8}Q", extra, pos + 4))
            usize = next(values) if usize == 0xFFFFFFFF else usize
            csize = next(values) if csize == 0xFFFFFFFF else csize
            offset = next(values) if offset == 0xFFFFFFFF else offset
            break
        pos += 4 + length
    return usize, csize, offset


def runs(members: Iterable[Member], gap: int = RUN_GAP) -> list[list[Member]]:
    """Members grouped into byte runs fetched by one request each (sorted by offset)."""
    grouped: list[list[Member]] = []
    for m in sorted(members, key=lambda m: m.offset):
        if grouped and m.offset - grouped[-1][-1].end <= gap:
            grouped[-1].append(m)
        else:
            grouped.append([m])
    return grouped


def fetch_members(source: RangeSource, members: Iterable[Member], dest: Path, work: Path,
                  advance: Callable[[int], None] = lambda n: None) -> dict[str, Path]:
    """Bring each member to ``dest/<member name>``, verified by CRC-32; returns name -> path.

    A member already there with the right size and CRC-32 is kept. Byte runs are staged
    in ``work`` as ``.part`` files, so an interrupted run resumes with Range.
    """
    from omnimedseg.downloaders._transfer import target_path

    out: dict[str, Path] = {}
    todo = []
    for m in members:
        target = target_path(dest, m.name)
        out[m.name] = target
        if target.is_file() and target.stat().st_size == m.size and _crc_of(target) == m.crc:
            advance(m.compressed_size)
            continue
        todo.append(m)
    work.mkdir(parents=True, exist_ok=True)
    for run in runs(todo):
        start, end = run[0].offset, run[-1].end
        part = work / f"{source.name}.{start}-{end}.part"
        source.fetch_to(start, end, part)
        with open(part, "rb") as fh:
            for m in run:
                _extract_member(fh, m, m.offset - start, out[m.name], source.name)
                advance(m.compressed_size)
        part.unlink()
    return out


def _extract_member(fh, member: Member, at: int, target: Path, archive: str) -> None:
    """Inflate one member from a run file to ``target`` (via ``.part``), checking size and CRC-32."""
    if member.flags & 1:
        raise DownloadError(f"{archive}: member {member.name!r} is encrypted; --sample cannot read it")
    fh.seek(at)
    header = fh.read(LOCAL.size)
    if len(header) < LOCAL.size or header[:4] != b"PK\x03\x04":
        raise ChecksumMismatchError(f"{archive}: no local header for member {member.name!r} at byte "
                                    f"{member.offset}; the archive differs from its central directory")
    nlen, elen = LOCAL.unpack(header)[9:11]
    fh.seek(at + LOCAL.size + nlen + elen)
    data = _Limited(fh, member.compressed_size)
    if member.method == 0:
        inflate = None
    elif member.method == 8:
        inflate = zlib.decompressobj(-15)
    elif member.method == 12:
        inflate = bz2.BZ2Decompressor()
    else:
        raise DownloadError(f"{archive}: member {member.name!r} uses compression method {member.method}; "
                            f"--sample reads stored, deflate and bzip2 members only")
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    crc, size = 0, 0
    try:
        with open(part, "wb") as out:
            for chunk in iter(lambda: data.read(CHUNK), b""):
                plain = inflate.decompress(chunk) if inflate is not None else chunk
                crc, size = zlib.crc32(plain, crc), size + len(plain)
                if size > member.size:
                    break
                out.write(plain)
            if inflate is not None and hasattr(inflate, "flush"):
                tail = inflate.flush()
                crc, size = zlib.crc32(tail, crc), size + len(tail)
                out.write(tail)
    except (zlib.error, OSError, EOFError) as exc:  # a corrupt deflate/bzip2 stream
        part.unlink(missing_ok=True)
        raise ChecksumMismatchError(f"{archive}: member {member.name!r} does not inflate ({exc}); the bytes "
                                    f"received differ from the archive: rerun to fetch it again") from None
    if size != member.size or crc != member.crc:
        part.unlink()
        raise ChecksumMismatchError(f"{archive}: member {member.name!r}: expected {member.size} bytes with CRC-32 "
                                    f"{member.crc:08x}, got {size} bytes with CRC-32 {crc:08x}; rerun to fetch it "
                                    f"again")
    os.replace(part, target)


def _crc_of(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            crc = zlib.crc32(chunk, crc)
    return crc
