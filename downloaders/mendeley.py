"""Mendeley Data: dataset id or DOI (``10.17632/<id>.<version>``) -> the files of one dataset version.

Walks every folder (``/folders/<version>``, then ``/files?folder_id=``), verifies with the
``content_details.sha256_hash`` and refuses files whose ``status`` is not ``COMPLETED``.
``download_url`` is pre-signed and expires (``download_expiry_time``), so a 403 on it lists
the folder again for a fresh link instead of caching one. The folders route and its
``{id, name, parent_id}`` shape are inferred from third-party clients (see docs/download.md).
"""

from __future__ import annotations

import re

from omnimedseg.downloaders._platform import Listing, PlatformDownloader
from omnimedseg.downloaders._transfer import safe_name
from omnimedseg.errors import DatasetNotFoundError, DownloadError
from omnimedseg.registry import Card, RemoteFile

ACCEPT = "application/vnd.mendeley-public-dataset.1+json, application/json"


def dataset_version(text: str, version: str = "") -> tuple[str, str | None]:
    """(dataset id, version or None for the latest) from an id, a DOI or a data.mendeley.com URL."""
    match = re.search(r"(?:10\.17632/|datasets/)?([a-z0-9]{10})(?:[./](\d+))?/?\s*$", text.strip().lower())
    if not match:
        raise DatasetNotFoundError(f"{text!r} is not a Mendeley Data id or DOI (expected e.g. 10.17632/jxvmr8rchx.1)")
    pinned = match.group(2) or (version if version.isdigit() else None)
    return match.group(1), pinned


class MendeleyDownloader(PlatformDownloader):
    platform = "mendeley"
    default_url = "https://data.mendeley.com"
    rate = 1.0  # no documented limit: stay polite, and 429/Retry-After are honoured

    def listing(self, card: Card) -> Listing:
        dataset, version = dataset_version(card.source.record, card.source.version or "")
        return self._list(dataset, version)

    def _list(self, dataset: str, version: str | None) -> Listing:
        api = f"{self.base}/public-api/datasets/{dataset}"
        what = f"Mendeley Data dataset {dataset}"
        body = self.client.get_json(api, params={"version": version} if version else None,
                                    headers={"Accept": ACCEPT}, what=what) or {}
        version = str(body.get("version") or version or "")
        if not version:
            raise DownloadError(f"{what}: the API gave no version number; pin source.version in the card")
        folders = {"root": ""}
        found = self.client.get_json(f"{api}/folders/{version}", headers={"Accept": ACCEPT},
                                     what=f"{what} folders", ok=(200, 404))
        found = found if isinstance(found, list) else []  # a 404 (no folders route) means: root only
        by_id = {f["id"]: f for f in found if isinstance(f, dict) and f.get("id")}
        for fid in by_id:
            folders[fid] = self._folder_path(fid, by_id)
        files = []
        for fid, path in folders.items():
            entries = self.client.get_json(f"{api}/files", params={"folder_id": fid, "version": version},
                                           headers={"Accept": ACCEPT}, what=f"{what} files") or []
            for e in entries:
                files.append(self._remote(e, path, what))
        return Listing(record=dataset, version=version, files=files,
                       extra={"doi": (body.get("doi") or {}).get("id") or f"10.17632/{dataset}.{version}"})

    @staticmethod
    def _folder_path(fid: str, by_id: dict) -> str:
        parts, seen = [], set()
        while fid in by_id and fid not in seen:  # a cycle in parent_id must not hang us
            seen.add(fid)
            parts.append(by_id[fid].get("name") or fid)
            fid = by_id[fid].get("parent_id")
        return "/".join(reversed(parts))

    @staticmethod
    def _remote(e: dict, folder: str, what: str) -> RemoteFile:
        details = e.get("content_details") or {}
        name = safe_name(f"{folder}/{e['filename']}" if folder else e["filename"], what)
        if str(e.get("status", "COMPLETED")).upper() != "COMPLETED":
            raise DownloadError(f"{what}: {name} has status {e.get('status')!r}, expected COMPLETED (still "
                                f"processing on Mendeley's side); rerun later")
        sha = str(details.get("sha256_hash") or "").lower()
        return RemoteFile(name, e.get("size", details.get("size")), {"sha256": sha} if sha else {},
                          details.get("download_url"))

    def refresh(self, remote: RemoteFile) -> str:
        """List the dataset again: signed ``download_url``s expire and must never be reused."""
        if self.manifest is None:
            return remote.url
        fresh = self._list(self.manifest.record, self.manifest.version)
        return self.find(fresh, remote.name).url or remote.url
