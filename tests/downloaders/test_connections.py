"""Connections that fail, and HTTPS. The emulators serve TLS with a certificate from a CA made for the
tests (trustme); the client trusts it only through ``REQUESTS_CA_BUNDLE``, as users behind an institutional
HTTPS proxy trust their network's CA. A refused certificate is one line of advice at once, never retries
that end in "check the network"; other network failures are named in the line after the last retry."""

from __future__ import annotations

import pytest
from dl_helpers import downloads, payload

from omnimedseg.downloaders import download_dataset
from omnimedseg.downloaders._http import HttpClient
from omnimedseg.downloaders.emulators import ZenodoEmulator
from omnimedseg.errors import DownloadError

FILES = {"scan.nii.gz": payload(300_000, 3), "README.txt": b"read me\n"}  # one with a part record, one without


def test_a_dataset_downloads_over_https_through_its_storage_redirect(emulator, tls, ca_bundle, trust,
                                                                    make_card, monkeypatch):
    emu = emulator(ZenodoEmulator, tls=tls, redirect_to_storage=True)
    emu.add_record("101", FILES)
    trust(ca_bundle)
    monkeypatch.setenv("ZENODO_TOKEN", "zen-s3cr3t")
    download_dataset(make_card("zenodo", "101", FILES, version="101"))
    for name, data in FILES.items():
        assert (downloads() / name).read_bytes() == data
    assert emu.url.startswith("https://") and emu.storage_url.startswith("https://")
    assert emu.log("storage") and all("Authorization" not in r.headers for r in emu.log("storage"))


@pytest.mark.parametrize("case", ["untrusted", "wrong_name"])
def test_a_refused_certificate_is_one_line_of_advice_without_retries(emulator, test_ca, ca_bundle, trust,
                                                                     make_card, monkeypatch, case):
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # untrusted: the client is not given the CA (an institutional proxy's certificate, say); wrong_name: the
    # CA is trusted, but the certificate names another host
    test_ca.issue_cert("127.0.0.1" if case == "untrusted" else "files.example.org").configure_cert(context)
    emu = emulator(ZenodoEmulator, tls=context)
    emu.add_record("101", FILES)
    trust(None if case == "untrusted" else ca_bundle)
    waits = []
    monkeypatch.setattr(HttpClient, "backoff", lambda self, attempt, response=None: waits.append(attempt) or 0.0)
    with pytest.raises(DownloadError) as caught:
        download_dataset(make_card("zenodo", "101", FILES, version="101"))
    message = str(caught.value)
    port = emu.url.rpartition(":")[2]
    reason = "unable to get local issuer certificate" if case == "untrusted" else "mismatch"
    assert f"the TLS certificate of 127.0.0.1:{port} was refused (" in message and reason in message
    assert "set REQUESTS_CA_BUNDLE to its CA bundle" in message and "\n" not in message
    assert waits == [] and not emu.log()  # refused at once: no retry, no request ever reached the server


def test_a_redirect_from_https_to_plain_http_is_refused_before_it_is_followed(emulator, tls, ca_bundle, trust,
                                                                              make_card):
    emu = emulator(ZenodoEmulator, tls=tls, redirect_to_storage=True)
    emu.add_record("101", FILES)
    emu.storage_url = "http://127.0.0.1:9"  # the storage redirect now points at plain http (nothing listens)
    trust(ca_bundle)
    with pytest.raises(DownloadError, match=r"refusing redirect from https to plain http \(http://127\.0\.0\.1:9/"):
        download_dataset(make_card("zenodo", "101", FILES, version="101"))
    assert emu.log("api") and not emu.log("storage")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_network_failures_are_named_after_the_last_retry(monkeypatch):
    """The one line after the retries says what failed, not only requests' exception class."""
    import socket

    port = _free_port()  # nothing listens there any more
    with pytest.raises(DownloadError, match=rf"x.bin: 127.0.0.1:{port} refused the connection after 2 attempts"):
        HttpClient(rate=0, retries=1).request("GET", f"http://127.0.0.1:{port}/x.bin", what="x.bin")
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel's backlog) but never answers
    monkeypatch.setenv("OMNIMEDSEG_TIMEOUT", "0.2")
    try:
        with pytest.raises(DownloadError, match=r"127.0.0.1:\d+ did not answer in time \(\$OMNIMEDSEG_TIMEOUT"):
            HttpClient(rate=0, retries=0).request("GET", f"http://127.0.0.1:{silent.getsockname()[1]}/x.bin")
    finally:
        silent.close()

    def no_dns(*args, **kwargs):  # what an offline machine's resolver answers (no query leaves this test)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(DownloadError, match=r"zenodo.org could not be resolved \(no network, or no DNS\)"):
        HttpClient(rate=0, retries=0).request("GET", "https://zenodo.org/api/records/1")
