"""S3 open data (e.g. the Medical Segmentation Decathlon tars), anonymous HTTPS.

``record`` is the bucket endpoint (``https://msd-for-monai.s3-us-west-2.amazonaws.com``).
The bucket listing (``list-type=2``) gives sizes and ETags where listing is allowed; an
ETag is used as an MD5 only when it is one (multipart ETags ``"<hex>-<n>"`` are not), so
hashes usually come from the card. ``$OMNIMEDSEG_S3_URL`` replaces the endpoint.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace

from omnimedseg.downloaders._platform import Listing, PlatformDownloader
from omnimedseg.downloaders._static import rebase
from omnimedseg.downloaders._transfer import safe_name
from omnimedseg.errors import DownloadError
from omnimedseg.registry import Card, RemoteFile


def md5_from_etag(etag: str) -> str | None:
    value = etag.strip().strip('"').lower()
    return value if re.fullmatch(r"[0-9a-f]{32}", value) else None  # "<hex>-<parts>" is multipart, not an MD5


class S3Downloader(PlatformDownloader):
    platform = "s3"
    default_url = ""
    rate = 20.0
    per_host = 4

    def listing(self, card: Card) -> Listing:
        endpoint = rebase(card.source.record, card.source.record, self.base).rstrip("/")
        listed = self._list(endpoint)
        files = []
        if card.source.files:
            for f in card.source.files:
                size, etag = listed.get(f.name, (f.size, ""))
                md5 = md5_from_etag(etag)
                files.append(replace(f, size=size, hashes={"md5": md5} if md5 else {},
                                     url=rebase(endpoint, f.url or f.name, "")))
        else:
            files = [RemoteFile(safe_name(k, endpoint), size, {"md5": md5_from_etag(e)} if md5_from_etag(e) else {},
                                rebase(endpoint, k, "")) for k, (size, e) in sorted(listed.items())]
        return Listing(record=card.source.record, version=card.source.version, files=files,
                       extra={"etags": {k: e for k, (_, e) in listed.items()}})

    def _list(self, endpoint: str, prefix: str = "", strict: bool = False) -> dict[str, tuple[int, str]]:
        """key -> (size, ETag) from ListObjectsV2 (keys under ``prefix``), or {} where anonymous
        listing is denied (``strict``: the error is raised instead)."""
        out, token = {}, None
        for _ in range(1000):
            params = {"list-type": "2", **({"prefix": prefix} if prefix else {}),
                      **({"continuation-token": token} if token else {})}
            try:
                response = self.client.request("GET", endpoint + "/", params=params, what=f"S3 listing {endpoint}")
            except DownloadError:
                if strict:
                    raise
                return out
            ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
            try:
                root = ET.fromstring(response.content)
            except ET.ParseError:
                raise DownloadError(f"S3 listing {endpoint}: expected ListBucketResult XML, found "
                                    f"{response.content[:40]!r}; retry later or check the endpoint") from None
            for c in root.findall("s3:Contents", ns):
                out[c.findtext("s3:Key", "", ns)] = (int(c.findtext("s3:Size", "0", ns)), c.findtext("s3:ETag", "", ns))
            if root.findtext("s3:IsTruncated", "false", ns) != "true":
                break
            token = root.findtext("s3:NextContinuationToken", None, ns)
        return out
