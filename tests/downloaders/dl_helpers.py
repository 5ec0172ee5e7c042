"""Helpers shared by the download-layer tests."""

from __future__ import annotations

import hashlib
from pathlib import Path


def payload(n: int, seed: int = 0) -> bytes:
    """Deterministic incompressible-ish bytes."""
    out = bytearray()
    block = hashlib.sha256(f"{seed}".encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def downloads(card_id: str = "emu") -> Path:
    from omnimedseg import paths

    return paths.downloads_dir(card_id)
