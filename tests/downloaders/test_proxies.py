"""Institutional proxies: the client honours HTTP(S)_PROXY and NO_PROXY from the environment
(read once per origin for a client's life), through a real forward proxy on loopback (plain HTTP
relayed, HTTPS tunnelled with CONNECT to an emulator serving TLS)."""

from __future__ import annotations

from omnimedseg.downloaders._http import HttpClient
from omnimedseg.downloaders._transfer import fetch
from omnimedseg.downloaders.emulators.platforms import StaticEmulator
from omnimedseg.registry import RemoteFile


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
