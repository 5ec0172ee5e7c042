"""The engine's streaming fast path: bodies read straight into reused buffers, digest and bytes intact."""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path

import pytest
from dl_helpers import payload

from omnimedseg.downloaders import _transfer
from omnimedseg.downloaders._http import HttpClient
from omnimedseg.downloaders.emulators import ZenodoEmulator
from omnimedseg.downloaders.zenodo import ZenodoDownloader, parse_files
from omnimedseg.errors import DownloadError
from omnimedseg.registry import RemoteFile


def test_identity_body_is_read_into_reused_buffers_and_verified(emulator, tmp_path, monkeypatch):
    data = payload((3 << 20) + 12345, 3)  # several buffers plus a short tail
    emu = emulator(ZenodoEmulator)
    emu.add_record("101", {"big.bin": data})
    remote = parse_files(ZenodoDownloader().record("101"), emu.url)[0]
    used = []
    direct = _transfer._body_reader

    def spy(response, decode):
        reader = direct(response, decode)
        used.append(reader.__name__)
        return reader
    monkeypatch.setattr(_transfer, "_body_reader", spy)
    monkeypatch.setattr(_transfer._Pipeline, "FLUSH_EVERY", 1 << 20)  # background flushes run too
    for pinned in (remote, RemoteFile(remote.name, remote.size, {"sha256": hashlib.sha256(data).hexdigest()},
                                      remote.url)):
        out = _transfer.fetch(pinned, tmp_path / pinned.strongest_hash[0], client=HttpClient(rate=0))
        assert out.read_bytes() == data
        assert not out.with_name(out.name + ".part").exists()
    assert used == ["direct", "direct"]  # urllib3's allocate-and-copy read is only for encoded bodies


@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "page_cache"])
@pytest.mark.parametrize("threaded", [True, False], ids=["hash_thread", "hash_inline"])
def test_pipeline_writes_and_hashes_exactly_the_bytes_put(tmp_path, monkeypatch, direct, threaded):
    monkeypatch.setattr(_transfer, "DIRECT_IO", direct)
    monkeypatch.setattr(_transfer._Pipeline, "FLUSH_EVERY", 1 << 20)  # buffered parts are synced as they grow
    data = payload(5 << 20, 9)
    part = tmp_path / "x.part"
    # whole buffers (aligned: direct writes), then a short read of odd length (the rest goes through the
    # page cache), then whole buffers again
    sizes = [1 << 20, 700_001] + [1 << 20] * 4
    for round_ in range(2):  # the second round resumes: appends to what the first wrote
        half = len(data) // 2 + 1  # the first round leaves a part of odd length
        hasher = hashlib.md5(data[:half]) if round_ else hashlib.md5()
        pipe = _transfer._Pipeline(hasher, part, append=bool(round_), threaded=threaded)
        assert pipe.direct is (direct and round_ == 0)  # a part of odd length is never appended to directly
        pos, end = (half, len(data)) if round_ else (0, half)
        for size in sizes:
            if pos >= end:
                break
            slot, view = pipe.take()
            n = min(size, end - pos)
            view[:n] = data[pos:pos + n]
            pipe.put(slot, n)
            pos += n
        pipe.close()
        pipe.close()  # idempotent
        assert part.read_bytes() == data[:end]
        assert hasher.hexdigest() == hashlib.md5(data[:end]).hexdigest()
        assert not pipe.direct  # an odd-length piece switched the part to the page cache


@pytest.mark.parametrize("threaded", [True, False], ids=["writer_thread", "inline"])
def test_pipeline_write_error_reaches_the_receiving_thread(threaded):
    pipe = _transfer._Pipeline(hashlib.md5(), Path("/dev/full"), threaded=threaded,
                               expect=None if threaded else 1000)  # ENOSPC on every write, for real
    with pytest.raises(_transfer._PartWriteError) as caught:
        try:  # as the transfer uses it
            for _ in range(8):
                slot, view = pipe.take()
                pipe.put(slot, 1 << 20 if threaded else 1000)
        finally:
            pipe.close()
    assert caught.value.__cause__.errno == errno.ENOSPC


def test_full_disk_is_one_line_error_naming_the_part(emulator, tmp_path, monkeypatch):
    data = payload(3 << 20, 4)
    emu = emulator(ZenodoEmulator)
    emu.add_record("102", {"big.bin": data})
    remote = parse_files(ZenodoDownloader().record("102"), emu.url)[0]
    dest = tmp_path / "d"
    opened = []
    real_open = _transfer._Pipeline._open

    def onto_a_full_disk(path, append, direct):  # the kernel's own ENOSPC, from /dev/full, where the part is written
        opened.append(path)
        return real_open(Path("/dev/full"), append, direct=False)
    monkeypatch.setattr(_transfer._Pipeline, "_open", staticmethod(onto_a_full_disk))
    with pytest.raises(DownloadError, match=r"big\.bin: writing .*big\.bin\.part failed \(No space left on device\); "
                                            r"free disk space"):
        _transfer.fetch(remote, dest, client=HttpClient(rate=0))
    assert opened == [dest / "big.bin.part"] and not (dest / "big.bin").exists()


def test_a_part_that_is_a_symlink_is_never_resumed_or_written_through(emulator, tmp_path):
    """A ``.part`` link (planted, or left by another tool) whose side record matches: the engine would have
    appended to what it points to and renamed the link into place. It starts a new part instead."""
    data = payload(3 << 20, 6)
    emu = emulator(ZenodoEmulator)
    emu.add_record("103", {"big.bin": data})
    remote = parse_files(ZenodoDownloader().record("103"), emu.url)[0]
    dest, outside = tmp_path / "d", tmp_path / "outside.bin"
    dest.mkdir()
    outside.write_bytes(data[:1 << 20])  # a valid prefix: resuming into it would even verify
    (dest / "big.bin.part").symlink_to(outside)
    alg, digest = remote.strongest_hash
    (dest / "big.bin.part.json").write_text(json.dumps({"size": remote.size, "hash": [alg, digest]}))
    out = _transfer.fetch(remote, dest, client=HttpClient(rate=0))
    assert not out.is_symlink() and out.read_bytes() == data
    assert outside.read_bytes() == data[:1 << 20]  # untouched
    assert not [r for r in emu.log(path_contains="big.bin") if r.headers.get("Range")]  # fetched whole
    assert sorted(p.name for p in dest.iterdir()) == ["big.bin"]


def test_a_small_body_dropped_midway_is_fetched_again_whole_without_a_part_record(emulator, tmp_path, monkeypatch):
    """Below NO_RECORD_BELOW no part record is written (it cost more than the body): a dropped
    transfer starts again at byte 0 instead of resuming, and the file is still verified."""
    monkeypatch.setenv("OMNIMEDSEG_RETRIES", "2")
    data = payload(40_000, 5)
    emu = emulator(ZenodoEmulator)
    emu.add_record("102", {"small.bin": data})
    remote = parse_files(ZenodoDownloader().record("102"), emu.url)[0]
    assert remote.size < _transfer.NO_RECORD_BELOW
    writes = []
    save = _transfer._HttpTransfer._save_state
    monkeypatch.setattr(_transfer._HttpTransfer, "_save_state", lambda self, r: writes.append(save(self, r)))
    emu.inject("drop", after=1000, match="small.bin")
    out = _transfer.fetch(remote, tmp_path, client=HttpClient(rate=0))
    assert out.read_bytes() == data and not writes
    gets = emu.log(path_contains="small.bin")
    assert len(gets) == 2 and not [r for r in gets if r.headers.get("Range")]  # dropped, then whole again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.bin"]


def test_a_symlink_below_the_folder_never_leads_a_name_outside_it(tmp_path):
    outside, root = tmp_path / "outside", tmp_path / "real"
    outside.mkdir()
    (root / "inner").mkdir(parents=True)
    (root / "escape").symlink_to(outside)
    (root / "alias").symlink_to(root / "inner")
    (tmp_path / "link").symlink_to(root)  # the folder itself may be reached through a link
    (root / "inner" / "deep").symlink_to(outside)  # a link further down
    (root / "inner" / "leaf.bin").symlink_to(outside / "leaf.bin")  # the name itself is a link
    for name in ("escape/x.bin", "inner/deep/x.bin"):
        with pytest.raises(DownloadError, match=f"'{name}' would be written outside"):
            _transfer.target_path(root, name)
    # the name itself a link: never read through, replaced by the rename (it had stopped verify and download)
    assert _transfer.target_path(root, "inner/leaf.bin") == root / "inner" / "leaf.bin"
    assert _transfer.target_path(tmp_path / "link", "alias/x.bin") == root / "alias" / "x.bin"
    assert _transfer.target_path(root, "new/deeper/x.bin") == root / "new" / "deeper" / "x.bin"
    source = tmp_path / "source.bin"  # fetch_all checks every name as fetch does (its folder resolved once)
    source.write_bytes(b"bytes")
    remotes = [RemoteFile(name, 5, {"sha256": hashlib.sha256(b"bytes").hexdigest()}, source.as_uri())
               for name in ("ok.bin", "inner/leaf.bin", "inner/deep/x.bin")]
    with pytest.raises(DownloadError, match="'inner/deep/x.bin' would be written outside"):
        _transfer.fetch_all(remotes, tmp_path / "link", jobs=2)
    assert (root / "ok.bin").read_bytes() == b"bytes" and not list(outside.iterdir())
    leaf = root / "inner" / "leaf.bin"
    assert not leaf.is_symlink() and leaf.read_bytes() == b"bytes"


@pytest.mark.parametrize("size", [40_000, 3 << 20], ids=["small_inline", "big_threaded"])
def test_every_part_is_fsynced_before_its_rename(emulator, tmp_path, monkeypatch, size):
    """Durability: after a crash the final name never holds fewer bytes than verified. Each transport
    fsyncs its part (HTTP on the fd that wrote it), including a part completed by an earlier run."""
    import os

    data = payload(size, 6)
    emu = emulator(ZenodoEmulator)
    emu.add_record("103", {"f.bin": data})
    remote = parse_files(ZenodoDownloader().record("103"), emu.url)[0]
    events = []
    fsync, replace = os.fsync, os.replace

    def spy_fsync(fd):
        events.append(("fsync", os.fstat(fd).st_ino))
        fsync(fd)

    def spy_replace(src, dst):
        if str(src).endswith(".part"):  # not the part record, written by atomic_write_text
            events.append(("replace", os.stat(src).st_ino))
        replace(src, dst)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    local = tmp_path / "src.bin"
    local.write_bytes(data)
    sources = {"http": remote, "file": RemoteFile(remote.name, remote.size, remote.hashes, local.as_uri())}
    for kind, source in sources.items():
        events.clear()
        out = _transfer.fetch(source, tmp_path / kind, client=HttpClient(rate=0))
        assert out.read_bytes() == data
        replaced = [e for e in events if e[0] == "replace"]
        assert len(replaced) == 1 and ("fsync", replaced[0][1]) in events[:events.index(replaced[0])], (kind, events)
    if size > _transfer.NO_RECORD_BELOW:  # a part completed by a run that died before its fsync and rename
        dest = tmp_path / "resumed"
        dest.mkdir()
        (dest / "f.bin.part").write_bytes(data)
        alg, digest = remote.strongest_hash
        (dest / "f.bin.part.json").write_text(json.dumps({"size": remote.size, "hash": [alg, digest]}))
        events.clear()
        requests_before = len(emu.log(path_contains="f.bin"))
        assert _transfer.fetch(remote, dest, client=HttpClient(rate=0)).read_bytes() == data
        assert len(emu.log(path_contains="f.bin")) == requests_before  # nothing fetched again
        replaced = [e for e in events if e[0] == "replace"]
        assert ("fsync", replaced[0][1]) in events[:events.index(replaced[0])]


def test_many_small_files_report_one_overall_task_and_big_files_their_own(tmp_path, monkeypatch):
    """A log gets "started"/"done" lines for a big file and the overall task, not two lines per small file."""
    import io

    from omnimedseg.progress import Progress

    monkeypatch.setattr(_transfer._Tee, "OWN_TASK_FROM", 50_000)
    sources = {f"s/{i:02d}.dcm": payload(2_000, i) for i in range(30)} | {"big.bin": payload(60_000, 99)}
    remotes = []
    for name, data in sources.items():
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        remotes.append(RemoteFile(name, len(data), {"sha256": hashlib.sha256(data).hexdigest()}, path.as_uri()))
    log = io.StringIO()
    _transfer.fetch_all(remotes, tmp_path / "out", progress=Progress(stream=log), jobs=4)
    lines = log.getvalue().splitlines()
    assert all((tmp_path / "out" / name).read_bytes() == data for name, data in sources.items())
    assert [line.split(":")[0] for line in lines if "started" in line] == ["31 files", "big.bin"]
    assert sum("done" in line for line in lines) == 2 and not any(".dcm" in line for line in lines)
    assert lines[-1].startswith("31 files: done (")
