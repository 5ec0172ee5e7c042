"""Dataverse (any installation): dataset DOI -> the files of one dataset version.

The installation is ``$OMNIMEDSEG_DATAVERSE_URL`` (default Harvard) or the card's record
when it is a URL (``https://dataverse.nl/doi:10.34894/XXXX``). Reads ``checksum.type``
(MD5, SHA-1, SHA-256, SHA-512), keeps ``directoryLabel`` folders, refuses embargoed files
and deaccessioned datasets with a clear message, and fetches tabular files with
``format=original`` (their listed checksum describes the derived ``.tab``, so size/hash
come from the ``original*`` fields and the card pins).
"""

from __future__ import annotations

import re

from omnimedseg.downloaders._platform import Listing, PlatformDownloader
from omnimedseg.downloaders._transfer import safe_name
from omnimedseg.errors import DatasetNotFoundError, DownloadError
from omnimedseg.registry import Card, RemoteFile

ALGS = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512"}


class DataverseDownloader(PlatformDownloader):
    platform = "dataverse"
    default_url = "https://dataverse.harvard.edu"
    token_env = ("DATAVERSE_API_TOKEN", "DATAVERSE_KEY")
    token_header = "X-Dataverse-key"
    token_format = "{}"

    def listing(self, card: Card) -> Listing:
        record = card.source.record.strip()
        match = re.match(r"(https?://[^/]+)/(.*)$", record)
        if match and not self.base_overridden():
            self.base, record = match.group(1), match.group(2)
        doi = re.sub(r"^(doi:|https?://doi\.org/)", "", record)
        version = card.source.version or ":latest-published"
        url = f"{self.base}/api/datasets/:persistentId/versions/{version}"
        body = self.client.get_json(url, params={"persistentId": f"doi:{doi}"}, what=f"Dataverse dataset doi:{doi}")
        data = (body or {}).get("data") or {}
        if not data.get("files") and data.get("versionState") == "DEACCESSIONED":
            raise DatasetNotFoundError(f"Dataverse dataset doi:{doi} was deaccessioned; it cannot be downloaded")
        files = []
        for entry in data.get("files") or []:
            df = entry["dataFile"]
            name = df.get("originalFileName") if df.get("originalFileName") else (df.get("filename") or entry["label"])
            folder = entry.get("directoryLabel")
            rel = safe_name(f"{folder}/{name}" if folder else name, f"Dataverse dataset doi:{doi}")
            if df.get("embargo") or entry.get("restricted"):
                if self.token() is None:
                    raise DownloadError(f"Dataverse doi:{doi}: {rel} is embargoed or restricted; set "
                                        f"DATAVERSE_API_TOKEN if you have access, or remove it from the card")
            url = f"{self.base}/api/access/datafile/{df['id']}"
            if df.get("originalFileFormat"):
                files.append(RemoteFile(rel, df.get("originalFileSize"), {}, url + "?format=original"))
                continue
            checksum = df.get("checksum") or {}
            alg = ALGS.get(str(checksum.get("type", "")).upper())
            hashes = {alg: checksum["value"].lower()} if alg and checksum.get("value") else {}
            if not hashes and df.get("md5"):
                hashes = {"md5": df["md5"].lower()}
            files.append(RemoteFile(rel, df.get("filesize"), hashes, url))
        number = f"{data.get('versionNumber')}.{data.get('versionMinorNumber')}"
        return Listing(record=f"doi:{doi}", version=number if data.get("versionNumber") is not None else version,
                       files=files, extra={"installation": self.base})

    def base_overridden(self) -> bool:
        import os

        return bool(os.environ.get("OMNIMEDSEG_DATAVERSE_URL"))
