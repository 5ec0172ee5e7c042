"""Plain HTTP(S)/FTP servers: the card lists every file; ``record`` is the base URL.

A file's ``url`` may be absolute or relative to ``record``; by default the URL is
``record/<name>``. ``$OMNIMEDSEG_HTTP_URL`` replaces scheme and host of every URL (a
mirror or a local emulator). There is no API, so checksums always come from the card.
"""

from __future__ import annotations

from dataclasses import replace

from omnimedseg.downloaders._platform import Listing, PlatformDownloader
from omnimedseg.downloaders._static import rebase
from omnimedseg.registry import Card


class HttpDownloader(PlatformDownloader):
    platform = "http"
    default_url = ""

    def listing(self, card: Card) -> Listing:
        files = [replace(f, url=rebase(card.source.record, f.url or f.name, self.base)) for f in card.source.files]
        return Listing(record=card.source.record, version=card.source.version, files=files)
