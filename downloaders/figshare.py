"""Figshare: article id or DOI (``10.6084/m9.figshare.N[.vK]``) -> the files of one article version.

Pages through ``/files`` (the article body lists only the first ten), uses ``computed_md5``
(empty while Figshare still processes a file: size-only then), skips link-only entries,
and downloads from ``/v2/file/download/<id>`` on the API host: ``figshare.com/ndownloader``
answers scripts with an empty 202 WAF challenge.
"""

from __future__ import annotations

import re

from omnimedseg.downloaders._platform import Listing, PlatformDownloader
from omnimedseg.downloaders._transfer import safe_name
from omnimedseg.errors import DatasetNotFoundError
from omnimedseg.registry import Card, RemoteFile

PAGE = 1000


def article_version(text: str, version: str = "") -> tuple[str, int | None]:
    """(article id, version or None for the latest) from an id or any Figshare-style DOI."""
    match = re.search(r"(\d+)(?:\.v(\d+))?\s*$", text.strip())
    if not match:
        raise DatasetNotFoundError(f"{text!r} is not a Figshare article id or DOI (e.g. 10.6084/m9.figshare.123.v2)")
    pinned = match.group(2) or (version if version.isdigit() else None)
    return match.group(1), int(pinned) if pinned else None


class FigshareDownloader(PlatformDownloader):
    platform = "figshare"
    default_url = "https://api.figshare.com"
    rate = 1.0  # Figshare asks for at most one request per second
    token_env = ("FIGSHARE_TOKEN",)
    token_format = "token {}"

    def listing(self, card: Card) -> Listing:
        article, version = article_version(card.source.record, card.source.version or "")
        api = f"{self.base}/v2/articles/{article}"
        if version is None:
            version = int(self.client.get_json(api, what=f"Figshare article {article}")["version"])
        body = self.client.get_json(f"{api}/versions/{version}", what=f"Figshare article {article} v{version}")
        folders = body.get("folder_structure") or {}
        entries, page = [], 1
        while True:  # pagination of /files exists since late 2024; stop on a short page
            chunk = self.client.get_json(f"{api}/versions/{version}/files", params={"page": page, "page_size": PAGE},
                                         what=f"Figshare article {article} files") or []
            entries += chunk
            if len(chunk) < PAGE or page >= 100:
                break
            page += 1
        files = []
        for e in entries:
            if e.get("is_link_only"):
                continue
            name = e["name"]
            folder = folders.get(str(e["id"]))
            if folder:
                name = f"{folder}/{name}"
            md5 = (e.get("computed_md5") or "").lower()
            files.append(RemoteFile(name=safe_name(name, f"Figshare article {article}"), size=e.get("size"),
                                    hashes={"md5": md5} if md5 else {},
                                    url=f"{self.base}/v2/file/download/{e['id']}"))
        return Listing(record=article, version=str(version), files=files, extra={"doi": body.get("doi")})
