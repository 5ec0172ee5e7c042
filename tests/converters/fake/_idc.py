"""Small real DICOM in the layout IDC serves: ``<crdc_series_uuid>/<instance uuid>.dcm`` + the index."""

from __future__ import annotations

import uuid as uuidlib
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from omnimedseg.downloaders.emulators.idc import INDEX_NAME, index_row, write_index
from tests.formats.dicom_slices import ct_slice

SHAPE = (16, 16)
SPACING = (0.8, 0.8)


def series_uuid(series_uid: str) -> str:
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_OID, series_uid))


def instance_name(sop_uid: str) -> str:
    return f"{uuidlib.uuid5(uuidlib.NAMESPACE_URL, sop_uid)}.dcm"


def write_ct(root: Path, patient_id: str, study_uid: str, frame_uid: str, z_positions: list[float],
             acquisitions: list[int], description: str, number: int, base_value: int = 0) -> tuple[str, list[list[Path]]]:
    """A CT series whose acquisitions repeat the same slice positions; pixel value = base + 100*acq + k.

    Returns the Series Instance UID and, per acquisition, its files in slice order (ascending z).
    """
    series_uid = generate_uid()
    folder = root / series_uuid(series_uid)
    folder.mkdir(parents=True)
    out = []
    for acq in acquisitions:
        files = []
        for k, z in enumerate(z_positions):
            ds = ct_slice(study_uid, series_uid, frame_uid, number=number, description=description,
                          patient_id=patient_id, patient_name=patient_id, study_date="19991130")
            sop = ds.SOPInstanceUID
            ds.AcquisitionNumber = acq
            ds.InstanceNumber = (acq - 1) * len(z_positions) + k + 1
            ds.ImagePositionPatient = [-6.0, -6.0, float(z)]
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
            ds.PixelSpacing = list(SPACING)
            ds.SliceThickness = 2.5
            ds.Rows, ds.Columns = SHAPE
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
            ds.PixelData = np.full(SHAPE, base_value + 100 * acq + k, dtype=np.int16).tobytes()
            path = folder / instance_name(sop)
            ds.save_as(path, enforce_file_format=True)
            files.append(path)
        out.append(files)
    return series_uid, out


def write_fake_index(root: Path, rows: list[dict]) -> None:
    write_index(root / INDEX_NAME, rows)


def row_for(folder: Path, collection: str, patient_id: str, series_uid: str, modality: str, **columns) -> dict:
    return index_row(collection, patient_id, series_uid, modality, len(list(folder.iterdir())),
                     series_uuid(series_uid), **columns)


def expected_volume(planes: np.ndarray) -> np.ndarray:
    """(k ascending z, row, col) planes -> the converter's (i, j, k) layout (rows reversed)."""
    return planes[:, ::-1, :].transpose(2, 1, 0)


def download_and_convert(dataset_id: str, make_remote_files, tmp_path: Path):
    """Fake IDC release -> bucket emulator -> real IDC downloader -> convert -> validate.

    The card's real series pins are replaced by the fake release's series (the index rows its
    record filter selects), pinned from the generated folders as ``registry lock`` would.
    Returns (what the generator reported, raw folder, output folder).
    """
    from dataclasses import replace

    from omnimedseg.converters._run import convert_dataset
    from omnimedseg.converters._validate import validate_converted
    from omnimedseg.downloaders import download_dataset
    from omnimedseg.downloaders.idc import parse_record, read_index
    from omnimedseg.registry import RemoteFile, load_registry
    from omnimedseg.testing import pin_to_files, served_by_emulator

    remote = tmp_path / "remote"
    remote.mkdir()
    truth = make_remote_files(remote)
    card = load_registry().get(dataset_id)
    rows = read_index(remote / INDEX_NAME, *parse_record(card.source.record))
    fake = tuple(RemoteFile(f"{r['crdc_series_uuid']}/", None, {}, unpinned="fake release") for r in rows)
    card = pin_to_files(replace(card, source=replace(card.source, files=fake)), remote)
    root = tmp_path / "root"
    with served_by_emulator(card, remote) as served:
        raw = download_dataset(served, root)
    out = convert_dataset(card, root)
    report = validate_converted(out, raw)
    assert report.ok, "\n".join(report.problems)
    return truth, raw, out
