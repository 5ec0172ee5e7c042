"""Kaggle: a dataset (``owner/slug``) or a competition (``competition:<slug>``) -> its files.

Credentials, in kaggle's own order: ``KAGGLE_API_TOKEN`` (Bearer), ``KAGGLE_USERNAME`` +
``KAGGLE_KEY``, else ``$KAGGLE_CONFIG_DIR/kaggle.json`` or ``~/.kaggle/kaggle.json`` (HTTP
Basic); sent to Kaggle's own host only, never to the signed Google Cloud Storage URL the
download redirects to. The listing has no checksum: the engine verifies the storage's
``x-goog-hash`` md5 when the card pins nothing. A 403 on a competition almost always
means its rules were not accepted on the website, and the error says so. Uses the REST
paths modelled in kagglesdk (``/api/v1/datasets/list/...``); camelCase fields are inferred.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from urllib.parse import quote

from omnimedseg.downloaders._http import Credential, origin
from omnimedseg.downloaders._platform import Listing, PlatformDownloader
from omnimedseg.downloaders._transfer import safe_name
from omnimedseg.errors import DatasetNotFoundError, DownloadError
from omnimedseg.registry import Card, RemoteFile

WEB = "https://www.kaggle.com"
CREDENTIALS_HINT = ("set KAGGLE_USERNAME and KAGGLE_KEY, or save kaggle.json (kaggle.com > Settings > API > "
                    "Create New Token) as ~/.kaggle/kaggle.json")


def parse_ref(text: str) -> tuple[str, str]:
    """``("competition", slug)`` or ``("dataset", "owner/slug")`` from a ref or a kaggle.com URL."""
    text = re.sub(r"^https?://(www\.)?kaggle\.com/", "", text.strip()).strip("/")
    match = re.fullmatch(r"(?:competition:|competitions/|c/)([\w-]+)(?:/.*)?", text)
    if match:
        return "competition", match.group(1)
    match = re.fullmatch(r"(?:datasets/)?([\w-]+/[\w.-]+)(?:/.*)?", text)
    if match:
        return "dataset", match.group(1)
    raise DatasetNotFoundError(f"{text!r} is not a Kaggle dataset (owner/slug) or competition "
                               f"(competition:<slug>) reference")


def kaggle_auth() -> dict[str, str] | None:
    """The Authorization header from the environment or kaggle.json; None when there is none."""
    token = os.environ.get("KAGGLE_API_TOKEN", "").strip()
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, key = os.environ.get("KAGGLE_USERNAME", "").strip(), os.environ.get("KAGGLE_KEY", "").strip()
    if not (user and key):
        folder = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle").expanduser()
        try:
            data = json.loads((folder / "kaggle.json").read_text(encoding="utf-8"))
            user, key = str(data.get("username") or ""), str(data.get("key") or "")
        except (OSError, ValueError, AttributeError):
            return None
    if not (user and key):
        return None
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


class KaggleDownloader(PlatformDownloader):
    platform = "kaggle"
    default_url = WEB
    rate = 1.0

    def credentials(self) -> list[Credential]:
        auth = kaggle_auth()
        return [Credential(self.base, auth)] if auth else []

    def listing(self, card: Card) -> Listing:
        kind, ref = parse_ref(card.source.record)
        version = card.source.version if (card.source.version or "").isdigit() else None
        if kind == "competition":
            list_url, key = f"{self.base}/api/v1/competitions/data/list/{ref}", "files"
            download = f"{self.base}/api/v1/competitions/data/download/{ref}/" + "{}"
            params: dict = {}
        else:
            list_url, key = f"{self.base}/api/v1/datasets/list/{ref}", "datasetFiles"
            download = f"{self.base}/api/v1/datasets/download/{ref}/" + "{}"
            params = {"datasetVersionNumber": version} if version else {}
        files, token = [], ""
        for _ in range(1000):
            page = {**params, **({"pageToken": token} if token else {})}
            response = self.client.request("GET", list_url, params=page,
                                           headers={"Accept": "application/json"}, ok=(200, 401, 403, 404),
                                           what=f"Kaggle {kind} {ref}")
            self.raise_for_access(response, kind, ref)
            body = response.json() or {}
            for f in body.get(key) or body.get("files") or []:
                name = safe_name(f["name"], f"Kaggle {kind} {ref}")
                url = download.format(quote(f["name"], safe="/"))
                files.append(RemoteFile(name, f.get("totalBytes"), {},
                                        url + (f"?datasetVersionNumber={version}" if version else "")))
            token = body.get("nextPageToken") or ""
            if not token:
                break
        return Listing(record=card.source.record, version=version or card.source.version or "latest", files=files,
                       extra={"kind": kind, "ref": ref})

    def raise_for_access(self, response, kind: str, ref: str) -> None:
        """One line that says what to do for 401/403/404 (rules, credentials, name); never the secret."""
        status = response.status_code
        if status == 200:
            return
        page = f"{WEB}/competitions/{ref}/rules" if kind == "competition" else f"{WEB}/datasets/{ref}"
        response.close()
        what = f"Kaggle {kind} {ref}: HTTP {status}"
        if status == 401 or (status == 403 and not self.client.credentials):
            found = "no credentials found" if not self.client.credentials else "the credentials were rejected"
            raise DownloadError(f"{what}, {found}; {CREDENTIALS_HINT}")
        if status == 403:
            if kind == "competition":
                raise DownloadError(f"{what}: the competition rules have not been accepted for this account; "
                                    f"accept them at {page} (logged in as the API user), then rerun")
            raise DownloadError(f"{what}: access denied; accept the dataset's terms at {page}, then rerun")
        raise DownloadError(f"{what}: not found; check source.record (expected owner/slug or competition:<slug>)")

    def refresh(self, remote: RemoteFile) -> str:
        """On a 403, ask Kaggle again: a new signed link, or the real reason (rules, credentials)."""
        kind, ref = ("competition", remote.url.split("/competitions/data/download/")[-1].split("/")[0]) \
            if "/competitions/data/download/" in (remote.url or "") else ("dataset", self._dataset_ref(remote))
        response = self.client.request("GET", remote.url, stream=True, ok=(200, 206, 401, 403, 404),
                                       what=remote.name)
        if origin(response.url) == origin(self.base):  # Kaggle itself refused; a storage 403 is just expiry
            self.raise_for_access(response, kind, ref)
        response.close()
        return remote.url

    @staticmethod
    def _dataset_ref(remote: RemoteFile) -> str:
        match = re.search(r"/datasets/download/([^/]+/[^/?]+)", remote.url or "")
        return match.group(1) if match else "?"
