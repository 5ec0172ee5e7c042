"""The engine's streaming fast path: bodies read straight into reused buffers, digest and bytes intact."""

from __future__ import annotations

import hashlib

from dl_helpers import payload

from omnimedseg.downloaders import _transfer
from omnimedseg.downloaders._http import HttpClient
from omnimedseg.downloaders.emulators import ZenodoEmulator
from omnimedseg.downloaders.zenodo import ZenodoDownloader, parse_files
from omnimedseg.registry import RemoteFile


def test_identity_body_is_read_into_reused_buffers_and_verified(emulator, tmp_path, monkeypatch):
    data = payload((3 << 20) + 12345, 3)  # several buffers plus a short tail
    emu = emulator(ZenodoEmulator)
    emu.add_record("101", {"big.bin": data})
    remote = parse_files(ZenodoDownloader().record("101"), emu.url)[0]
    used = []
    direct = _transfer._body_reader

    def spy(response, decode):
        reader = direct(response, decode)
        used.append(reader.__name__)
        return reader
    monkeypatch.setattr(_transfer, "_body_reader", spy)
    monkeypatch.setattr(_transfer._Pipeline, "FLUSH_EVERY", 1 << 20)  # background flushes run too
    for pinned in (remote, RemoteFile(remote.name, remote.size, {"sha256": hashlib.sha256(data).hexdigest()},
                                      remote.url)):
        out = _transfer.fetch(pinned, tmp_path / pinned.strongest_hash[0], client=HttpClient(rate=0))
        assert out.read_bytes() == data
        assert not out.with_name(out.name + ".part").exists()
    assert used == ["direct", "direct"]  # urllib3's allocate-and-copy read is only for encoded bodies


def test_pipeline_digest_covers_exactly_the_bytes_put():
    data = payload(5 << 20, 9)
    hasher = hashlib.md5()
    pipe = _transfer._Pipeline(hasher, depth=2, size=1 << 20)
    pos = 0
    while pos < len(data):
        slot, view = pipe.take()
        n = min(len(view), len(data) - pos, 700_001)
        view[:n] = data[pos:pos + n]
        pipe.put(slot, n)
        pos += n
    pipe.close()
    pipe.close()  # idempotent
    assert hasher.hexdigest() == hashlib.md5(data).hexdigest()
