"""libcurl's lane for small files (``downloaders/_curl.py``): the engine's rules on a transport in C.

Every test runs against loopback emulators, proxies and TLS servers. What is checked is what a user can
see: the bytes and names on disk, what the server received (credentials, cookies, proxies, pacing), the
one-line errors (raised by the engine's transfer, which takes every file the lane cannot finish), and the
debug log, where the lane names each request it made ("libcurl: GET ...").
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time

import pytest
from dl_helpers import downloads, payload, sticky_server

from omnimedseg.downloaders import _curl, _transfer, download_dataset
from omnimedseg.downloaders._http import HttpClient
from omnimedseg.downloaders.emulators import ZenodoEmulator
from omnimedseg.downloaders.emulators.platforms import StaticEmulator
from omnimedseg.errors import ChecksumMismatchError, DownloadError
from omnimedseg.progress import SILENT
from omnimedseg.registry import RemoteFile

pytest.importorskip("pycurl", reason="pip install -e '.[test]' (pycurl is in the test and fast extras)")

# an empty file, odd sizes, one exactly at the limit (the lane's), one just above it (the engine's)
SMALL = {f"series/{i:03d}.dcm": payload(size, i) for i, size in enumerate([0, 1, 777, 16_384, 40_001, 65_536])}
BIG = {"series/volume.nii.gz": payload(65_537, 99)}


def serve(emulator, files: dict[str, bytes], tls=None) -> tuple[StaticEmulator, list[RemoteFile]]:
    emu = emulator(StaticEmulator, tls=tls)
    blobs = emu.add_files(files)
    return emu, [RemoteFile(name, len(data), {"md5": blobs[name].md5}, f"{emu.url}/{name}")
                 for name, data in files.items()]


@pytest.fixture
def lane_log(caplog):
    """The URLs the lane requested (its debug lines), and those it handed to the engine after a failure."""
    caplog.set_level(logging.DEBUG, logger=_curl.__name__)

    def lines(kind: str = "GET") -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == _curl.__name__
                and ("failed" in r.getMessage()) == (kind == "failed")]
    return lines


def test_small_files_come_through_libcurl_verified_and_fsynced_before_their_rename(emulator, tmp_path,
                                                                                  monkeypatch, lane_log):
    emu, remotes = serve(emulator, SMALL | BIG)
    events = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(("fsync", os.fstat(fd).st_ino)) or fsync(fd))

    def spy_replace(src, dst):
        if str(src).endswith(".part"):
            events.append(("replace", os.stat(src).st_ino))
        replace(src, dst)
    monkeypatch.setattr(os, "replace", spy_replace)
    paths = _transfer.fetch_all(remotes, tmp_path / "out", client=HttpClient(rate=0), jobs=4)
    assert paths == [tmp_path / "out" / r.name for r in remotes]  # in the order asked, whoever fetched them
    for name, data in (SMALL | BIG).items():
        assert (tmp_path / "out" / name).read_bytes() == data
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.endswith((".part", ".json"))]
    fetched = sorted(line.split()[2].rpartition("/series/")[2] for line in lane_log())
    assert fetched == sorted(name.removeprefix("series/") for name in SMALL)  # the big one went to the engine
    for i, event in enumerate(events):  # every part, the lane's and the engine's, fsynced before its rename
        if event[0] == "replace":
            assert ("fsync", event[1]) in events[:i]
    assert sum(e[0] == "replace" for e in events) == len(SMALL) + len(BIG)
    before = len(emu.log())
    _transfer.fetch_all(remotes, tmp_path / "out", client=HttpClient(rate=0))  # a rerun: all verified on disk
    assert len(emu.log()) == before


def test_a_file_the_lane_cannot_finish_goes_to_the_engine_and_the_others_go_on(emulator, tmp_path, lane_log):
    files = {f"s/{i:02d}.png": payload(3000 + i, i) for i in range(12)}
    emu, remotes = serve(emulator, files)
    emu.inject("wrong_bytes", times=1, match="s/05.png")  # corrupted once
    emu.inject("html", times=1, match="s/07.png")  # a maintenance page once
    emu.inject("status", times=-1, code=404, retry_after=None, match="s/03.png")  # gone
    with pytest.raises(DownloadError, match=r"^s/03.png: HTTP 404 from http://127.0.0.1:\d+/s/03.png .*; not found"):
        _transfer.fetch_all(remotes, tmp_path / "out", client=HttpClient(rate=0), jobs=3)
    assert len(lane_log()) == len(files) and not lane_log("failed")  # the lane asked for every file once
    kept = {p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")}
    assert kept >= set(files) - {"s/03.png", "s/05.png", "s/07.png"} and "s/03.png" not in kept
    emu.clear_faults()  # the record is fixed: a rerun fetches what is missing, nothing else
    _transfer.fetch_all(remotes, tmp_path / "out", client=HttpClient(rate=0), jobs=3)
    assert all((tmp_path / "out" / name).read_bytes() == data for name, data in files.items())
    assert len(emu.log(path_contains="s/00.png")) == 1


def test_a_server_asking_to_slow_down_hands_every_file_left_to_the_engine(emulator, tmp_path, lane_log):
    files = {f"s/{i:02d}.png": payload(2000, i) for i in range(10)}
    emu, remotes = serve(emulator, files)
    emu.inject("status", times=1, code=503, retry_after="0")
    _transfer.fetch_all(remotes, tmp_path / "out", client=HttpClient(rate=0), jobs=1)
    assert all((tmp_path / "out" / name).read_bytes() == data for name, data in files.items())
    assert len(lane_log()) == 1  # the lane stopped at the 503; the engine fetched the rest


def test_a_dropped_body_concerns_one_file_and_many_misses_in_a_row_stop_the_lane(emulator, tmp_path, lane_log):
    files = {f"s/{i:02d}.png": payload(3000, i) for i in range(12)}
    emu, remotes = serve(emulator, files)
    emu.inject("drop", times=1, after=100, match="s/02.png")  # a connection reset mid-body
    _transfer.fetch_all(remotes, tmp_path / "a", client=HttpClient(rate=0), jobs=2)
    assert all((tmp_path / "a" / name).read_bytes() == data for name, data in files.items())
    assert len(lane_log("failed")) == 1 and len(lane_log()) == len(files) - 1  # the lane went on
    emu.inject("status", times=-1, code=410, retry_after=None)  # every file gone: not worth asking each twice
    with pytest.raises(DownloadError, match=r"^s/00.png: HTTP 410"):
        _transfer.fetch_all(remotes, tmp_path / "b", client=HttpClient(rate=0), jobs=1)
    assert len(lane_log()) == len(files) - 1 + _curl.MISSES_IN_A_ROW


def test_a_network_failure_stops_the_lane_and_is_named_by_the_engine(tmp_path, lane_log):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    remotes = [RemoteFile(f"{i}.bin", 10, {"md5": "0" * 32}, f"http://127.0.0.1:{port}/{i}.bin") for i in range(50)]
    with pytest.raises(DownloadError, match=rf"^0.bin: 127.0.0.1:{port} refused the connection after 6 attempts"):
        _transfer.fetch_all(remotes, tmp_path / "out", client=HttpClient(rate=0), jobs=4)
    assert 1 <= len(lane_log("failed")) <= 4  # the transfers already started, no more


def test_a_body_longer_than_pinned_is_cut_off_and_refused(emulator, tmp_path):
    emu, [remote] = serve(emulator, {"mask.png": payload(30_000, 1)})
    short = RemoteFile(remote.name, 20_000, {"md5": hashlib.md5(payload(20_000, 1)).hexdigest()}, remote.url)
    with pytest.raises(DownloadError, match=r"^mask.png: http://127.0.0.1:\d+/mask.png sent more than the "
                                            r"expected 20000 bytes; the record changed: re-pin with"):
        _transfer.fetch_all([short], tmp_path / "out", client=HttpClient(rate=0))
    assert not list((tmp_path / "out").iterdir())


def test_stale_parts_are_replaced_and_a_corrupt_final_file_is_fetched_again(emulator, tmp_path, lane_log):
    files = {"a.png": payload(5000, 1), "b.png": payload(6000, 2)}
    emu, remotes = serve(emulator, files)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png.part").write_bytes(b"left by a killed run" * 500)
    (out / "a.png.part.json").write_text('{"size": 1}')
    (out / "b.png").write_bytes(b"corrupt")
    _transfer.fetch_all(remotes, out, client=HttpClient(rate=0))
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert all((out / name).read_bytes() == data for name, data in files.items())
    assert [line.split()[2].rpartition("/")[2] for line in lane_log()] == ["a.png"]  # b.png: the engine's


def test_credentials_stay_on_their_origin_through_the_https_storage_redirect(emulator, tls, ca_bundle, trust,
                                                                             make_card, monkeypatch, lane_log):
    files = {f"{i}.png": payload(1000 * i + 1, i) for i in range(6)}
    emu = emulator(ZenodoEmulator, tls=tls, redirect_to_storage=True)
    emu.add_record("101", files)
    trust(ca_bundle)
    monkeypatch.setenv("ZENODO_TOKEN", "zen-s3cr3t")
    download_dataset(make_card("zenodo", "101", files, version="101"))
    assert all((downloads() / name).read_bytes() == data for name, data in files.items())
    content = [r for r in emu.log("api") if "/files/" in r.path]
    assert len(content) == len(files) and all(r.headers.get("Authorization") == "Bearer zen-s3cr3t" for r in content)
    assert len(emu.log("storage")) == len(files) and all("Authorization" not in r.headers for r in emu.log("storage"))
    assert sum(line.startswith("libcurl: GET https://") for line in lane_log()) == 2 * len(files)  # both hops


def test_a_redirect_from_https_to_plain_http_is_refused(emulator, tls, ca_bundle, trust, make_card):
    files = {"a.png": b"tiny"}
    emu = emulator(ZenodoEmulator, tls=tls, redirect_to_storage=True)
    emu.add_record("101", files)
    emu.storage_url = "http://127.0.0.1:9"
    trust(ca_bundle)
    with pytest.raises(DownloadError, match=r"refusing redirect from https to plain http \(http://127\.0\.0\.1:9/"):
        download_dataset(make_card("zenodo", "101", files, version="101"))
    assert not emu.log("storage")


def test_small_files_go_through_the_environment_proxy_unless_no_proxy_names_the_host(proxy, emulator, tmp_path,
                                                                                   monkeypatch, lane_log):
    proxy_url, seen = proxy
    emu, remotes = serve(emulator, {"a.png": payload(100, 1), "b.png": payload(200, 2)})
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    _transfer.fetch_all(remotes, tmp_path / "via", client=HttpClient(rate=0))
    assert sorted(seen) == sorted(r.url for r in remotes) and len(lane_log()) == 2
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    _transfer.fetch_all(remotes, tmp_path / "direct", client=HttpClient(rate=0))
    assert len(seen) == 2 and len(lane_log()) == 4
    assert (tmp_path / "direct" / "b.png").read_bytes() == payload(200, 2)


def test_https_through_the_proxy_tunnel_with_the_institution_ca(proxy, emulator, tls, ca_bundle, trust,
                                                                monkeypatch, tmp_path, lane_log):
    proxy_url, seen = proxy
    emu, remotes = serve(emulator, {"a.png": payload(100, 1)}, tls=tls)
    trust(ca_bundle)
    monkeypatch.setenv("HTTPS_PROXY", proxy_url)
    _transfer.fetch_all(remotes, tmp_path / "out", client=HttpClient(rate=0))
    assert (tmp_path / "out" / "a.png").read_bytes() == payload(100, 1)
    assert seen == [f"CONNECT {emu.url.removeprefix('https://')}"] and lane_log()[0].startswith("libcurl: GET https")


@pytest.mark.parametrize("cookie", ["lb=node7", "lb=caf\xe9"], ids=["ascii", "latin-1"])
def test_cookies_a_server_sets_are_sent_back(tmp_path, lane_log, cookie):
    with sticky_server(cookie) as (base, seen):
        remotes = [RemoteFile(f"{i}.txt", 2, {"md5": hashlib.md5(b"ok").hexdigest()},
                              f"{base}/{'set/' if i == 0 else ''}{i}.txt") for i in range(4)]
        _transfer.fetch_all(remotes, tmp_path / "out", client=HttpClient(rate=0, per_host=1), jobs=1)
    assert seen == [None, cookie, cookie, cookie] and len(lane_log()) == 4  # as http.client sends it: latin-1


def test_the_lane_keeps_the_hosts_pace(emulator, tmp_path, monkeypatch, lane_log):
    monkeypatch.delenv("OMNIMEDSEG_MAX_RPS")
    emu, remotes = serve(emulator, {f"{i}.png": payload(100, i) for i in range(6)})
    _transfer.fetch_all(remotes, tmp_path / "out", client=HttpClient(rate=20, per_host=4), jobs=4)
    times = sorted(r.at for r in emu.log())
    assert len(lane_log()) == 6 and times[-1] - times[0] >= 5 * 0.05 * 0.9  # one request per 50 ms


def test_cancel_stops_the_lane_between_requests_and_leaves_no_final_file_unverified(emulator, tmp_path):
    files = {f"{i}.png": payload(100, i) for i in range(20)}
    emu, remotes = serve(emulator, files)
    emu.inject("slow", times=-1, seconds=0.3)
    cancel = threading.Event()
    lane = _curl.CurlLane(HttpClient(rate=0), 2, _transfer._Tee(SILENT, lambda n: None), cancel)
    threading.Timer(0.4, cancel.set).start()
    started = time.monotonic()
    finished = lane.run([(i, r, tmp_path / r.name) for i, r in enumerate(remotes)])
    assert time.monotonic() - started < 2.0 and len(finished) < len(files)
    for path in tmp_path.glob("*.png"):
        assert path.read_bytes() == files[path.name]


@pytest.mark.parametrize("value", ["0", "off"])
def test_the_lane_can_be_turned_off(emulator, tmp_path, monkeypatch, lane_log, value):
    emu, remotes = serve(emulator, SMALL)
    monkeypatch.setenv("OMNIMEDSEG_LIBCURL", value)
    _transfer.fetch_all(remotes, tmp_path / "out", client=HttpClient(rate=0))
    assert all((tmp_path / "out" / name).read_bytes() == data for name, data in SMALL.items()) and not lane_log()


def test_a_wrong_hash_pinned_is_the_engines_checksum_error(emulator, tmp_path):
    emu, [remote] = serve(emulator, {"a.png": payload(500, 1)})
    wrong = RemoteFile(remote.name, remote.size, {"md5": "0" * 32}, remote.url)
    with pytest.raises(ChecksumMismatchError, match=r"^a.png: expected md5 0{32}, received [0-9a-f]{32} from .*twice"):
        _transfer.fetch_all([wrong], tmp_path / "out", client=HttpClient(rate=0))
    assert not (tmp_path / "out" / "a.png").exists()


def test_hostile_redirects_and_an_encoded_body_meet_the_engines_rules(tmp_path, lane_log, transport):
    """A redirect loop, to a local file, to a host name no connection can use, to an unparseable URL; a gzip
    body sent although identity was asked: one line each (never a traceback), and the body decoded."""
    import gzip
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    data = payload(5000, 7)

    class Hostile(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 - http.server's naming
            target = {"/loop.png": "/loop.png", "/local.png": "file:///etc/passwd", "/name.png": "http://a..b/x",
                      "/ipv6.png": "http://["}.get(self.path)
            body = gzip.compress(data) if self.path == "/gzip.png" else b""
            self.send_response(302 if target else 200)
            if target:
                self.send_header("Location", target)
            else:
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    md5 = hashlib.md5(data).hexdigest()
    try:
        for name, error in (("loop.png", r"more than 10 redirects"),
                            ("local.png", r"refusing redirect to file:///etc/passwd: its scheme 'file'"),
                            ("name.png", r"refusing redirect to http://a\.\.b/x: its host name is not a valid name"),
                            ("ipv6.png", r"refusing redirect to http://\[: it cannot be parsed")):
            with pytest.raises(DownloadError, match=rf"^{name}: {error}"):
                _transfer.fetch_all([RemoteFile(name, len(data), {"md5": md5}, f"{base}/{name}")], tmp_path / "out")
        _transfer.fetch_all([RemoteFile("gzip.png", len(data), {"md5": md5}, f"{base}/gzip.png")], tmp_path / "out")
    finally:
        server.shutdown()
        server.server_close()
    assert (tmp_path / "out" / "gzip.png").read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gzip.png"]
    if transport == "libcurl":
        assert sum("/loop.png 302" in line for line in lane_log()) == 11  # ten redirects followed, the 11th refused
        assert [line for line in lane_log() if "/etc/passwd" in line or "file:" in line] == []


def test_no_proxy_is_requests_reading_never_libcurls_own(proxy, emulator, tmp_path, monkeypatch, lane_log):
    """libcurl matches ``NO_PROXY`` by its own rules (``localhost.`` names ``localhost`` there, not in
    requests): the proxy requests chose is the one used."""
    proxy_url, seen = proxy
    emu, [remote] = serve(emulator, {"a.png": payload(100, 1)})
    local = RemoteFile(remote.name, remote.size, remote.hashes, remote.url.replace("127.0.0.1", "localhost"))
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    monkeypatch.setenv("NO_PROXY", "localhost.")
    _transfer.fetch_all([local], tmp_path / "out", client=HttpClient(rate=0))
    assert seen == [local.url] and len(lane_log()) == 1


def test_a_folder_of_cas_in_requests_ca_bundle_is_trusted_as_requests_trusts_it(emulator, tls, test_ca, trust,
                                                                                 tmp_path, lane_log):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to hash a CA folder (openssl rehash)")
    folder = tmp_path / "institution-cas"
    folder.mkdir()
    test_ca.cert_pem.write_to_path(str(folder / "institution.pem"))
    subprocess.run(["openssl", "rehash", str(folder)], check=True)
    emu, remotes = serve(emulator, {"a.png": payload(100, 1)}, tls=tls)
    trust(folder)
    _transfer.fetch_all(remotes, tmp_path / "out", client=HttpClient(rate=0))
    assert (tmp_path / "out" / "a.png").read_bytes() == payload(100, 1) and lane_log()[0].startswith("libcurl: GET https")


def test_cancel_is_prompt_when_the_disk_is_slower_than_the_network(emulator, tmp_path, monkeypatch):
    """Received bodies wait for the finishers in a bounded backlog; Ctrl-C drops the ones not yet written."""
    files = {f"{i:03d}.png": payload(100, i) for i in range(300)}
    emu, remotes = serve(emulator, files)
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (time.sleep(0.1), fsync(fd)))
    cancel = threading.Event()
    lane = _curl.CurlLane(HttpClient(rate=0), 8, _transfer._Tee(SILENT, lambda n: None), cancel)
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    finished = lane.run([(i, r, tmp_path / r.name) for i, r in enumerate(remotes)])
    assert time.monotonic() - started < 0.5 + 0.5 and 0 < len(finished) < 100
    assert len(emu.log()) <= len(finished) + _curl.BACKLOG + 8  # the network waited for the disk
    assert {p.name for p in tmp_path.glob("*.png")} == {remotes[i].name for i in finished}


def test_a_part_that_is_a_link_is_never_written_through(emulator, tmp_path, lane_log):
    outside = tmp_path / "precious.txt"
    outside.write_bytes(b"not ours")
    emu, remotes = serve(emulator, {"a.png": payload(100, 1)})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png.part").symlink_to(outside)
    _transfer.fetch_all(remotes, tmp_path / "out", client=HttpClient(rate=0))
    final = tmp_path / "out" / "a.png"
    assert outside.read_bytes() == b"not ours" and not final.is_symlink() and final.read_bytes() == payload(100, 1)
    assert len(lane_log()) == 1


def test_a_failure_inside_the_lane_costs_no_file(emulator, tmp_path, monkeypatch, caplog):
    files = {f"{i}.png": payload(100, i) for i in range(10)}
    emu, remotes = serve(emulator, files)
    settle = _curl.CurlLane._settle
    calls = []

    def failing(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("a bug in the lane")
        return settle(self, *args)
    monkeypatch.setattr(_curl.CurlLane, "_settle", failing)
    caplog.set_level(logging.WARNING)
    _transfer.fetch_all(remotes, tmp_path / "out", client=HttpClient(rate=0), jobs=1)
    assert all((tmp_path / "out" / name).read_bytes() == data for name, data in files.items())
    assert "libcurl's lane stopped (RuntimeError('a bug in the lane')); the requests transport takes" in caplog.text
