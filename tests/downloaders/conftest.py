"""Fixtures for the download layer: emulators on loopback, cards pointing at them, fast retry settings."""

from __future__ import annotations

import http.client
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from dl_helpers import CARD, file_entry

from omnimedseg.registry import Card


@pytest.fixture
def make_card(tmp_path):
    """Write ``registry/<id>.toml`` pinning ``files`` ({name: bytes}) and load it."""
    def make(platform: str, record: str, files: dict[str, bytes] | None, version: str = "", dataset_id: str = "emu",
             algs=("md5",), urls: dict[str, str] | None = None, extract: tuple[str, ...] = ()) -> Card:
        folder = tmp_path / "registry"
        folder.mkdir(exist_ok=True)
        entries = "".join(file_entry(n, d, algs, n in extract, (urls or {}).get(n)) for n, d in (files or {}).items())
        entries = entries or "files = []\n"
        path = folder / f"{dataset_id}.toml"
        path.write_text(CARD.format(id=dataset_id, platform=platform, record=record, version=version, files=entries))
        return Card.from_toml(path)
    return make


@pytest.fixture(autouse=True)
def fast_network(monkeypatch, tmp_path):
    """No client-side pacing, short waits and timeouts: faults are survived in milliseconds."""
    monkeypatch.setenv("OMNIMEDSEG_MAX_RPS", "0")
    monkeypatch.setenv("OMNIMEDSEG_MAX_RETRY_WAIT", "0.05")
    monkeypatch.setenv("OMNIMEDSEG_TIMEOUT", "2")
    monkeypatch.setenv("OMNIMEDSEG_RETRIES", "5")
    for key in list(os.environ):
        if key.startswith("OMNIMEDSEG_") and key.endswith("_URL"):
            monkeypatch.delenv(key)
    for key in ("ZENODO_TOKEN", "ZENODO_ACCESS_TOKEN", "GITHUB_TOKEN", "DATAVERSE_API_TOKEN", "FIGSHARE_TOKEN",
                "OSF_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN",
                "OMNIMEDSEG_OFFLINE", "OMNIMEDSEG_LIBCURL", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle-config"))  # never the user's kaggle.json


@pytest.fixture(params=["libcurl", "engine"])
def transport(request, monkeypatch):
    """Small files through libcurl's lane first (``downloaders/_curl.py``), or only through the engine's own
    transfer (``OMNIMEDSEG_LIBCURL=0``, as without pycurl): every rule must hold on both."""
    if request.param == "libcurl":
        pytest.importorskip("pycurl", reason="pip install -e '.[test]'")
    else:
        monkeypatch.setenv("OMNIMEDSEG_LIBCURL", "0")
    return request.param


@pytest.fixture
def emulator(monkeypatch):
    """Start an emulator class, point omnimedseg at it, stop it at test end."""
    started = []

    def start(cls, tls=None, **kw):
        emu = cls(**kw).start(tls=tls)
        started.append(emu)
        for k, v in emu.env.items():
            monkeypatch.setenv(k, v)
        return emu
    yield start
    for emu in started:
        emu.stop()


@pytest.fixture(scope="session")
def test_ca():
    """A certificate authority made for the tests (trustme): emulators serve HTTPS with its certificate
    for 127.0.0.1, and a client trusts it only when told to (``REQUESTS_CA_BUNDLE``)."""
    trustme = pytest.importorskip("trustme", reason="pip install -e '.[test]'")
    return trustme.CA()


@pytest.fixture
def tls(test_ca):
    """A server context for ``emulator(cls, tls=tls)``."""
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    test_ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def ca_bundle(test_ca, tmp_path):
    """The test CA as a PEM file, as an institution hands out its CA bundle."""
    path = tmp_path / "institution-ca.pem"
    test_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def trust(monkeypatch):
    """``trust(bundle)``: the client verifies servers with ``bundle`` (``REQUESTS_CA_BUNDLE``), or with its
    default CAs when ``bundle`` is None; whatever the machine's environment said is ignored."""
    def set_bundle(bundle=None) -> None:
        for key in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            monkeypatch.delenv(key, raising=False)
        if bundle is not None:
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    return set_bundle


class _ForwardProxy(BaseHTTPRequestHandler):
    """A plain-HTTP forward proxy: records the absolute URL asked for and relays the answer."""

    seen: list[str]

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.seen.append(self.path)
        target = urlsplit(self.path)
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=5)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        upstream.request("GET", target.path or "/", headers=headers)
        reply = upstream.getresponse()
        body = reply.read()
        self.send_response(reply.status)
        for key, value in reply.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        upstream.close()

    def do_CONNECT(self):  # noqa: N802 - HTTPS through the proxy: a byte tunnel, TLS stays end to end
        self.seen.append(f"CONNECT {self.path}")
        host, _, port = self.path.rpartition(":")
        upstream = socket.create_connection((host, int(port)), timeout=5)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True

        def pump(source, sink):
            try:
                while chunk := source.recv(65536):
                    sink.sendall(chunk)
            except OSError:
                pass
            finally:
                for sock in (source, sink):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        back = threading.Thread(target=pump, args=(upstream, self.connection), daemon=True)
        back.start()
        pump(self.connection, upstream)
        back.join(timeout=5)
        upstream.close()

    def log_message(self, *args):
        pass


@pytest.fixture
def proxy():
    """(URL, the requests it relayed) of a forward proxy on loopback, as an institution runs."""
    handler = type("Handler", (_ForwardProxy,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.seen
    server.shutdown()
    server.server_close()
