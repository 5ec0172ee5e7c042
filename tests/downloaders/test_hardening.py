"""Hardening (issue 12): concurrent runs on one dataset, a raw tree checked on every run, archive limits
enforced before the directory is read and while bytes are written, damaged members as one line, and
unexpected responses that count against the retry budget."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
from dl_helpers import downloads, payload, write_card

from omnimedseg import paths
from omnimedseg.downloaders import download_dataset, verify_dataset
from omnimedseg.downloaders._archives import ExtractionLimits, extract, zip_member_count
from omnimedseg.errors import ConversionError, DatasetBusyError, DownloadError, UsageError
from omnimedseg.files import dataset_lock, lock_path, repair_command, staged_folder

REPO = Path(__file__).resolve().parents[2]


def _zip_bytes(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


# --- the per-dataset lock ------------------------------------------------------------------------
HOLD = textwrap.dedent("""
    import sys, time
    from omnimedseg.files import dataset_lock
    with dataset_lock("emu", sys.argv[1]):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def _holder(root: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_no_wait_refuses_in_one_line_and_waiting_says_so(tmp_path):
    holder = _holder(tmp_path, 1.0)
    try:
        with pytest.raises(DatasetBusyError) as info:
            with dataset_lock("emu", tmp_path, wait=False):
                pass
        assert "another omnimedseg process" in str(info.value) and "\n" not in str(info.value)
        said = []
        start = time.monotonic()
        with dataset_lock("emu", tmp_path, say=said.append):
            assert holder.poll() is not None or time.monotonic() - start > 0.5  # got it only after the holder
        assert len(said) == 1 and "waiting for another omnimedseg process" in said[0]
    finally:
        holder.wait(timeout=10)
    assert lock_path("emu", tmp_path).parent == tmp_path / ".locks"  # never inside downloads/, raw/, converted/


def test_lock_is_reentrant_in_one_thread_and_takes_only_dataset_ids(tmp_path):
    with dataset_lock("emu", tmp_path, wait=False), dataset_lock("emu", tmp_path, wait=False):
        pass
    for bad in ("../../escape", "a/b", ".hidden", ""):
        with pytest.raises(UsageError):
            lock_path(bad, tmp_path)
    assert not (tmp_path.parent / "escape.lock").exists()


def test_staging_names_are_unique_and_the_swap_keeps_the_old_tree_until_complete(tmp_path):
    target = tmp_path / "raw" / "emu"
    with staged_folder(target) as first:
        (first / "a").write_text("1")
        with pytest.raises(RuntimeError):
            with staged_folder(target) as second:
                assert second != first
                (second / "b").write_text("2")
                raise RuntimeError("interrupted")
        assert not second.exists() and first.exists()  # a failing builder never removes another's staging
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with staged_folder(target) as third:
        (third / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert [p.name for p in target.parent.iterdir()] == ["emu"]  # nothing left beside it


# --- racing processes ----------------------------------------------------------------------------
MEMBERS = 400
@pytest.fixture
def race_setup(tmp_path):
    data = _zip_bytes({f"case{i:03d}/image.bin": payload(2_000, i) for i in range(MEMBERS)})
    registry = write_card(tmp_path / "registry", {"data.zip": data}, dataset_id="race", extract=("data.zip",))
    source = tmp_path / "source"
    source.mkdir()
    (source / "data.zip").write_bytes(data)
    return registry, source


def _race(tmp_path, registry, source, rounds: int, extra: tuple[str, ...] = ()) -> None:
    root = tmp_path / "root"
    cmd = [sys.executable, "-m", "omnimedseg", "--root", str(root), "--registry", str(registry), "-q",
           "download", "race", "--from", str(source), *extra]
    for round_ in range(rounds):
        if round_ % 3 == 2:  # damage the tree between rounds: a rerun must notice and rebuild it
            victim = root / "raw" / "race" / f"case{round_:03d}" / "image.bin"
            if victim.exists():
                victim.unlink()
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            if proc.returncode != 0:  # only a clean, one-line refusal is acceptable
                assert "--no-wait" in extra, err
                assert err.startswith("Error: race: another omnimedseg process") and err.count("\n") == 1, err
                assert "Traceback" not in err
            else:
                assert "Traceback" not in err
        raw = root / "raw" / "race"
        files = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*") if p.is_file())
        assert files == sorted([".prepared.json"] + [f"case{i:03d}/image.bin" for i in range(MEMBERS)]), round_
        leftovers = [p.name for p in (root / "raw").iterdir() if p.name != "race"]
        assert leftovers == [], leftovers
        assert not list((root / "downloads" / "race").glob("*.part*"))


def test_two_processes_racing_end_with_the_complete_tree(tmp_path, race_setup):
    _race(tmp_path, *race_setup, rounds=3)


def test_two_processes_racing_with_no_wait_end_complete_or_refuse_cleanly(tmp_path, race_setup):
    _race(tmp_path, *race_setup, rounds=3, extra=("--no-wait",))


@pytest.mark.slow
def test_two_processes_racing_twenty_times(tmp_path, race_setup):
    _race(tmp_path, *race_setup, rounds=20)
    _race(tmp_path, *race_setup, rounds=20, extra=("--no-wait",))


# --- the raw tree is checked on every run ----------------------------------------------------------
def _zenodo(emulator, make_card, files, extract=()):
    from omnimedseg.downloaders.emulators import ZenodoEmulator

    emu = emulator(ZenodoEmulator)
    emu.add_record("101", files)
    return emu, make_card("zenodo", "101", files, version="101", extract=extract)


def test_damaged_raw_tree_is_rebuilt_on_the_next_run(emulator, make_card):
    archive = _zip_bytes({f"c{i}/img.bin": payload(500, i) for i in range(5)})
    emu, card = _zenodo(emulator, make_card, {"data.zip": archive, "labels.csv": b"a,b\n"}, extract=("data.zip",))
    raw = download_dataset(card)
    (raw / "c3" / "img.bin").unlink()
    (raw / "c1" / "img.bin").write_bytes(b"short")
    requests_before = len(emu.requests)
    assert verify_dataset(card)[f"raw/{card.id}"] == "damaged"
    download_dataset(card)
    assert (raw / "c3" / "img.bin").read_bytes() == payload(500, 3)
    assert (raw / "c1" / "img.bin").read_bytes() == payload(500, 1)
    assert len(emu.requests) - requests_before <= 2  # rebuilt from the downloads: metadata only, no file bytes
    (raw / "extra.txt").write_text("stray")  # a file the marker does not know is damage too
    assert verify_dataset(card)[f"raw/{card.id}"] == "damaged"
    assert verify_dataset(card, repair=True)[f"raw/{card.id}"] == "rebuilt"
    assert not (raw / "extra.txt").exists() and verify_dataset(card)[f"raw/{card.id}"] == "ok"


def test_broken_archive_without_published_hash_is_never_trusted(emulator, make_card, tmp_path):
    """An unhashed card file that cannot be prepared is set aside, the lock is not written, verify says so."""
    from omnimedseg.downloaders._local import LocalSource

    card = make_card("zenodo", "101", {"data.zip": b"this is not a zip"}, version="101", extract=("data.zip",))
    from dataclasses import replace

    unpinned = replace(card, source=replace(card.source, files=tuple(replace(f, hashes={}, size=None)
                                                                     for f in card.source.files)))
    source = tmp_path / "src"
    source.mkdir()
    (source / "data.zip").write_bytes(b"this is not a zip")
    assert isinstance(LocalSource([source]), LocalSource)
    with pytest.raises(ConversionError) as info:
        download_dataset(unpinned, sources=[source])
    message = str(info.value)
    assert "not a ZIP" in message and "set aside as data.zip.corrupt" in message and "\n" not in message
    assert "omnimedseg download emu" in message
    assert not (downloads() / "manifest.lock.json").exists() and (downloads() / "data.zip.corrupt").is_file()
    assert not (downloads() / "data.zip").exists()
    with pytest.raises(Exception, match="has not been downloaded; run: omnimedseg download emu"):
        verify_dataset(unpinned)


def test_from_dir_says_when_files_already_present_are_not_read_from_it(tmp_path, make_card):
    data = {"a.bin": payload(1000, 1)}
    card = make_card("zenodo", "101", data, version="101")
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.bin").write_bytes(data["a.bin"])
    said = []
    download_dataset(card, sources=[source], say=said.append)
    assert said == []  # read from --from: nothing to say
    download_dataset(card, sources=[source], say=said.append)
    assert len(said) == 1 and "1 of 1 files were already present and verified" in said[0]
    assert "not read from --from" in said[0]


def test_repair_advice_is_a_real_command():
    root = paths.data_root()
    assert repair_command(root / "raw" / "hc18" / "training_set" / "1_HC.png") == "omnimedseg verify hc18 --repair"
    assert repair_command("/elsewhere/x.png") == "omnimedseg verify <dataset id> --repair"


def test_file_reported_done_only_after_verification(emulator, make_card, monkeypatch):
    from omnimedseg.downloaders import _transfer
    from omnimedseg.progress import Progress

    monkeypatch.setattr(_transfer._Tee, "OWN_TASK_FROM", 0)  # a file this small has its own task only here
    emu, card = _zenodo(emulator, make_card, {"a.bin": payload(5000, 1)})
    emu.inject("wrong_bytes", times=-1)
    stream = io.StringIO()
    with pytest.raises(Exception, match="a.bin"):
        download_dataset(card, progress=Progress(stream=stream))
    assert "a.bin: done" not in stream.getvalue()
    emu.clear_faults()
    download_dataset(card, progress=Progress(stream=stream))
    assert "a.bin: done" in stream.getvalue()


def test_final_error_names_every_failed_file(emulator, make_card, monkeypatch):
    monkeypatch.setenv("OMNIMEDSEG_RETRIES", "0")
    files = {"a.bin": payload(3000, 1), "b.bin": payload(3000, 2), "c.bin": payload(3000, 3)}
    emu, card = _zenodo(emulator, make_card, files)
    emu.inject("wrong_bytes", times=-1, match="a.bin")
    emu.inject("wrong_bytes", times=-1, match="c.bin")
    with pytest.raises(Exception) as info:
        download_dataset(card, jobs=3)
    message = str(info.value)
    assert "a.bin" in message and "c.bin" in message and "also failed" in message
    assert not [p for p in downloads().rglob("*") if p.name.endswith(".lock")]  # a failed download leaves no locks


# --- unexpected responses count against the retry budget -------------------------------------------
def test_206_for_a_range_nobody_asked_for_ends_with_one_line(emulator, make_card, monkeypatch):
    monkeypatch.setenv("OMNIMEDSEG_RETRIES", "3")
    emu, card = _zenodo(emulator, make_card, {"big.bin": payload(200_000, 9)})
    emu.inject("wrong_range", times=-1)  # 206 for bytes 1- to a plain GET, for bytes 0- to a Range request
    with pytest.raises(DownloadError) as info:
        download_dataset(card)
    message = str(info.value)
    assert "big.bin" in message and "Content-Range 'bytes 1-199999/200000'" in message and "gave up" in message
    assert len(emu.log(path_contains="/content")) <= 6  # bounded: never a loop


@pytest.mark.parametrize("fault", ["html", "json_list"])
@pytest.mark.parametrize("platform", ["zenodo", "figshare", "dataverse", "github", "osf", "kaggle", "mendeley",
                                      "tcia"])
def test_metadata_of_the_wrong_shape_is_one_line_on_every_platform(platform, fault, emulator, make_card):
    from scenarios import PLATFORMS

    emu, card, _ = PLATFORMS[platform](emulator, make_card, {"a.bin": payload(100, 1)})
    emu.inject(fault, times=-1, scope="api")
    with pytest.raises(DownloadError) as info:
        download_dataset(card)
    message = str(info.value)
    assert "\n" not in message and ("expected JSON" in message or "unexpected shape" in message
                                    or "lists no" in message), message


# --- archives --------------------------------------------------------------------------------------
def test_zip_member_count_comes_from_the_end_record_before_the_directory(tmp_path, monkeypatch):
    archive = tmp_path / "many.zip"
    archive.write_bytes(_zip_bytes({f"f{i}.txt": b"x" for i in range(50)}))
    assert zip_member_count(archive) == 50
    opened = []
    real = zipfile.ZipFile
    monkeypatch.setattr(zipfile, "ZipFile", lambda *a, **k: opened.append(a) or real(*a, **k))
    with pytest.raises(DownloadError, match="50 members exceeds the limit of 10"):
        extract(archive, tmp_path / "out", ExtractionLimits(max_members=10))
    assert opened == []  # refused before zipfile read the central directory


def test_zip64_end_record_is_read(tmp_path):
    archive = tmp_path / "z64.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(3):
            with zf.open(f"f{i}", "w", force_zip64=True) as fh:
                fh.write(b"abc")
    with zipfile.ZipFile(archive) as zf:
        assert len(zf.infolist()) == 3
    assert zip_member_count(archive) == 3


def test_tar_member_counting_stops_at_the_limit(tmp_path, monkeypatch):
    archive = tmp_path / "many.tar"
    with tarfile.open(archive, "w") as tf:
        for i in range(1000):
            info = tarfile.TarInfo(f"f{i}.txt")
            info.size = 1
            tf.addfile(info, io.BytesIO(b"x"))
    seen = []
    real_next = tarfile.TarFile.next
    monkeypatch.setattr(tarfile.TarFile, "next", lambda self: seen.append(1) or real_next(self))
    with pytest.raises(DownloadError, match="more than 10 members"):
        extract(archive, tmp_path / "out", ExtractionLimits(max_members=10))
    assert len(seen) < 40  # headers read: about the limit, not the 1000 in the archive


def _bomb_then_padding_tgz(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in (("bomb.bin", bytes(8 << 20)), ("padding.bin", os.urandom(400_000))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _bomb_then_padding_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.bin", bytes(8 << 20))
        zf.writestr("padding.bin", os.urandom(400_000), compress_type=zipfile.ZIP_STORED)
    return path


@pytest.mark.parametrize("make", [_bomb_then_padding_tgz, _bomb_then_padding_zip], ids=["tar.gz", "zip"])
def test_bomb_padded_with_incompressible_bytes_is_stopped_while_extracting(tmp_path, make):
    archive = make(tmp_path / ("b.tar.gz" if make is _bomb_then_padding_tgz else "b.zip"))
    total = (8 << 20) + 400_000
    limits = ExtractionLimits(max_ratio=30, ratio_floor=1 << 20)
    assert total / archive.stat().st_size < 30  # the whole-archive ratio alone lets it through
    with pytest.raises(DownloadError, match="possible archive bomb"):
        extract(archive, tmp_path / "out", limits)
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == [archive.name]


def _bad_crc_zip(path: Path) -> Path:
    data = bytearray(_zip_bytes({"a.txt": b"hello world " * 100}, zipfile.ZIP_STORED))
    at = data.find(b"hello world")
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("case,expected", [
    ("bad crc", "member 'a.txt' is damaged (Bad CRC-32"),
    ("file named .", "a file entry without a file name"),
    ("empty name", "a file entry without a file name"),
    ("not a zip", "not a ZIP file"),
    ("truncated tar.gz", "damaged or unreadable archive"),
])
def test_damaged_archives_are_one_line_naming_the_archive(tmp_path, case, expected):
    if case == "bad crc":
        archive = _bad_crc_zip(tmp_path / "a.zip")
    elif case in ("file named .", "empty name"):
        archive = tmp_path / "a.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr(zipfile.ZipInfo("." if case == "file named ." else ""), b"data")
    elif case == "not a zip":
        archive = tmp_path / "a.zip"
        archive.write_text("<html>not found</html>")
    else:
        good = tmp_path / "good.tar.gz"
        with tarfile.open(good, "w:gz") as tf:
            info = tarfile.TarInfo("x.bin")
            info.size = 300_000
            tf.addfile(info, io.BytesIO(os.urandom(300_000)))
        archive = tmp_path / "a.tar.gz"
        archive.write_bytes(good.read_bytes()[:150_000])
    with pytest.raises(DownloadError) as info:
        extract(archive, tmp_path / "out")
    message = str(info.value)
    assert expected in message and str(archive) in message and "\n" not in message, message
    assert not (tmp_path / "out").exists()


def test_checkout_is_importable_without_an_install(tmp_path):
    """``python -c "import omnimedseg.downloaders"`` at the repository root, no editable hook on sys.path."""
    import site

    code = ("import sys; sys.path[:0] = [sys.argv[1]]; sys.path += sys.argv[2:];"
            "import omnimedseg.downloaders, omnimedseg.converters.formats, omnimedseg.registry;"
            "print(omnimedseg.downloaders.__file__)")
    done = subprocess.run([sys.executable, "-S", "-c", code, str(REPO), *site.getsitepackages()], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(REPO / "downloaders" / "__init__.py")
    assert json.loads(json.dumps(done.stdout.strip()))


def test_a_download_replaced_by_a_symlink_is_corrupt_and_repaired(emulator, make_card, tmp_path):
    """A symlink in downloads/<id> (even to the right bytes) had stopped verify, --repair and download with
    "would be written outside", before any other file was reported."""
    from omnimedseg import paths

    files = {"a.bin": payload(500, 1), "b.bin": payload(700, 2), "d.bin": payload(300, 3)}
    emu, card = _zenodo(emulator, make_card, files)
    download_dataset(card)
    folder = paths.downloads_dir(card.id)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(files["d.bin"])
    (folder / "d.bin").unlink()
    (folder / "d.bin").symlink_to(outside)  # the right bytes, but not our file
    flipped = bytearray(files["a.bin"])
    flipped[7] ^= 1
    (folder / "a.bin").unlink()
    (folder / "a.bin").write_bytes(bytes(flipped))
    status = verify_dataset(card)
    assert (status["a.bin"], status["b.bin"], status["d.bin"]) == ("corrupt", "ok", "corrupt")
    repaired = verify_dataset(card, repair=True)
    assert (repaired["a.bin"], repaired["d.bin"]) == ("repaired", "repaired")
    assert not (folder / "d.bin").is_symlink() and (folder / "d.bin").read_bytes() == files["d.bin"]
    assert outside.read_bytes() == files["d.bin"]  # what the link pointed to is untouched
    (folder / "b.bin").unlink()
    (folder / "b.bin").symlink_to(tmp_path / "nowhere.bin")  # dangling
    download_dataset(card)
    assert not (folder / "b.bin").is_symlink() and (folder / "b.bin").read_bytes() == files["b.bin"]
