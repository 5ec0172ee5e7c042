"""Hostile archives are refused and nothing is written outside the target (or left half-done)."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from omnimedseg.downloaders._archives import ExtractionLimits, extract
from omnimedseg.errors import DownloadError


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _member(name, data=b"x", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (data if kind == tarfile.REGTYPE else None)


HOSTILE_TARS = {
    "traversal": [_member("ok.txt"), _member("../escape.txt")],
    "absolute": [_member("/tmp/abs-escape.txt")],
    "symlink escape": [_member("link", kind=tarfile.SYMTYPE, link="../../etc"), _member("link/passwd")],
    "hard link escape": [_member("hl", kind=tarfile.LNKTYPE, link="../outside.txt")],
    "device file": [_member("dev", kind=tarfile.CHRTYPE)],
}


@pytest.mark.parametrize("case", list(HOSTILE_TARS))
def test_hostile_tar_refused_nothing_written(tmp_path, case):
    archive = _tar(tmp_path / "a.tar.gz", HOSTILE_TARS[case])
    target = tmp_path / "work" / "out"
    with pytest.raises(DownloadError, match="refusing"):
        extract(archive, target)
    assert not target.exists() and not (tmp_path / "escape.txt").exists()
    assert not list((tmp_path / "work").iterdir()) if (tmp_path / "work").exists() else True


def test_zip_traversal_and_symlink_refused(tmp_path):
    bad = tmp_path / "t.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../../escape.txt", "x")
    with pytest.raises(DownloadError, match="unsafe name"):
        extract(bad, tmp_path / "out")
    link = tmp_path / "l.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DownloadError, match="symbolic link"):
        extract(link, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.parent.glob("escape.txt"))


def test_zip_bomb_refused_by_ratio_and_member_count(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (20 << 20))
    with pytest.raises(DownloadError, match="archive bomb"):
        extract(bomb, tmp_path / "out")
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(20):
            zf.writestr(f"f{i}.txt", "x")
    with pytest.raises(DownloadError, match="exceeds the limit"):
        extract(many, tmp_path / "out", ExtractionLimits(max_members=10))
    assert not (tmp_path / "out").exists()


def test_lying_member_size_is_caught_while_copying(tmp_path):
    archive = tmp_path / "lie.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.txt", b"0123456789")
    raw = bytearray(archive.read_bytes())
    # shrink the declared uncompressed size in the central directory (offset 24 of the entry)
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 24:cd + 28] = (4).to_bytes(4, "little")
    archive.write_bytes(bytes(raw))
    with pytest.raises(Exception):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_good_archives_extract_including_7z(tmp_path):
    py7zr = pytest.importorskip("py7zr")
    src = {"a/b.txt": b"hello", "c.bin": bytes(range(256))}
    tgz = _tar(tmp_path / "ok.tar.gz", [_member(n, d) for n, d in src.items()])
    sz = tmp_path / "ok.7z"
    with py7zr.SevenZipFile(sz, "w") as z:
        for n, d in src.items():
            z.writestr(d, n)
    for archive in (tgz, sz):
        out = tmp_path / f"out-{archive.name}"
        extract(archive, out)
        assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == src
