"""Zenodo end to end through real HTTP: every JSON dialect, concept ids, resume, auth, verify."""

from __future__ import annotations

import pytest
import requests
from dl_helpers import downloads, payload

from omnimedseg import paths
from omnimedseg.downloaders import download_dataset, verify_dataset
from omnimedseg.downloaders.emulators import ZenodoEmulator
from omnimedseg.downloaders.zenodo import ZenodoDownloader, parse_files
from omnimedseg.errors import DownloadError

FILES = {"a.bin": payload(300_000, 1), "sub dir/b.csv": payload(5000, 2), "c.txt": b"hello\n"}


@pytest.mark.parametrize("shape", ["zenodo", "oct2023", "legacy"])
def test_every_file_entry_dialect_downloads_and_verifies(emulator, make_card, shape):
    emu = emulator(ZenodoEmulator, shape=shape)
    emu.add_record("101", FILES, concept="100")
    card = make_card("zenodo", "100", FILES, version="101")
    raw = download_dataset(card)
    for name, data in FILES.items():
        assert (downloads() / name).read_bytes() == data
        assert (raw / name).read_bytes() == data
    assert all(r.headers["User-Agent"].startswith("omnimedseg/") for r in emu.requests)
    assert not list(downloads().rglob("*.part"))


def test_native_invenio_shape_parses_like_zenodo_json(emulator):
    emu = emulator(ZenodoEmulator)
    emu.add_record("101", FILES)
    native = requests.get(f"{emu.url}/api/records/101", headers={"Accept": "application/vnd.inveniordm.v1+json"}).json()
    classic = requests.get(f"{emu.url}/api/records/101").json()
    assert isinstance(native["files"], dict)
    assert sorted(parse_files(native, emu.url), key=lambda f: f.name) == sorted(parse_files(classic, emu.url),
                                                                                 key=lambda f: f.name)


def test_concept_id_resolves_to_newest_concrete_record(emulator, make_card):
    emu = emulator(ZenodoEmulator)
    emu.add_record("101", {"a.bin": b"old"}, concept="100")
    emu.add_record("105", FILES, concept="100")
    manifest = ZenodoDownloader().resolve(make_card("zenodo", "10.5281/zenodo.100", None, version="latest"))
    assert manifest.version == "105" and manifest.record == "100"
    assert {f.name for f in manifest.files} == set(FILES)


def test_traversal_key_is_refused_before_anything_is_written(emulator, make_card, tmp_path):
    emu = emulator(ZenodoEmulator)
    emu.add_record("101", {"../escape.txt": b"x"})
    with pytest.raises(DownloadError, match="unsafe name"):
        download_dataset(make_card("zenodo", "101", None, version="101"))
    assert not list(tmp_path.rglob("escape.txt"))


def test_token_goes_to_zenodo_only_never_to_the_storage_host(emulator, make_card, monkeypatch):
    emu = emulator(ZenodoEmulator, redirect_to_storage=True)
    emu.add_record("101", FILES)
    monkeypatch.setenv("ZENODO_TOKEN", "s3cr3t")
    download_dataset(make_card("zenodo", "101", FILES, version="101"))
    api = emu.log("api")
    storage = emu.log("storage")
    assert api and storage
    assert all(r.headers.get("Authorization") == "Bearer s3cr3t" for r in api)
    assert all("Authorization" not in r.headers for r in storage)
    assert all("s3cr3t" not in str(r.query) for r in emu.requests)


def test_verify_reports_and_repairs(emulator, make_card):
    emu = emulator(ZenodoEmulator)
    emu.add_record("101", FILES)
    card = make_card("zenodo", "101", FILES, version="101")
    download_dataset(card)
    (downloads() / "a.bin").write_bytes(b"garbage")
    (downloads() / "c.txt").unlink()
    # raw/ holds hard links to the downloads: overwriting a.bin damaged the raw tree too
    assert verify_dataset(card) == {"a.bin": "corrupt", "sub dir/b.csv": "ok", "c.txt": "missing",
                                    "raw/emu": "damaged"}
    repaired = verify_dataset(card, repair=True)
    assert (repaired["a.bin"], repaired["raw/emu"]) == ("repaired", "rebuilt")
    assert verify_dataset(card) == {**{name: "ok" for name in FILES}, "raw/emu": "ok"}
    assert (paths.raw_dir("emu") / "a.bin").read_bytes() == FILES["a.bin"]


def test_offline_mode_verifies_without_any_request(emulator, make_card, monkeypatch):
    emu = emulator(ZenodoEmulator)
    emu.add_record("101", FILES)
    card = make_card("zenodo", "101", FILES, version="101")
    download_dataset(card)
    before = len(emu.requests)
    monkeypatch.setenv("OMNIMEDSEG_OFFLINE", "1")
    download_dataset(card)
    assert len(emu.requests) == before
