"""Institutional proxies: the client honours HTTP(S)_PROXY and NO_PROXY from the environment
(read once per origin for a client's life), through a real forward proxy on loopback (plain HTTP
relayed, HTTPS tunnelled with CONNECT to an emulator serving TLS)."""

from __future__ import annotations

import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from omnimedseg.downloaders._http import HttpClient
from omnimedseg.downloaders._transfer import fetch
from omnimedseg.downloaders.emulators.platforms import StaticEmulator
from omnimedseg.registry import RemoteFile


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
    handler = type("Handler", (_ForwardProxy,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.seen
    server.shutdown()
    server.server_close()


def test_downloads_go_through_the_environment_proxy_unless_no_proxy_names_the_host(proxy, emulator,
                                                                                   monkeypatch, tmp_path):
    proxy_url, seen = proxy
    emu = emulator(StaticEmulator)
    data = bytes(range(256)) * 300
    blob = emu.add_files({"scan.nii.gz": data})["scan.nii.gz"]
    remote = RemoteFile("scan.nii.gz", len(data), {"md5": blob.md5}, f"{emu.url}/scan.nii.gz")
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    client = HttpClient(rate=0)
    for round_ in range(2):  # the second request reuses the client's settings for this origin
        path = fetch(remote, tmp_path / f"via-proxy-{round_}", client=client)
        assert path.read_bytes() == data
    assert seen == [f"{emu.url}/scan.nii.gz"] * 2  # absolute-URI requests: the proxy relayed both
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    path = fetch(remote, tmp_path / "direct", client=HttpClient(rate=0))
    assert path.read_bytes() == data and len(seen) == 2  # a new client reads the environment again


def test_https_goes_through_the_proxy_tunnel_with_the_institution_ca(proxy, emulator, tls, ca_bundle, trust,
                                                                       monkeypatch, tmp_path):
    proxy_url, seen = proxy
    emu = emulator(StaticEmulator, tls=tls)
    data = bytes(range(256)) * 700
    blob = emu.add_files({"scan.nii.gz": data})["scan.nii.gz"]
    remote = RemoteFile("scan.nii.gz", len(data), {"md5": blob.md5}, f"{emu.url}/scan.nii.gz")
    trust(ca_bundle)
    monkeypatch.setenv("HTTPS_PROXY", proxy_url)
    assert fetch(remote, tmp_path / "tunnel", client=HttpClient(rate=0)).read_bytes() == data
    assert seen == [f"CONNECT {emu.url.removeprefix('https://')}"] and emu.log()  # tunnelled, answered over TLS
