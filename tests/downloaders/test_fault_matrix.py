"""Every fault, alone and combined, on every platform and on both transports of small files (libcurl's
lane and the engine's own): verified files or one clear error, never a corrupt file under a final name.
``pytest -v`` prints the matrix (fault x platform x transport)."""

from __future__ import annotations

import pytest
from dl_helpers import downloads, payload
from scenarios import PLATFORMS, STORAGE_REDIRECT

from omnimedseg.downloaders import download_dataset
from omnimedseg.downloaders.emulators import KaggleEmulator
from omnimedseg.errors import ChecksumMismatchError, DownloadError

FILES = {"Task01.tar": payload(400_000, 1), "labels.csv": payload(3000, 2), "readme.txt": b"read me\n"}
BIG = 400_000

# name -> (faults as (kind, times, params), expected outcome: "survive" or an error type + message part)
FAULTS = {
    "429 Retry-After seconds": ([("status", 2, {"code": 429, "retry_after": "0"})], "survive"),
    "429 Retry-After HTTP-date": ([("status", 1, {"code": 429, "retry_after": "http-date"})], "survive"),
    "503 burst": ([("status", 3, {"code": 503, "retry_after": "0"})], "survive"),
    "5xx burst (500/502/504)": ([("status", 1, {"code": c, "retry_after": None}) for c in (500, 502, 504)], "survive"),
    "API 503 on metadata": ([("status", 2, {"code": 503, "retry_after": "0", "scope": "api"})], "survive"),
    "connection dropped after N bytes": ([("drop", 2, {"after": 100_000, "match": "Task01"})], "survive"),
    "drop + 200 instead of 206": ([("drop", 1, {"after": 100_000, "match": "Task01"}), ("ignore_range", 1, {"match": "Task01"})], "survive"),
    "drop + 416": ([("drop", 1, {"after": 100_000, "match": "Task01"}), ("range_416", 1, {"match": "Task01"})], "survive"),
    "truncated 200 body": ([("truncate", 1, {"after": 50_000, "match": "Task01"})], "survive"),
    "HTML error page with 200": ([("html", 1, {})], "survive"),
    "slow response (timeout)": ([("slow", 1, {"seconds": 1.5})], "survive"),
    "duplicate Accept-Ranges + drop": ([("duplicate_accept_ranges", -1, {}), ("drop", 1, {"after": 1000, "match": "Task01"})], "survive"),
    "wrong bytes once": ([("wrong_bytes", 1, {})], "survive"),
    "all combined, transient": ([("status", 1, {"code": 503, "retry_after": "0"}), ("drop", 1, {"after": 70_000, "match": "Task01"}),
                                 ("ignore_range", 1, {"match": "Task01"}), ("truncate", 1, {"after": 9000, "match": "Task01"}), ("html", 1, {})],
                                "survive"),
    "persistent 503": ([("status", -1, {"code": 503, "retry_after": "0"})], (DownloadError, "HTTP 503")),
    "persistent HTML": ([("html", -1, {})], (DownloadError, "HTML page")),
    "empty 202 (bot challenge)": ([("empty_202", -1, {})], (DownloadError, "empty body")),
    "wrong checksum (persistent)": ([("wrong_bytes", -1, {})], (ChecksumMismatchError, "expected")),
    "dropped at byte 0 (persistent)": ([("drop", -1, {"after": 0})], (DownloadError, "connection lost")),
    "404": ([("status", -1, {"code": 404, "retry_after": None})], (DownloadError, "HTTP 404")),
}
STORAGE_ONLY = {"expired signed URL (403)": ([("expire", 1, {})], "survive")}


def _run(platform, faults, expected, emulator, make_card, monkeypatch, **kw):
    monkeypatch.setenv("OMNIMEDSEG_TIMEOUT", "1")
    emu, card, files = PLATFORMS[platform](emulator, make_card, FILES, **kw)
    for kind, times, params in faults:
        params = dict(params)
        scope = params.pop("scope", "content")
        emu.inject(kind, times=times, scope=scope, **params)
    if expected == "survive":
        download_dataset(card)
        for name, data in files.items():
            assert (downloads() / name).read_bytes() == data
    else:
        error, text = expected
        with pytest.raises(error, match=text) as info:
            download_dataset(card)
        assert "\n" not in str(info.value)
        assert "Signature" not in str(info.value)  # signed query strings are redacted
        assert KaggleEmulator().users["emu"] not in str(info.value)  # credentials never in errors
    for name, data in files.items():  # the invariant: a final name only ever holds verified bytes
        final = downloads() / name
        assert not final.exists() or final.read_bytes() == data
    return emu, files


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_matrix(platform, fault, emulator, make_card, monkeypatch, transport):
    faults, expected = FAULTS[fault]
    emu, files = _run(platform, faults, expected, emulator, make_card, monkeypatch)
    if fault == "connection dropped after N bytes":  # resumed, not restarted: Range sent at the drop offset
        starts = [int(r.headers["Range"][6:-1]) for r in emu.requests if r.headers.get("Range")]
        assert starts and min(starts) >= 65536  # resumed from received bytes, never restarted at 0
        big = next(len(d) for n, d in files.items() if "Task01" in n)
        assert emu.bytes_served("Task01") <= big + 2 * 100_000


@pytest.mark.parametrize("platform", STORAGE_REDIRECT)
@pytest.mark.parametrize("fault", list(STORAGE_ONLY))
def test_signed_storage_faults(platform, fault, emulator, make_card, monkeypatch):
    faults, expected = STORAGE_ONLY[fault]
    emu, _ = _run(platform, faults, expected, emulator, make_card, monkeypatch, redirect_to_storage=True)
    assert not [r for r in emu.log("storage") if r.method == "HEAD"]  # we never HEAD a GET-signed URL


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_matrix_over_https(fault, emulator, make_card, monkeypatch, tls, ca_bundle, trust, transport):
    """The same faults through TLS, API and signed storage both HTTPS (the test CA trusted as an institution's
    would be): a dropped or cut stream surfaces as an SSL error or a ragged EOF instead of a socket error."""
    trust(ca_bundle)
    faults, expected = FAULTS[fault]
    emu, files = _run("zenodo", faults, expected, emulator, make_card, monkeypatch, tls=tls, redirect_to_storage=True)
    assert emu.url.startswith("https://") and emu.storage_url.startswith("https://")
    if fault == "connection dropped after N bytes":
        starts = [int(r.headers["Range"][6:-1]) for r in emu.requests if r.headers.get("Range")]
        assert starts and min(starts) >= 65536  # resumed over TLS too, never restarted at 0
