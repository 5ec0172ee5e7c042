"""OSF: project guid, URL or DOI (``10.17605/osf.io/<guid>``) -> every file of its OSF Storage.

Follows JSON:API ``links.next`` pages, recurses into folders
(``relationships.files.links.related.href``) and child components (under ``<guid>/``),
verifies with ``extra.hashes`` (sha256, else md5; either can be missing) and downloads from
``links.download``, which redirects to WaterButler / signed storage. OSF truncates bodies
under HTTP 200, so the size check always runs. Guests get 100 requests/hour: 90 go at
once, then one per 36 s; ``OSF_TOKEN`` raises the quota to 10,000/day.
"""

from __future__ import annotations

import re

from omnimedseg.downloaders._http import Credential
from omnimedseg.downloaders._platform import Listing, PlatformDownloader
from omnimedseg.downloaders._transfer import safe_name
from omnimedseg.errors import DatasetNotFoundError, DownloadError
from omnimedseg.registry import Card, RemoteFile

MAX_PAGES = 1000


def guid(text: str) -> str:
    """``abc12``, ``https://osf.io/abc12/``, ``10.17605/OSF.IO/ABC12`` -> ``abc12``."""
    match = re.search(r"(?:osf\.io/)?([a-z0-9]{5,})/?\s*$", text.strip().lower())
    if not match:
        raise DatasetNotFoundError(f"{text!r} is not an OSF guid, URL or DOI (expected e.g. 10.17605/OSF.IO/ABC12)")
    return match.group(1)


class OsfDownloader(PlatformDownloader):
    platform = "osf"
    default_url = "https://api.osf.io"
    token_env = ("OSF_TOKEN",)

    def __init__(self, client=None):
        # 10,000/day with a token, 100/hour without: a burst for small projects, then the hourly pace
        self.rate, self.burst = (0.1, 100) if self.token() else (100 / 3600, 90)
        super().__init__(client)

    def credentials(self) -> list[Credential]:
        """The token also opens private files on osf.io's download host (OSF's own, never storage)."""
        creds = super().credentials()
        if creds and self.base == self.default_url:
            creds.append(Credential("https://osf.io", dict(creds[0].headers)))
        return creds

    def listing(self, card: Card) -> Listing:
        node = guid(card.source.record)
        files: list[RemoteFile] = []
        self._walk_node(node, "", files, seen=set())
        return Listing(record=node, version=card.source.version or "latest", files=files)

    def _walk_node(self, node: str, prefix: str, files: list, seen: set) -> None:
        if node in seen:
            return
        seen.add(node)
        self._walk(f"{self.base}/v2/nodes/{node}/files/osfstorage/", prefix, files, f"OSF project {node}")
        for child in self._pages(f"{self.base}/v2/nodes/{node}/children/", f"OSF project {node} components"):
            self._walk_node(child["id"], f"{prefix}{child['id']}/", files, seen)

    def _pages(self, url: str, what: str):
        for _ in range(MAX_PAGES):
            body = self.client.get_json(url, headers={"Accept": "application/vnd.api+json"}, what=what) or {}
            yield from body.get("data") or []
            url = (body.get("links") or {}).get("next")
            if not url:
                return
        raise DownloadError(f"{what}: more than {MAX_PAGES} pages; use the zip endpoint or a token")

    def _walk(self, url: str, prefix: str, files: list, what: str) -> None:
        for item in self._pages(url, what):
            attrs = item.get("attributes") or {}
            if attrs.get("kind") == "folder":
                related = (((item.get("relationships") or {}).get("files") or {}).get("links") or {}).get("related")
                href = related.get("href") if isinstance(related, dict) else related
                if href:
                    self._walk(href, prefix, files, what)
                continue
            path = attrs.get("materialized_path") or attrs.get("name") or ""
            name = safe_name(prefix + path.lstrip("/"), what)
            hashes = {k: str(v).lower() for k, v in ((attrs.get("extra") or {}).get("hashes") or {}).items()
                      if k in ("md5", "sha256") and v}
            files.append(RemoteFile(name, attrs.get("size"), hashes, (item.get("links") or {}).get("download")))
