"""Helpers shared by the download-layer tests."""

from __future__ import annotations

import hashlib
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def payload(n: int, seed: int = 0) -> bytes:
    """Deterministic incompressible-ish bytes."""
    out = bytearray()
    block = hashlib.sha256(f"{seed}".encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def write_card(folder: Path, files: dict[str, bytes | None], platform: str = "zenodo", record: str = "101",
               version: str = "101", dataset_id: str = "emu", extract=(), algs=("md5",)) -> Path:
    """``folder/<id>.toml`` pinning ``files`` (see :func:`file_entry`); returns ``folder`` (a --registry)."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = "".join(file_entry(n, d, algs, n in extract) for n, d in files.items()) or "files = []\n"
    (folder / f"{dataset_id}.toml").write_text(CARD.format(id=dataset_id, platform=platform, record=record,
                                                           version=version, files=entries))
    return folder


def downloads(card_id: str = "emu") -> Path:
    from omnimedseg import paths

    return paths.downloads_dir(card_id)


CARD = """schema = 1
id = "{id}"
title = "Emulated {platform} dataset"
description = "test"
homepage = "http://127.0.0.1/"
modality = "CT"
dimensionality = 3

[classes]
1 = "organ"

[source]
platform = "{platform}"
record = "{record}"
version = "{version}"
{files}
[license]
spdx = "CC-BY-4.0"
url = "https://creativecommons.org/licenses/by/4.0/"
redistribution = true
status = "verified-open"
source = "https://creativecommons.org/licenses/by/4.0/"

[citation]
doi = "10.0/test"
bibtex = "@misc{{t, title={{t}}}}"

[converter]
version = "1.0.0"
"""


def file_entry(name: str, data: bytes | None, algs=("md5",), extract: bool = False, url: str | None = None) -> str:
    """One ``[[source.files]]`` table pinning ``data`` (``None``: no size, no hash, as an unpinned card)."""
    text = f'\n[[source.files]]\nname = "{name}"\n'
    if data is not None:
        hashes = ", ".join(f'{a} = "{hashlib.new(a, data).hexdigest()}"' for a in algs)
        text += f'size = {len(data)}\nhashes = {{ {hashes} }}\n'
    if extract:
        text += "extract = true\n"
    if url:
        text += f'url = "{url}"\n'
    return text


@contextmanager
def sticky_server(cookie: str = "lb=node7"):
    """(base URL, the Cookie header of every request) of a server pinning clients as load balancers do:
    a path under ``/set`` sets ``cookie``; every answer's body is ``ok``."""
    seen: list[str | None] = []

    class Sticky(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 - http.server's naming
            seen.append(self.headers.get("Cookie"))
            self.send_response(200)
            if self.path.startswith("/set"):
                self.send_header("Set-Cookie", f"{cookie}; Path=/")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sticky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
