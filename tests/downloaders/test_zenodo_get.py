"""The optional zenodo-get engine, run for real against the Zenodo emulator: names are validated
before it runs, every file is verified after it, and nothing unverified keeps a final name."""

from __future__ import annotations

import signal
import subprocess

import pytest
from dl_helpers import downloads, payload

from omnimedseg.downloaders import Manifest, download_dataset
from omnimedseg.downloaders._zenodo_get import fetch_with_zenodo_get
from omnimedseg.downloaders.emulators import ZenodoEmulator
from omnimedseg.errors import ChecksumMismatchError, DownloadError
from omnimedseg.registry import RemoteFile

pytest.importorskip("zenodo_get", reason="zenodo-get is an optional extra: pip install zenodo-get")
FILES = {"a.bin": payload(200_000, 1), "sub dir/b.csv": payload(3000, 2)}


def by_zenodo_get(emu):
    return [r for r in emu.requests if "zenodo-get" in r.headers.get("User-Agent", "")]


def test_zenodo_get_engine_downloads_verifies_and_leaves_our_process_alone(emulator, make_card):
    emu = emulator(ZenodoEmulator)
    emu.add_record("101", FILES, concept="100")
    handler = signal.getsignal(signal.SIGINT)
    download_dataset(make_card("zenodo", "100", FILES, version="101"), engine="zenodo-get")
    for name, data in FILES.items():
        assert (downloads() / name).read_bytes() == data
    assert by_zenodo_get(emu), "zenodo-get itself must have fetched the files"
    assert all(r.headers["User-Agent"].startswith("omnimedseg/") for r in emu.requests)
    assert signal.getsignal(signal.SIGINT) is handler  # its SIGINT hijack stayed in the subprocess
    assert not list(downloads().glob(".zenodo-get-*"))


def test_traversal_name_is_refused_before_zenodo_get_runs(emulator, make_card, tmp_path, monkeypatch):
    emu = emulator(ZenodoEmulator)
    emu.add_record("101", {"../escape.txt": b"x", "ok.txt": b"y"})
    with pytest.raises(DownloadError, match=r"refusing unsafe name '\.\./escape\.txt'"):
        download_dataset(make_card("zenodo", "101", None, version="101"), engine="zenodo-get")
    assert not by_zenodo_get(emu)
    assert not list(tmp_path.rglob("escape.txt"))

    def never(*a, **k):
        raise AssertionError("zenodo-get must not run")
    monkeypatch.setattr(subprocess, "run", never)  # the adapter's own check, whatever resolve let through
    manifest = Manifest("emu", "zenodo", "100", "101", (RemoteFile("../escape.txt", 1, {"md5": "0" * 32}, "x"),))
    with pytest.raises(DownloadError, match="unsafe name"):
        fetch_with_zenodo_get(manifest, tmp_path / "dl")


def test_wrong_checksum_from_the_server_is_a_clear_error_and_nothing_is_kept(emulator, make_card):
    emu = emulator(ZenodoEmulator)
    emu.add_record("101", FILES)
    emu.inject("wrong_bytes", times=-1)
    with pytest.raises(ChecksumMismatchError, match=r"zenodo-get failed for record 101 \(.*checksum error.*\); "
                                                    r"nothing was kept; rerun without --engine") as info:
        download_dataset(make_card("zenodo", "101", FILES, version="101"), engine="zenodo-get")
    assert "\n" not in str(info.value)
    assert not [p for p in downloads().rglob("*") if p.is_file() and p.name != "a.bin.lock"]


def test_bytes_zenodo_get_accepts_but_the_card_does_not_are_refused(emulator, make_card):
    emu = emulator(ZenodoEmulator)
    emu.add_record("101", FILES)
    pinned = {**FILES, "a.bin": payload(200_000, 99)}  # the card pins sha256 of other bytes (same size)
    with pytest.raises(ChecksumMismatchError, match="zenodo-get delivered other bytes than pinned for a.bin"):
        download_dataset(make_card("zenodo", "101", pinned, version="101", algs=("sha256",)), engine="zenodo-get")
    assert by_zenodo_get(emu)
    assert not (downloads() / "a.bin").exists() and not list(downloads().glob(".zenodo-get-*"))
