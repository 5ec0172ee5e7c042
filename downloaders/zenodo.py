"""Zenodo: record id or (concept) DOI -> the files of one exact record version.

Parses every file-entry dialect Zenodo has served (``key``/``size``/``md5:`` since
2023-10-25, ``filename``/``filesize``/bare md5 from October 2023, the legacy bucket
links, and the native ``files.entries`` dict), follows concept ids to the newest
version and records the concrete record id as the version.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from omnimedseg.downloaders._platform import Listing, PlatformDownloader
from omnimedseg.downloaders._transfer import safe_name
from omnimedseg.errors import DatasetNotFoundError, DownloadError
from omnimedseg.registry import Card, RemoteFile


def record_id(text: str) -> str:
    """``1327317``, ``10.5281/zenodo.1327317``, ``https://zenodo.org/records/1327317`` -> ``1327317``."""
    match = re.search(r"(?:zenodo\.|records?/)(\d+)\s*$", text.strip()) or re.fullmatch(r"\s*(\d+)\s*", text)
    if not match:
        raise DatasetNotFoundError(f"{text!r} is not a Zenodo record id or DOI (expected e.g. 10.5281/zenodo.1327317)")
    return match.group(1)


def parse_files(record: dict, base: str) -> list[RemoteFile]:
    """RemoteFiles from any Zenodo record JSON shape (list ``files`` or native ``files.entries``)."""
    recid = str(record.get("id") or record.get("recid"))
    files = record.get("files")
    if files is None:
        raise DownloadError(f"Zenodo record {recid} lists no files: it is restricted or embargoed; "
                            f"set ZENODO_TOKEN if you were granted access (see docs/download.md)")
    if isinstance(files, dict):
        files = list((files.get("entries") or {}).values())
    out = []
    for entry in files:
        name = entry.get("key") or entry.get("filename")
        size = entry.get("size", entry.get("filesize"))
        checksum = str(entry.get("checksum") or "")
        alg, _, digest = checksum.rpartition(":")
        links = entry.get("links") or {}
        if "filename" in entry and "key" not in entry:
            # Oct-2023 entries: links.self pointed at a file UUID and answered 404
            url = f"{base}/records/{recid}/files/{quote(name, safe='/')}?download=1"
        else:
            url = links.get("content") or links.get("self")
            if url and "/api/records/" in url and not url.rstrip("/").endswith("/content"):
                url = url.rstrip("/") + "/content"
        out.append(RemoteFile(name=safe_name(name, f"Zenodo record {recid}"), size=size,
                              hashes={(alg or "md5").lower(): digest.lower()} if digest else {}, url=url))
    return out


class ZenodoDownloader(PlatformDownloader):
    platform = "zenodo"
    default_url = "https://zenodo.org"
    rate = 1.5  # guests get 60-133 requests/minute
    per_host = 2
    token_env = ("ZENODO_TOKEN", "ZENODO_ACCESS_TOKEN")

    def record(self, ident: str) -> dict:
        """The record JSON; a concept id is followed to its newest version."""
        url = f"{self.base}/api/records/{ident}"
        response = self.client.request("GET", url, headers={"Accept": "application/json"}, ok=(200, 404, 410),
                                       what=f"Zenodo record {ident}")
        if response.status_code != 200:
            response.close()
            response = self.client.request("GET", f"{url}/versions/latest", headers={"Accept": "application/json"},
                                           what=f"Zenodo record {ident}")
        return response.json()

    def listing(self, card: Card) -> Listing:
        pinned = card.source.version if re.fullmatch(r"\d+", card.source.version or "") else None
        ident = pinned or record_id(card.source.record or card.source.doi or "")
        data = self.record(ident)
        concrete = str(data.get("id") or data.get("recid"))
        if pinned and concrete != pinned:
            raise DownloadError(f"{card.id}: Zenodo answered record {concrete} for pinned version {pinned}")
        files = parse_files(data, self.base)
        meta = data.get("metadata") or {}
        concept = data.get("conceptrecid") or (data.get("parent") or {}).get("id")
        return Listing(record=str(concept or card.source.record), version=concrete, files=files,
                       extra={"doi": data.get("doi") or f"10.5281/zenodo.{concrete}",
                              "record_version": meta.get("version"), "concept": concept})
