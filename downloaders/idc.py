"""NCI Imaging Data Commons (IDC): TCIA collections as DICOM in public S3 buckets, no sign-in.

``record`` is an IDC ``collection_id`` with optional column filters on the IDC series index,
``hcc_tace_seg?analysis_result_id=`` (an empty value keeps series where the column is empty:
here the TCIA-original series, leaving out AI-generated analysis results); several values
are separated by commas (``lctsc?Modality=CT,RTSTRUCT``). ``version`` is the IDC data release
(``v25``), the release of the PyPI package ``idc-index-data`` whose ``idc_index.parquet``
lists every series: ``crdc_series_uuid``, ``aws_bucket``, ``license_short_name``,
``source_DOI``, ``series_revised_idc_version`` ... (https://github.com/ImagingDataCommons/idc-index-data).

Files are the objects under ``s3://<aws_bucket>/<crdc_series_uuid>/`` fetched over plain
HTTPS; the S3 ListObjectsV2 answer gives each object's size and ETag (an MD5 unless the
object was a multipart upload), so every instance is checked on arrival. A card pins one
entry per series, ``name = "<crdc_series_uuid>/"``, with the series' total bytes and
``sha256`` = :func:`series_digest` of its listing (every key, size and ETag), written by
``omnimedseg registry lock``; the downloaded tree is ``<crdc_series_uuid>/<instance>.dcm``,
the layout the bucket (and ``s5cmd sync``) gives. A new IDC release gives a changed series a
new ``crdc_series_uuid``, so a pinned series never changes bytes under the same name.

The index is read from the installed ``idc-index-data`` (``pip install 'omnimedseg[idc]'``),
or from ``$OMNIMEDSEG_IDC_INDEX`` (a ``.parquet``, ``.csv`` or ``.csv.zip`` with the same
columns, as older releases shipped); ``$OMNIMEDSEG_IDC_URL`` replaces the bucket host.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import zipfile
from pathlib import Path
from urllib.parse import parse_qsl

from omnimedseg.downloaders._base import Manifest
from omnimedseg.downloaders._platform import Listing
from omnimedseg.downloaders._static import rebase
from omnimedseg.downloaders._transfer import safe_name
from omnimedseg.downloaders.s3 import S3Downloader, md5_from_etag
from omnimedseg.errors import DatasetNotFoundError, RegistryError, UsageError
from omnimedseg.registry import Card, RemoteFile

ENV_INDEX = "OMNIMEDSEG_IDC_INDEX"
INSTALL_HINT = "pip install 'omnimedseg[idc]' (idc-index-data and pyarrow)"
# Columns the downloader reads; a fake or older index must have them.
COLUMNS = ("collection_id", "analysis_result_id", "PatientID", "SeriesInstanceUID", "StudyInstanceUID", "Modality",
           "SeriesDescription", "instanceCount", "license_short_name", "source_DOI", "series_revised_idc_version",
           "aws_bucket", "crdc_series_uuid")


def parse_record(record: str) -> tuple[str, dict[str, tuple[str, ...]]]:
    """``"hcc_tace_seg?analysis_result_id=&Modality=CT,SEG"`` -> collection, {column: allowed values}."""
    collection, _, query = record.strip().partition("?")
    if not re.fullmatch(r"[a-z0-9_]+", collection):
        raise RegistryError(f"{record!r} is not an IDC collection_id (expected e.g. lctsc or "
                            f"hcc_tace_seg?analysis_result_id=)")
    filters = {}
    for column, value in parse_qsl(query, keep_blank_values=True):
        if column not in COLUMNS:
            raise RegistryError(f"{record!r}: filter on {column!r}; expected one of {', '.join(COLUMNS)}")
        filters[column] = tuple(v.strip() for v in value.split(","))
    return collection, filters


def release_number(version: str) -> int:
    match = re.fullmatch(r"v?(\d+)", version.strip())
    if not match:
        raise RegistryError(f"IDC version {version!r}: expected the IDC data release, e.g. v25")
    return int(match.group(1))


def index_path() -> Path:
    """The series index: ``$OMNIMEDSEG_IDC_INDEX`` or the one in the installed idc-index-data."""
    override = os.environ.get(ENV_INDEX, "").strip()
    if override:
        path = Path(override)
        if not path.is_file():
            raise UsageError(f"{ENV_INDEX}={override}: not found; expected an IDC index (.parquet, .csv, .csv.zip)")
        return path
    try:
        import idc_index_data
    except ImportError:
        raise UsageError(f"the IDC downloader needs the IDC series index; run: {INSTALL_HINT}") from None
    path = idc_index_data.IDC_INDEX_PARQUET_FILEPATH or idc_index_data.IDC_INDEX_CSV_ARCHIVE_FILEPATH
    if path is None:
        raise UsageError(f"idc-index-data {idc_index_data.__version__} ships no idc_index; run: {INSTALL_HINT}")
    return Path(path)


def installed_release() -> int | None:
    """IDC data release of the installed index package (its major version), None for an override."""
    if os.environ.get(ENV_INDEX, "").strip():
        return None
    import idc_index_data

    return int(str(idc_index_data.__version__).split(".")[0])


def _filter_rows(rows, collection: str, filters: dict[str, tuple[str, ...]]) -> list[dict[str, str]]:
    out = []
    for row in rows:
        row = {k: "" if row.get(k) is None or str(row.get(k)) in ("nan", "None") else str(row.get(k))
               for k in COLUMNS}
        if row["collection_id"] == collection and all(row[c] in values for c, values in filters.items()):
            out.append(row)
    return out


def read_index(path: Path, collection: str, filters: dict[str, tuple[str, ...]]) -> list[dict[str, str]]:
    """The index rows (series) of ``collection`` that pass ``filters``, sorted by series UUID."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise UsageError(f"{path}: reading the IDC parquet index needs pyarrow; run: {INSTALL_HINT}") from None
        missing = [c for c in COLUMNS if c not in pq.read_schema(path).names]
        if missing:
            raise DatasetNotFoundError(f"{path}: IDC index lacks columns {missing}; expected idc-index-data >= 18")
        table = pq.read_table(path, columns=list(COLUMNS), filters=[("collection_id", "=", collection)])
        rows = table.to_pylist()
    elif name.endswith((".csv", ".csv.zip")):
        if name.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                text = archive.read(archive.namelist()[0]).decode("utf-8-sig")
        else:
            text = path.read_text(encoding="utf-8-sig")
        reader = csv.DictReader(io.StringIO(text))
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetNotFoundError(f"{path}: IDC index lacks columns {missing}; expected the idc_index columns")
        rows = list(reader)
    else:
        raise UsageError(f"{path}: expected an IDC index as .parquet, .csv or .csv.zip")
    return sorted(_filter_rows(rows, collection, filters), key=lambda r: r["crdc_series_uuid"])


def spdx_of(short_name: str) -> str:
    """IDC ``license_short_name`` ("CC BY 4.0", "CC BY-NC 3.0") -> SPDX id ("CC-BY-4.0")."""
    return re.sub(r"\s+", "-", short_name.strip())


def series_digest(objects: dict[str, tuple[int, str]]) -> str:
    """sha256 of a series listing: one ``key<TAB>size<TAB>etag`` line per object, sorted by key.

    It pins every instance of the series (ETags are the objects' MD5s), so a card needs one
    entry per series instead of one per DICOM file.
    """
    lines = "".join(f"{key}\t{size}\t{etag.strip().strip(chr(34)).lower()}\n"
                    for key, (size, etag) in sorted(objects.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


class IdcDownloader(S3Downloader):
    platform = "idc"
    default_url = ""  # every bucket has its own host, https://<aws_bucket>.s3.amazonaws.com
    # A series is hundreds of small DICOM objects (HCC-TACE-Seg: 51,968 in 677 series); S3 serves
    # thousands of GETs per second per prefix, so 20/s (the S3 default here) would take 45 min of waiting.
    rate = 100.0
    per_host = 16
    jobs = 16  # with S3's ~50 ms per GET, 4 at once would fetch ~80 instances/s: 11 min for HCC-TACE-Seg

    def series(self, card: Card) -> list[dict[str, str]]:
        """The card's series from the IDC index, checked against its release and licence."""
        collection, filters = parse_record(card.source.record)
        pinned = release_number(card.source.version)
        path = index_path()
        installed = installed_release()
        if installed is not None and installed != pinned:
            raise UsageError(f"{card.id}: card pins IDC release v{pinned}, the installed idc-index-data is release "
                             f"v{installed}; run: pip install 'idc-index-data=={pinned}.*'")
        path = index_path()
        rows = read_index(path, collection, filters)
        if not rows:
            raise DatasetNotFoundError(f"{card.id}: IDC index {path} has no series of {card.source.record!r}; "
                                       f"check source.record in {card.path}")
        newer = [r for r in rows if r["series_revised_idc_version"] and int(r["series_revised_idc_version"]) > pinned]
        if newer:
            raise DatasetNotFoundError(f"{card.id}: {len(newer)} series were revised after IDC v{pinned} (e.g. "
                                       f"{newer[0]['SeriesInstanceUID']} in v{newer[0]['series_revised_idc_version']}); "
                                       f"expected an index of release v{pinned}")
        licences = sorted({spdx_of(r["license_short_name"]) for r in rows})
        if licences != [card.license.spdx]:
            raise RegistryError(f"{card.id}: the IDC index gives licence(s) {licences} for {card.source.record}; "
                                f"{card.path} says {card.license.spdx}; fix [license] or filter the series")
        return rows

    def bucket(self, row: dict[str, str]) -> str:
        bucket = row["aws_bucket"] or "idc-open-data"
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
            raise DatasetNotFoundError(f"IDC index names bucket {bucket!r} for series {row['crdc_series_uuid']}; "
                                       f"expected an S3 bucket name")
        endpoint = f"https://{bucket}.s3.amazonaws.com"
        return rebase(endpoint, endpoint, self.base).rstrip("/")

    def listing(self, card: Card) -> Listing:
        """One entry per series (``<uuid>/``, total bytes, listing digest); instances in ``extra``."""
        files, objects, info = [], {}, {}
        for row in self.series(card):
            uuid = row["crdc_series_uuid"]
            if not re.fullmatch(r"[0-9a-f-]{36}", uuid):
                raise DatasetNotFoundError(f"IDC index: crdc_series_uuid {uuid!r} is not a UUID")
            endpoint = self.bucket(row)
            listed = self._list(endpoint, prefix=f"{uuid}/", strict=True)
            if not listed:
                raise DatasetNotFoundError(f"{card.id}: {endpoint} lists no objects under {uuid}/ (series "
                                           f"{row['SeriesInstanceUID']}); check the IDC release against the bucket")
            count = int(row["instanceCount"]) if row["instanceCount"] else None
            if count is not None and count != len(listed):
                raise DatasetNotFoundError(f"{card.id}: series {uuid}/ has {len(listed)} objects in {endpoint}; the "
                                           f"IDC index says {count} instances; expected the same")
            files.append(RemoteFile(f"{uuid}/", sum(size for size, _ in listed.values()),
                                    {"sha256": series_digest(listed)}))
            objects[uuid] = {"endpoint": endpoint, "objects": {k: list(v) for k, v in sorted(listed.items())}}
            info[uuid] = {k: row[k] for k in ("PatientID", "SeriesInstanceUID", "StudyInstanceUID", "Modality",
                                              "SeriesDescription", "license_short_name", "source_DOI")}
        return Listing(record=card.source.record, version=card.source.version, files=files,
                       extra={"series": info, "objects": objects})

    def resolve(self, card: Card) -> Manifest:
        """The card's series pins checked against the bucket, expanded to one file per instance."""
        found = self.listing(card)
        series = self.check_against_card(card, found.files) if card.source.files else tuple(found.files)
        files = []
        for pin in series:
            uuid = pin.name.rstrip("/")
            where = found.extra["objects"][uuid]
            for key, (size, etag) in where["objects"].items():
                md5 = md5_from_etag(etag)
                files.append(RemoteFile(safe_name(key, f"IDC series {uuid}"), size, {"md5": md5} if md5 else {},
                                        f"{where['endpoint']}/{key}"))
        manifest = Manifest(card.id, self.platform, found.record, found.version, tuple(files),
                            extra={"base_url": self.base, "series": {p.name.rstrip("/"): found.extra["series"]
                                                                     [p.name.rstrip("/")] for p in series},
                                   "series_pins": [{"name": p.name, "size": p.size, "hashes": p.hashes}
                                                   for p in series]})
        self.bind(manifest)
        return manifest


    def sample_headers(self, files, client) -> dict[str, bytes]:
        """``download --sample``: every instance is a case file; ``cases()`` lists series by the header
        of the first ``.dcm`` (by name) of each series folder (``formats.dicom_refs.series_folders``),
        so only those headers are read: leading bytes by HTTP Range until the header is complete."""
        from omnimedseg.downloaders._remote_zip import RangeSource

        first: dict[str, RemoteFile] = {}
        for remote in files:
            folder, _, name = remote.name.rpartition("/")
            if name.lower().endswith(".dcm") and not name.startswith(".") and \
                    (folder not in first or remote.name < first[folder].name):
                first[folder] = remote
        return {r.name: dicom_header(RangeSource(r.url, r.size, client, name=r.name)) for r in first.values()}


HEADER_START = 64 << 10  # a CT slice's header is a few KB; a SEG's per-frame groups can be hundreds


def dicom_header(source) -> bytes:
    """The leading bytes of a remote DICOM file up to its pixel data (the whole file if it has none).

    Hand-written because no DICOM library reads a header from a byte range: grow the prefix until
    pydicom parses it without running out of bytes AND the (7FE0,0010) Pixel Data tag is in it
    (a prefix cut between two elements would otherwise parse as a shorter, wrong header).
    """
    import pydicom

    size, length = source.size, HEADER_START
    while True:
        data = source.read(0, min(length, size))
        if len(data) >= size:
            return data
        try:
            pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - pydicom raises several types for a cut element
            pass
        else:
            if b"\xe0\x7f\x10\x00" in data[132:]:  # Pixel Data, little-endian (transfer syntaxes IDC serves)
                return data
        length *= 4


def pin_series_folder(folder: Path) -> RemoteFile:
    """The card entry a local ``<uuid>/`` folder would get from ``registry lock`` (ETag = MD5)."""
    objects = {f"{folder.name}/{p.name}": (p.stat().st_size, hashlib.md5(p.read_bytes()).hexdigest())
               for p in sorted(folder.iterdir()) if p.is_file()}
    return RemoteFile(f"{folder.name}/", sum(s for s, _ in objects.values()), {"sha256": series_digest(objects)})
