"""The local-archive source: ``omnimedseg download <id> --from <dir or file>``.

For users who already hold the files (a lab share, a manual download behind a
login, an offline machine). Files are matched to the card by name, copied (never
moved or modified) and verified against the card's sizes and hashes.
"""

from __future__ import annotations

from pathlib import Path

from omnimedseg.downloaders._base import Downloader, Manifest
from omnimedseg.errors import DatasetNotFoundError
from omnimedseg.registry import Card, RemoteFile


class LocalSource(Downloader):
    platform = "local"

    def __init__(self, paths: list[Path]):
        self.paths = [Path(p).expanduser().resolve() for p in paths]
        for p in self.paths:
            if not p.exists():
                raise DatasetNotFoundError(f"--from {p}: no such file or folder")

    def find(self, name: str) -> Path | None:
        """The local file for a card file ``name``: a given file of that name, ``<folder>/<name>``, or the
        first file of that base name anywhere under a given folder (one matching rule for download and lock)."""
        for p in self.paths:
            if p.is_file() and p.name == name:
                return p
            if p.is_dir():
                direct = p / name
                if direct.is_file():
                    return direct
                matches = sorted(m for m in p.rglob(Path(name).name) if m.is_file())
                if matches:
                    return matches[0]
        return None

    def resolve(self, card: Card) -> Manifest:
        files, missing = [], []
        for want in card.source.files:
            found = self.find(want.name)
            if found is None:
                missing.append(want.name)
                continue
            files.append(RemoteFile(name=want.name, size=want.size, hashes=dict(want.hashes),
                                    url=found.as_uri(), extract=want.extract))
        if missing:
            searched = ", ".join(str(p) for p in self.paths)
            raise DatasetNotFoundError(
                f"{card.id}: {len(missing)} of {len(card.source.files)} files not found in {searched}: "
                f"{', '.join(missing)}; expected the files listed in {card.path} (omnimedseg info {card.id})")
        return Manifest(card.id, "local", card.source.record, card.source.version, tuple(files),
                        extra={"from": [str(p) for p in self.paths], "card_platform": card.source.platform})
