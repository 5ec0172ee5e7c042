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


def _macos_zip(path, files: dict[str, bytes]):
    """A zip as macOS Finder's "Compress" writes it: each file plus its AppleDouble companion under
    ``__MACOSX/`` (same folder, ``._`` prefix), a ``.DS_Store``, and the folder entries."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            folder, _, base = name.rpartition("/")
            zf.writestr(f"{folder}/", b"")
            zf.writestr(name, data)
            zf.writestr(f"__MACOSX/{folder}/._{base}", b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
            zf.writestr(f"{folder}/.DS_Store", b"\x00\x00\x00\x01Bud1")
        zf.writestr("__MACOSX/", b"")
    return path


def test_two_zips_that_both_carry_macosx_make_one_raw_tree_without_debris(tmp_path, make_card):
    """Two zips of one release, both packed on macOS: the raw tree holds their files and no
    ``__MACOSX/``, ``._*`` or ``.DS_Store`` (it used to stop: "extracting would overwrite '__MACOSX'")."""
    from omnimedseg import paths
    from omnimedseg.downloaders import download_dataset

    release = tmp_path / "release"
    release.mkdir()
    images = {"images/case1.png": b"png-1", "images/case2.png": b"png-2"}
    masks = {"masks/case1.png": b"mask-1", "masks/case2.png": b"mask-2"}
    _macos_zip(release / "images.zip", images)
    _macos_zip(release / "masks.zip", masks)
    files = {p.name: p.read_bytes() for p in release.iterdir()}
    card = make_card("zenodo", "1", files, version="1", extract=tuple(files))
    raw = download_dataset(card, sources=[release])
    found = {p.relative_to(raw).as_posix(): p.read_bytes() for p in raw.rglob("*")
             if p.is_file() and not p.name.startswith(".prepared")}
    assert found == {**images, **masks}
    assert not any("__MACOSX" in p.parts for p in raw.rglob("*"))
    assert paths.raw_dir("emu") == raw


@pytest.mark.parametrize("kind", ["tar.gz", "7z"])
def test_macos_debris_is_never_extracted_from_tar_or_7z(tmp_path, kind):
    src = {"data/a.txt": b"a", "data/._a.txt": b"fork", "__MACOSX/data/._a.txt": b"fork", "data/.DS_Store": b"ds"}
    if kind == "7z":
        py7zr = pytest.importorskip("py7zr")
        archive = tmp_path / "x.7z"
        with py7zr.SevenZipFile(archive, "w") as z:
            for n, d in src.items():
                z.writestr(d, n)
    else:
        archive = _tar(tmp_path / "x.tar.gz", [_member(n, d) for n, d in src.items()])
    out = tmp_path / "out"
    written = extract(archive, out)
    assert {p.relative_to(out).as_posix() for p in out.rglob("*")} == {"data", "data/a.txt"}
    assert [p.relative_to(out).as_posix() for p in written] == ["data/a.txt"]


@pytest.mark.parametrize("names", [("d.txt", "d.txt"), ("caf\u00e9.txt", "cafe\u0301.txt")], ids=["same", "nfc-twins"])
def test_two_members_written_to_one_file_are_refused(tmp_path, names):
    """The later one had silently replaced the earlier one (NFD and NFC spellings become one name)."""
    archive = tmp_path / "twins.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, name in enumerate(names):
            zf.writestr(name, f"member {i}")
    with pytest.raises(DownloadError, match=r"twins\.zip: two members are named 'caf\u00e9\.txt'|twins\.zip: two members "
                                            r"are named 'd\.txt'"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("clash", ["plain file after the archive", "reserved name"])
def test_a_member_never_replaced_by_another_file_or_the_raw_tree_records(tmp_path, make_card, clash):
    """A plain file of the card named like an archive's member had silently replaced it (link_or_copy fell back to
    a copy over it); a member named .prepared.json or .unpack-* was dropped or broke every rerun."""
    from omnimedseg.downloaders import download_dataset

    release = tmp_path / "release"
    release.mkdir()
    member = "other.txt" if clash == "plain file after the archive" else ".prepared.json"
    with zipfile.ZipFile(release / "a.zip", "w") as zf:
        zf.writestr(member, b"from the archive")
    (release / "other.txt").write_bytes(b"plain file")
    files = {name: (release / name).read_bytes() for name in ("a.zip", "other.txt")}
    card = make_card("zenodo", "1", files, version="1", extract=("a.zip",))
    message = r"would replace 'other\.txt', which another file" if clash == "plain file after the archive" \
        else r"member '\.prepared\.json' has a name the raw tree reserves"
    with pytest.raises(Exception, match=message):
        download_dataset(card, sources=[release])


def test_a_member_below_a_file_member_is_refused_in_one_line(tmp_path):
    archive = tmp_path / "clash.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("d", "a file")
        zf.writestr("d/e.txt", "below it")
    with pytest.raises(DownloadError, match=r"clash\.zip: member 'd/e\.txt' lies below 'd', which is a file member"):
        extract(archive, tmp_path / "out")
