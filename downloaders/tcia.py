"""TCIA / NBIA v4: a collection (optionally filtered) -> one ZIP per series, checked file by file.

``record`` is a collection name with optional ``getSeries`` filters
(``LIDC-IDRI?Modality=CT&PatientID=LIDC-IDRI-0001``). NBIA v4 needs no authentication
(NIH policy change), builds each ZIP on the fly (no whole-file checksum, no Range) and
answers "no results" with an empty 200. So each series is fetched with
``getImageWithMD5Hash`` and checked before it gets its final name: every DICOM against
``md5hashes.csv``, the count against ``ImageCount`` and the bytes against ``FileSize``.
NLST lives on its own server, chosen automatically unless ``$OMNIMEDSEG_TCIA_URL`` is set.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import zipfile
from pathlib import Path
from urllib.parse import parse_qsl, quote

from omnimedseg.downloaders._platform import Listing, PlatformDownloader
from omnimedseg.downloaders._transfer import safe_name
from omnimedseg.errors import ChecksumMismatchError, DatasetNotFoundError
from omnimedseg.registry import Card, RemoteFile

API = "/nbia-api/services/v4"
NLST_URL = "https://nlst.cancerimagingarchive.net"
MD5_LIST = "md5hashes.csv"


def collection_filters(record: str) -> tuple[str, dict[str, str]]:
    """``"LIDC-IDRI?Modality=CT"`` -> ``("LIDC-IDRI", {"Modality": "CT"})``."""
    collection, _, query = record.strip().partition("?")
    if not collection:
        raise DatasetNotFoundError(f"{record!r} is not a TCIA collection (expected e.g. LIDC-IDRI?Modality=CT)")
    return collection, dict(parse_qsl(query))


def md5_list(archive: zipfile.ZipFile) -> dict[str, str]:
    """member name -> md5 from the ZIP's ``md5hashes.csv`` (a header row, then name,md5)."""
    listed = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == MD5_LIST]
    if not listed:
        return {}
    text = archive.read(listed[0]).decode("utf-8", "replace")
    prefix = listed[0][: -len(MD5_LIST)]
    out = {}
    for row in csv.reader(io.StringIO(text)):
        if len(row) >= 2 and re.fullmatch(r"[0-9a-fA-F]{32}", row[1].strip()):
            out[prefix + row[0].strip()] = row[1].strip().lower()
    return out


def check_series_zip(path: Path, name: str, images: int | None = None, size: int | None = None) -> None:
    """Raise :class:`ChecksumMismatchError` unless ``path`` is the complete series ZIP."""
    try:
        with zipfile.ZipFile(path) as archive:
            hashes = md5_list(archive)
            members = [i for i in archive.infolist() if not i.is_dir() and i.filename.rsplit("/", 1)[-1] != MD5_LIST]
            if not hashes:
                raise ChecksumMismatchError(f"{name}: expected {MD5_LIST} in the series ZIP, found none; "
                                            f"rerun to fetch it again")
            for info in members:
                want = hashes.get(info.filename)
                digest = hashlib.md5()
                with archive.open(info) as member:
                    for chunk in iter(lambda: member.read(1 << 20), b""):
                        digest.update(chunk)
                got = digest.hexdigest()
                if want != got:
                    raise ChecksumMismatchError(f"{name}: {info.filename}: expected md5 {want} "
                                                f"(from {MD5_LIST}), found {got}")
            missing = sorted(set(hashes) - {i.filename for i in members})
            if missing:
                raise ChecksumMismatchError(f"{name}: expected {len(hashes)} files listed in {MD5_LIST}, "
                                            f"{len(missing)} missing ({missing[0]})")
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ChecksumMismatchError(f"{name}: expected a series ZIP, found a broken one ({exc})") from None
    if images is not None and len(members) != images:
        raise ChecksumMismatchError(f"{name}: expected {images} images (ImageCount), found {len(members)}")
    total = sum(i.file_size for i in members)
    if size is not None and total != size:
        raise ChecksumMismatchError(f"{name}: expected {size} bytes of DICOM (FileSize), found {total}")


class TciaDownloader(PlatformDownloader):
    platform = "tcia"
    default_url = "https://nbia.cancerimagingarchive.net"
    rate = 2.0
    per_host = 3

    def listing(self, card: Card) -> Listing:
        collection, filters = collection_filters(card.source.record)
        if collection.upper().startswith("NLST") and not os.environ.get("OMNIMEDSEG_TCIA_URL"):
            self.base = NLST_URL  # the main server answers 400/500 for NLST (tcia_utils#21)
        api = f"{self.base}{API}"
        what = f"TCIA collection {collection}"
        series = self.client.get_json(f"{api}/getSeries", params={"Collection": collection, **filters}, what=what)
        if not series:  # NBIA's "no results" is an empty 200 body, not []
            raise DatasetNotFoundError(f"{what}{' ' + str(filters) if filters else ''}: NBIA returned no series; "
                                       f"check the name against {api}/getCollectionValues")
        files, info, released = [], {}, []
        for s in series:
            uid = s["SeriesInstanceUID"]
            name = safe_name(f"{s.get('PatientID') or 'unknown'}/{uid}.zip", what)
            files.append(RemoteFile(name, None, {}, f"{api}/getImageWithMD5Hash?SeriesInstanceUID={quote(uid)}"))
            info[name] = {"uid": uid, "images": s.get("ImageCount"), "bytes": s.get("FileSize")}
            released.append(str(s.get("DateReleased") or ""))
        pinned = card.source.version if card.source.version not in ("", "latest") else ""
        version = pinned or max(released) or "latest"
        return Listing(record=card.source.record, version=version, files=files, extra={"series": info})

    def check_part(self, part: Path, remote: RemoteFile) -> None:
        """Every DICOM against the ZIP's own MD5 list, plus ImageCount and FileSize from getSeries."""
        info = ((self.manifest.extra if self.manifest else {}).get("series") or {}).get(remote.name) or {}
        check_series_zip(part, remote.name, info.get("images"), info.get("bytes"))
