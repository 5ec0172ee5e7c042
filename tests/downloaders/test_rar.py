"""RAR extraction (libarchive) under the download layer's safety rules, on RAR 5 files built by tests/rar5.py."""

from __future__ import annotations

import stat
import sys

import pytest

from omnimedseg.downloaders._archives import ExtractionLimits, extract, is_archive
from omnimedseg.errors import DownloadError
from tests.rar5 import write_rar5

pytest.importorskip("libarchive", reason="RAR support needs libarchive-c (pip install libarchive-c)")

DIR, FILE, LINK = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644, stat.S_IFLNK | 0o777


def test_rar_extracts_nested_folders_with_spaces_byte_exact(tmp_path):
    payload = bytes(range(256)) * 300
    archive = write_rar5(tmp_path / "FIVES.rar", [
        ("FIVES A Fundus Image Dataset", None, DIR),
        ("FIVES A Fundus Image Dataset/train/Groud truth/1_A.png", payload, FILE),
        ("FIVES A Fundus Image Dataset/notes.txt", b"x", FILE),
    ])
    assert is_archive(archive.name)
    written = extract(archive, tmp_path / "out")
    root = tmp_path / "out" / "FIVES A Fundus Image Dataset"
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        "FIVES A Fundus Image Dataset/notes.txt", "FIVES A Fundus Image Dataset/train/Groud truth/1_A.png"]
    assert (root / "train" / "Groud truth" / "1_A.png").read_bytes() == payload
    assert not list(tmp_path.glob(".out.extracting"))


@pytest.mark.parametrize("members, message", [
    ([("ok.txt", b"x", FILE), ("../escape.txt", b"x", FILE)], "unsafe name"),
    ([("/tmp/abs-escape.txt", b"x", FILE)], "unsafe name"),
    ([("link", b"/etc/passwd", LINK)], "refusing link member 'link'"),
    ([("fifo", b"", stat.S_IFIFO | 0o644)], "refusing special file member 'fifo'"),
])
def test_hostile_rar_refused_nothing_written(tmp_path, members, message):
    archive = write_rar5(tmp_path / "a.rar", members)
    with pytest.raises(DownloadError, match=message):
        extract(archive, tmp_path / "work" / "out")
    assert not (tmp_path / "work" / "out").exists() and not (tmp_path / "escape.txt").exists()


def test_rar_bomb_and_member_limits_apply(tmp_path):
    archive = write_rar5(tmp_path / "many.rar", [(f"f{i}.txt", b"x", FILE) for i in range(20)])
    with pytest.raises(DownloadError, match="more than 10 members"):
        extract(archive, tmp_path / "out", ExtractionLimits(max_members=10))
    with pytest.raises(DownloadError, match="exceeds the limit"):
        extract(archive, tmp_path / "out", ExtractionLimits(max_total_bytes=5))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["truncated", "signature"])
def test_damaged_rar_is_a_clear_error(tmp_path, damage):
    # (libarchive does not check the data CRC32 of stored members; the pinned archive hash does that)
    archive = write_rar5(tmp_path / "bad.rar", [("a.txt", b"0123456789" * 10, FILE)])
    raw = bytearray(archive.read_bytes())
    raw = raw[:60] if damage == "truncated" else raw[:3] + b"\0" + raw[4:]
    archive.write_bytes(bytes(raw))
    with pytest.raises(DownloadError, match=r"bad\.rar: (damaged|not a readable) RAR archive .*omnimedseg verify"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_member_cut_short_is_named(tmp_path):
    """A release whose RAR is damaged in one member (reported for FIVES by a third party): the error says
    where, so the user knows which file a repair or another extractor must recover."""
    archive = write_rar5(tmp_path / "cut.rar", [("a.txt", b"0" * 1000, FILE), ("b.png", bytes(range(256)) * 40, FILE)])
    archive.write_bytes(archive.read_bytes()[:-5000])
    with pytest.raises(DownloadError, match=r"cut\.rar: damaged RAR archive in or after member 'b\.png' \(.*\); "
                                            r"check it with omnimedseg verify"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_libarchive_names_the_install_step(tmp_path, monkeypatch):
    archive = write_rar5(tmp_path / "a.rar", [("a.txt", b"x", FILE)])
    monkeypatch.setitem(sys.modules, "libarchive", None)  # import now fails as on a machine without it
    with pytest.raises(DownloadError, match="pip install libarchive-c"):
        extract(archive, tmp_path / "out")
