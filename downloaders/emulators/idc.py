"""Imaging Data Commons on loopback: the S3 bucket emulator plus the series index it needs.

The bucket side is :class:`StaticEmulator` (ListObjectsV2 with ``prefix``, GET with Range,
ETags); what IDC adds is the index that ``idc-index-data`` ships, written here as a CSV with
the ``idc_index`` columns and pointed at by ``$OMNIMEDSEG_IDC_INDEX``, so tests never read
the real 74 MB parquet and never touch the internet.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
import uuid as uuidlib
from pathlib import Path

from omnimedseg.downloaders.emulators.platforms import StaticEmulator, folder_files

INDEX_NAME = "idc_index.csv"
INDEX_COLUMNS = ("collection_id", "analysis_result_id", "PatientID", "SeriesInstanceUID", "StudyInstanceUID",
                 "Modality", "SeriesDescription", "instanceCount", "license_short_name", "source_DOI",
                 "series_revised_idc_version", "aws_bucket", "crdc_series_uuid", "series_aws_url")


def write_index(path: Path, rows: list[dict]) -> None:
    """Write index rows as the CSV form of ``idc_index`` (the columns the downloader reads)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=INDEX_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in INDEX_COLUMNS})


def index_row(collection: str, patient_id: str, series_uid: str, modality: str, n_files: int,
              series_uuid: str | None = None, **columns) -> dict:
    """One ``idc_index`` row with the defaults of a TCIA-original series in ``idc-open-data``."""
    series_uuid = series_uuid or str(uuidlib.uuid5(uuidlib.NAMESPACE_OID, series_uid))
    row = {"collection_id": collection, "analysis_result_id": "", "PatientID": patient_id,
           "SeriesInstanceUID": series_uid, "StudyInstanceUID": "", "Modality": modality, "SeriesDescription": "",
           "instanceCount": n_files, "license_short_name": "CC BY 4.0", "source_DOI": "",
           "series_revised_idc_version": 25, "aws_bucket": "idc-open-data", "crdc_series_uuid": series_uuid,
           "series_aws_url": f"s3://idc-open-data/{series_uuid}/*"}
    row.update(columns)
    return row


class IdcEmulator(StaticEmulator):
    """The ``idc-open-data`` bucket and a series index (``env`` sets both variables)."""

    def __init__(self, **kw):
        super().__init__("idc", **kw)
        self._tmp = tempfile.mkdtemp(prefix="idc-emulator-")
        self.index_path = Path(self._tmp) / INDEX_NAME
        self.rows: list[dict] = []
        write_index(self.index_path, self.rows)

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "OMNIMEDSEG_IDC_INDEX": str(self.index_path)}

    def add_series(self, collection: str, patient_id: str, series_uid: str, modality: str, files: dict,
                   series_uuid: str | None = None, **columns) -> str:
        """Serve ``files`` ({instance file name: bytes or Path}) as one series; return its UUID."""
        row = index_row(collection, patient_id, series_uid, modality, len(files), series_uuid, **columns)
        self.add_files({f"{row['crdc_series_uuid']}/{name}": value for name, value in files.items()})
        self.rows.append(row)
        write_index(self.index_path, self.rows)
        return row["crdc_series_uuid"]

    def add_folder(self, folder: Path) -> dict:
        """Serve ``folder`` laid out as the bucket (``<uuid>/<instance>.dcm``) with its ``idc_index.csv``.

        The record stays the card's (a collection id and filter of the index), so only the
        platform is returned.
        """
        folder = Path(folder)
        index = folder / INDEX_NAME
        if not index.is_file():
            raise FileNotFoundError(f"{index}: expected the fake IDC index next to the series folders")
        with open(index, newline="", encoding="utf-8") as fh:
            self.rows.extend(csv.DictReader(fh))
        write_index(self.index_path, self.rows)
        self.add_files({k: v for k, v in folder_files(folder).items() if k != INDEX_NAME})
        return {"platform": "idc", "record": None, "version": None}

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self._tmp, ignore_errors=True)
