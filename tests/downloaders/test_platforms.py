"""Mendeley Data, TCIA/NBIA v4, OSF and Kaggle end to end against their emulators: listing shapes,
platform-specific checks, clear errors, and credentials that stay on their own host."""

from __future__ import annotations

import json
import logging

import pytest
from dl_helpers import downloads, payload

from omnimedseg.downloaders import Manifest, download_dataset, verify_dataset
from omnimedseg.downloaders.emulators import KaggleEmulator, MendeleyEmulator, OsfEmulator, TciaEmulator
from omnimedseg.downloaders.kaggle import parse_ref
from omnimedseg.downloaders.mendeley import MendeleyDownloader, dataset_version
from omnimedseg.downloaders.osf import OsfDownloader, guid
from omnimedseg.downloaders.tcia import collection_filters
from omnimedseg.errors import ChecksumMismatchError, DatasetNotFoundError, DownloadError

FILES = {"images/ct/case1.nii.gz": payload(50_000, 1), "images/case2.nii.gz": payload(3000, 2), "README.txt": b"hi\n"}


def assert_downloaded(files):
    for name, data in files.items():
        assert (downloads() / name).read_bytes() == data
    assert not list(downloads().rglob("*.part"))


# --- Mendeley Data -------------------------------------------------------------------------------
def test_mendeley_walks_folders_and_verifies_sha256(emulator, make_card):
    emu = emulator(MendeleyEmulator)
    emu.add_dataset("jxvmr8rchx", FILES, version=3)
    manifest = MendeleyDownloader().resolve(make_card("mendeley", "10.17632/jxvmr8rchx", None, version="latest"))
    assert manifest.version == "3"
    blobs = emu.datasets["jxvmr8rchx"][3]["blobs"]
    assert {f.name: f.hashes for f in manifest.files} == {n: {"sha256": blobs[n].sha256} for n in FILES}
    download_dataset(make_card("mendeley", "10.17632/jxvmr8rchx.3", FILES, version="3", algs=("sha256",)))
    assert_downloaded(FILES)


def test_mendeley_repair_relists_links_that_expired_since_the_lock(emulator, make_card):
    emu = emulator(MendeleyEmulator)
    emu.add_dataset("jxvmr8rchx", FILES)
    card = make_card("mendeley", "jxvmr8rchx", FILES, version="1", algs=("sha256",))
    download_dataset(card)
    (downloads() / "README.txt").unlink()
    emu._secret = b"rotated"  # every signed URL in the lock is now invalid (403), as after download_expiry_time
    assert verify_dataset(card, repair=True)["README.txt"] == "repaired"
    assert (downloads() / "README.txt").read_bytes() == FILES["README.txt"]
    assert [r.status for r in emu.log("storage")][-2:] == [403, 200]  # refused, re-listed, fetched


def test_mendeley_file_still_processing_is_a_clear_error(emulator, make_card):
    emu = emulator(MendeleyEmulator)
    emu.add_dataset("jxvmr8rchx", FILES, pending=("README.txt",))
    with pytest.raises(DownloadError, match="README.txt has status 'PROCESSING', expected COMPLETED"):
        download_dataset(make_card("mendeley", "jxvmr8rchx", None, version="1"))


def test_mendeley_ids_from_dois_and_urls():
    assert dataset_version("10.17632/jxvmr8rchx.2") == ("jxvmr8rchx", "2")
    assert dataset_version("https://data.mendeley.com/datasets/jxvmr8rchx/4") == ("jxvmr8rchx", "4")
    assert dataset_version("jxvmr8rchx", "7") == ("jxvmr8rchx", "7")
    with pytest.raises(DatasetNotFoundError):
        dataset_version("not a dataset")


# --- TCIA ----------------------------------------------------------------------------------------
SERIES = {"1-01.dcm": payload(20_000, 3), "1-02.dcm": payload(20_000, 4)}


def tcia_card(make_card, record="LIDC-IDRI?Modality=CT"):
    return make_card("tcia", record, None, version="latest")


def test_tcia_series_zips_checked_against_md5_list_then_pinned_in_the_lock(emulator, make_card):
    emu = emulator(TciaEmulator)
    emu.add_series("LIDC-IDRI", "LIDC-IDRI-0001", "1.2.3.1", SERIES)
    emu.add_series("LIDC-IDRI", "LIDC-IDRI-0001", "1.2.3.2", SERIES, modality="DX")
    card = tcia_card(make_card)
    download_dataset(card)
    assert (downloads() / "LIDC-IDRI-0001/1.2.3.1.zip").is_file()
    assert not (downloads() / "LIDC-IDRI-0001/1.2.3.2.zip").exists()  # filtered out by Modality=CT
    assert {r.query.get("Modality") for r in emu.log(path_contains="getSeries")} == {"CT"}
    lock = Manifest.read(downloads(), "emu")
    assert [f.hashes.keys() for f in lock.files] == [{"sha256"}]  # no platform hash: pinned on arrival
    assert verify_dataset(card) == {"LIDC-IDRI-0001/1.2.3.1.zip": "ok", "raw/emu": "ok"}


def test_tcia_wrong_member_md5_is_refused_and_never_kept(emulator, make_card):
    emu = emulator(TciaEmulator)
    emu.add_series("LIDC-IDRI", "P1", "1.2.3.1", SERIES, bad_md5="1-02.dcm")
    with pytest.raises(ChecksumMismatchError, match=r"1-02.dcm: expected md5 0{32} \(from md5hashes.csv\)"):
        download_dataset(tcia_card(make_card))
    assert not (downloads() / "P1/1.2.3.1.zip").exists()
    assert len(emu.log(path_contains="getImageWithMD5Hash")) == 2  # retried once, then refused


def test_tcia_image_count_mismatch_is_refused(emulator, make_card):
    emu = emulator(TciaEmulator)
    emu.add_series("LIDC-IDRI", "P1", "1.2.3.1", SERIES, image_count=3)
    with pytest.raises(ChecksumMismatchError, match="expected 3 images"):
        download_dataset(tcia_card(make_card))


def test_tcia_empty_200_means_no_results(emulator, make_card):
    emu = emulator(TciaEmulator)
    emu.add_series("LIDC-IDRI", "P1", "1.2.3.1", SERIES)
    with pytest.raises(DatasetNotFoundError, match="NBIA returned no series; check the name against"):
        download_dataset(tcia_card(make_card, "NO-SUCH-COLLECTION"))


def test_tcia_truncated_zip_without_length_is_fetched_again(emulator, make_card):
    emu = emulator(TciaEmulator)
    emu.add_series("LIDC-IDRI", "P1", "1.2.3.1", SERIES)
    emu.inject("truncate", after=30_000)  # close-delimited and short: looks complete, unpinned size
    download_dataset(tcia_card(make_card))
    assert len(emu.log(path_contains="getImageWithMD5Hash")) == 2


def test_tcia_record_filters():
    assert collection_filters("LIDC-IDRI?Modality=CT&PatientID=P 1") == ("LIDC-IDRI", {"Modality": "CT",
                                                                                      "PatientID": "P 1"})
    assert collection_filters("Pancreas-CT") == ("Pancreas-CT", {})


# --- OSF -----------------------------------------------------------------------------------------
def test_osf_pages_folders_components_and_hashes(emulator, make_card):
    emu = emulator(OsfEmulator, page_size=1)
    emu.add_project("ab12c", FILES, children={"cd34e": {"sub.txt": b"component\n"}}, md5_only=("README.txt",))
    manifest = OsfDownloader().resolve(make_card("osf", "https://osf.io/ab12c/", None, version="latest"))
    names = {f.name: f.hashes for f in manifest.files}
    assert set(names) == set(FILES) | {"cd34e/sub.txt"}
    assert set(names["README.txt"]) == {"md5"} and set(names["images/case2.nii.gz"]) == {"md5", "sha256"}
    assert any(r.query.get("page") == "2" for r in emu.requests)  # links.next was followed
    download_dataset(make_card("osf", "ab12c", None, version="latest"))
    assert_downloaded({**FILES, "cd34e/sub.txt": b"component\n"})


def test_osf_token_stays_on_the_api_host(emulator, make_card, monkeypatch):
    emu = emulator(OsfEmulator)
    emu.add_project("ab12c", FILES)
    monkeypatch.setenv("OSF_TOKEN", "osf-s3cr3t")
    download_dataset(make_card("osf", "ab12c", FILES, version="latest", algs=("sha256",)))
    assert all(r.headers.get("Authorization") == "Bearer osf-s3cr3t" for r in emu.log("api"))
    assert emu.log("storage") and all("Authorization" not in r.headers for r in emu.log("storage"))


def test_osf_guid_forms():
    assert guid("10.17605/OSF.IO/AB12C") == guid("https://osf.io/ab12c/") == guid("ab12c") == "ab12c"


# --- Kaggle --------------------------------------------------------------------------------------
def test_kaggle_json_credentials_basic_auth_only_to_kaggle(emulator, make_card, monkeypatch, tmp_path):
    emu = emulator(KaggleEmulator, users={"alice": "k3y-s3cr3t"}, page_size=2)
    emu.add_dataset("lab/scans", FILES)
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(var)
    config = tmp_path / "kaggle-config"
    config.mkdir()
    (config / "kaggle.json").write_text(json.dumps({"username": "alice", "key": "k3y-s3cr3t"}))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config))
    download_dataset(make_card("kaggle", "https://www.kaggle.com/datasets/lab/scans", None, version="latest"))
    assert_downloaded(FILES)
    assert all(r.headers.get("Authorization", "").startswith("Basic ") for r in emu.log("api"))
    assert emu.log("storage") and all("Authorization" not in r.headers for r in emu.log("storage"))
    assert any(r.query.get("pageToken") for r in emu.log("api"))


def test_kaggle_unpinned_file_is_verified_by_x_goog_hash(emulator, make_card):
    emu = emulator(KaggleEmulator)
    emu.add_dataset("lab/scans", FILES)
    emu.inject("wrong_bytes", times=-1, match="README")
    with pytest.raises(ChecksumMismatchError, match=r"README.txt: expected md5 [0-9a-f]{32} \(x-goog-hash\)"):
        download_dataset(make_card("kaggle", "lab/scans", None, version="latest"))
    assert not (downloads() / "README.txt").exists()


def test_kaggle_competition_rules_not_accepted_says_what_to_do(emulator, make_card, caplog):
    emu = emulator(KaggleEmulator)
    emu.add_competition("lung-seg", {"train.zip": b"x" * 100})
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DownloadError) as info:
        download_dataset(make_card("kaggle", "competition:lung-seg", None, version="latest"))
    message = str(info.value)
    assert "rules have not been accepted" in message and "/competitions/lung-seg/rules" in message
    assert "\n" not in message
    key = emu.users["emu"]
    assert key not in message and key not in caplog.text
    assert len(emu.log(path_contains="/download/")) <= 3  # no retry storm on a 403 that will not change


def test_kaggle_missing_credentials_is_a_clear_error(emulator, make_card, monkeypatch):
    emu = emulator(KaggleEmulator)
    emu.add_dataset("lab/scans", FILES)
    monkeypatch.delenv("KAGGLE_USERNAME")
    with pytest.raises(DownloadError, match="HTTP 401, no credentials found; set KAGGLE_USERNAME and KAGGLE_KEY"):
        download_dataset(make_card("kaggle", "lab/scans", None, version="latest"))


def test_kaggle_refs():
    assert parse_ref("lab/scans") == ("dataset", "lab/scans")
    assert parse_ref("https://www.kaggle.com/competitions/lung-seg/data") == ("competition", "lung-seg")
    assert parse_ref("competition:lung-seg") == ("competition", "lung-seg")


# --- credentials never leak, on any platform -------------------------------------------------------
@pytest.mark.parametrize("platform,env,secret", [
    ("zenodo", "ZENODO_TOKEN", "zen-s3cr3t"), ("figshare", "FIGSHARE_TOKEN", "fig-s3cr3t"),
    ("dataverse", "DATAVERSE_API_TOKEN", "dv-s3cr3t"), ("github", "GITHUB_TOKEN", "gh-s3cr3t"),
    ("osf", "OSF_TOKEN", "osf-s3cr3t"), ("kaggle", "KAGGLE_KEY", "0123456789abcdef")])
def test_tokens_only_reach_their_own_host_and_never_logs_or_errors(platform, env, secret, emulator, make_card,
                                                                  monkeypatch, caplog):
    from scenarios import PLATFORMS

    monkeypatch.setenv(env, secret)
    caplog.set_level(logging.DEBUG)
    emu, card, files = PLATFORMS[platform](emulator, make_card, FILES, redirect_to_storage=True)
    download_dataset(card)
    assert emu.log("storage"), "the scenario must exercise a cross-host redirect"
    assert all(secret not in json.dumps(r.headers) + json.dumps(r.query) for r in emu.log("storage"))
    assert any(secret in json.dumps(r.headers) or r.headers.get("Authorization", "").startswith("Basic ")
               for r in emu.log("api"))
    emu.inject("status", times=-1, code=503, retry_after="0")
    (downloads() / next(iter(files))).unlink()
    with pytest.raises(DownloadError) as info:
        download_dataset(card)
    assert secret not in str(info.value) and secret not in caplog.text


def test_host_pacing_allows_a_burst_then_keeps_the_rate_and_retry_after_wins():
    import threading
    import time

    from omnimedseg.downloaders._http import _Host

    host = _Host(interval=0.2, semaphore=threading.BoundedSemaphore(1), burst=3)
    start = time.monotonic()
    for _ in range(3):
        host.wait_turn()
    assert time.monotonic() - start < 0.1  # the burst goes at once
    host.wait_turn()
    assert time.monotonic() - start >= 0.15  # then the rate applies
    host.hold_off(0.3)
    before = time.monotonic()
    host.wait_turn()
    assert time.monotonic() - before >= 0.25  # a server's Retry-After is never shortened by the burst
