"""IDC: series chosen from the index (collection + filters), fetched from the bucket emulator,
pinned per series by the listing digest, licence and release checked against the card."""

from __future__ import annotations

import hashlib
import json
import os
import sys

import pytest
from dl_helpers import downloads

from omnimedseg.downloaders import download_dataset
from omnimedseg.downloaders.emulators import IdcEmulator
from omnimedseg.downloaders.idc import IdcDownloader, pin_series_folder, read_index, series_digest
from omnimedseg.errors import ChecksumMismatchError, RegistryError, UsageError

CT = {"a.dcm": b"DICM-ct-1" * 50, "b.dcm": b"DICM-ct-2" * 40}
SEG = {"s.dcm": b"DICM-seg" * 30}
AI = {"ai.dcm": b"DICM-ai" * 20}


def _serve(emulator):
    emu = emulator(IdcEmulator)
    ct = emu.add_series("coll", "P-001", "1.2.3.1", "CT", CT)
    seg = emu.add_series("coll", "P-001", "1.2.3.2", "SEG", SEG, SeriesDescription="Segmentation")
    ai = emu.add_series("coll", "P-001", "1.2.3.3", "SEG", AI, analysis_result_id="bamf_aimi_annotations")
    other = emu.add_series("other", "Q-001", "1.2.4.1", "CT", {"x.dcm": b"x"})
    return emu, ct, seg, ai, other


def _series_entry(uuid: str, files: dict[str, bytes]) -> str:
    objects = {f"{uuid}/{k}": (len(v), hashlib.md5(v).hexdigest()) for k, v in files.items()}
    return (f'\n[[source.files]]\nname = "{uuid}/"\nsize = {sum(len(v) for v in files.values())}\n'
            f'hashes = {{ sha256 = "{series_digest(objects)}" }}\n')


def test_collection_filter_downloads_only_original_series(emulator, make_card):
    emu, ct, seg, ai, other = _serve(emulator)
    card = make_card("idc", "coll?analysis_result_id=", None, version="v25")
    download_dataset(card)
    for uuid, files in ((ct, CT), (seg, SEG)):
        for name, data in files.items():
            assert (downloads() / uuid / name).read_bytes() == data
    assert not (downloads() / ai).exists() and not (downloads() / other).exists()
    listed = [r.query.get("prefix") for r in emu.requests if r.query.get("list-type") == "2"]
    assert sorted(listed) == sorted([f"{ct}/", f"{seg}/"])  # one prefix listing per series, never the bucket


def test_series_pins_match_and_drift_is_refused(emulator, make_card, tmp_path):
    emu, ct, seg, _, _ = _serve(emulator)
    card = make_card("idc", "coll?analysis_result_id=&Modality=CT", None, version="v25")
    found = IdcDownloader().listing(card)
    assert [(f.name, f.size) for f in found.files] == [(f"{ct}/", sum(len(v) for v in CT.values()))]
    folder = tmp_path / ct
    folder.mkdir()
    for name, data in CT.items():
        (folder / name).write_bytes(data)
    assert pin_series_folder(folder).hashes == found.files[0].hashes  # what `registry lock` writes
    pinned = make_card("idc", "coll?analysis_result_id=&Modality=CT", None, version="v25", dataset_id="pinned")
    text = pinned.path.read_text().replace("files = []\n", _series_entry(ct, CT))
    pinned.path.write_text(text)
    manifest = IdcDownloader().resolve(type(pinned).from_toml(pinned.path))
    assert sorted(f.name for f in manifest.files) == sorted(f"{ct}/{k}" for k in CT)
    assert all(f.hashes["md5"] == hashlib.md5(CT[f.name.split("/")[1]]).hexdigest() for f in manifest.files)
    emu.add_files({f"{ct}/a.dcm": b"changed"})  # same series name, other bytes: the pin must catch it
    with pytest.raises(ChecksumMismatchError, match=f"{ct}/"):
        IdcDownloader().resolve(type(pinned).from_toml(pinned.path))


def test_licence_and_release_are_checked(emulator, make_card, monkeypatch):
    emu, *_ = _serve(emulator)
    emu.add_series("nc", "R-001", "1.2.5.1", "CT", {"y.dcm": b"y"}, license_short_name="CC BY-NC 4.0")
    with pytest.raises(RegistryError, match=r"\['CC-BY-NC-4.0'\].*says CC-BY-4.0"):
        IdcDownloader().listing(make_card("idc", "nc", None, version="v25"))
    emu.add_series("new", "S-001", "1.2.6.1", "CT", {"z.dcm": b"z"}, series_revised_idc_version=26)
    with pytest.raises(Exception, match="revised after IDC v25"):
        IdcDownloader().listing(make_card("idc", "new", None, version="v25"))
    with pytest.raises(RegistryError, match="filter on 'Bogus'"):
        IdcDownloader().listing(make_card("idc", "coll?Bogus=1", None, version="v25"))


def test_missing_index_package_says_how_to_install(make_card, monkeypatch):
    monkeypatch.delenv("OMNIMEDSEG_IDC_INDEX", raising=False)
    monkeypatch.setitem(sys.modules, "idc_index_data", None)
    with pytest.raises(UsageError, match=r"pip install 'omnimedseg\[idc\]'"):
        IdcDownloader().listing(make_card("idc", "coll", None, version="v25"))


def test_parquet_index_reads_like_csv(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="the parquet index needs the optional 'idc' extra (pyarrow)")
    import csv

    import pyarrow.parquet as pq

    from omnimedseg.downloaders.emulators.idc import index_row, write_index

    rows = [index_row("coll", "P-1", "1.2.1", "CT", 3), index_row("coll", "P-1", "1.2.2", "SEG", 1,
                                                                  analysis_result_id="bamf_aimi_annotations"),
            index_row("zzz", "Z-1", "1.2.3", "CT", 1)]
    write_index(tmp_path / "i.csv", rows)
    with open(tmp_path / "i.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    columns = {k: [r[k] or None for r in table] for k in table[0]}
    columns["instanceCount"] = [int(v) for v in columns["instanceCount"]]
    columns["series_revised_idc_version"] = [int(v) for v in columns["series_revised_idc_version"]]
    pq.write_table(pa.table(columns), tmp_path / "i.parquet")
    filters = {"analysis_result_id": ("",)}
    from_csv = read_index(tmp_path / "i.csv", "coll", filters)
    assert from_csv == read_index(tmp_path / "i.parquet", "coll", filters)
    assert [r["SeriesInstanceUID"] for r in from_csv] == ["1.2.1"]


def test_real_index_lists_the_cards_series():
    """The installed idc-index-data (v25) has the collections the cards pin, with their licences."""
    pytest.importorskip("idc_index_data", reason="optional 'idc' extra not installed")
    pytest.importorskip("pyarrow", reason="optional 'idc' extra not installed")
    from omnimedseg.downloaders.idc import index_path, parse_record
    from omnimedseg.registry import load_registry

    registry = load_registry()
    for dataset_id, count, licence in (("hcc_tace_seg", 677, "CC BY 4.0"), ("lctsc", 120, "CC BY 3.0")):
        card = registry.get(dataset_id)
        rows = read_index(index_path(), *parse_record(card.source.record))
        assert len(rows) == count and {r["license_short_name"] for r in rows} == {licence}
        assert sorted(f.name for f in card.source.files) == sorted(f"{r['crdc_series_uuid']}/" for r in rows)


def test_registry_lock_writes_one_pin_per_series(emulator, make_card, tmp_path):
    from omnimedseg.registry import Card
    from omnimedseg.registry.card import lint_card
    from tests.helpers import run_cli

    emu, ct, seg, ai, _ = _serve(emulator)
    card = make_card("idc", "coll?analysis_result_id=", None, version="v25")
    result = run_cli("--registry", card.path.parent, "registry", "lock", "emu", "--write")
    assert result.exit_code == 0, result.output
    locked = Card.from_toml(card.path)
    assert {f.name: f.size for f in locked.source.files} == {f"{ct}/": sum(map(len, CT.values())),
                                                             f"{seg}/": sum(map(len, SEG.values()))}
    assert not [p for p in lint_card(locked) if "lacks size or hash" in p]
    download_dataset(locked)  # the written pins verify against the bucket
    assert (downloads() / seg / "s.dcm").read_bytes() == SEG["s.dcm"]


def test_listing_that_is_not_xml_is_one_clear_error(emulator, make_card):
    from omnimedseg.downloaders.emulators import Reply
    from omnimedseg.errors import DownloadError

    class Broken(IdcEmulator):  # a proxy answering the listing with an HTML page
        def listing(self, req, m):
            return Reply(200, {"Content-Type": "text/html"}, b"<html><body>sign in</body>")

    emu = emulator(Broken)
    emu.add_series("coll", "P-001", "1.2.3.1", "CT", CT)
    with pytest.raises(DownloadError, match="expected ListBucketResult XML") as info:
        IdcDownloader().listing(make_card("idc", "coll", None, version="v25"))
    assert "\n" not in str(info.value)


@pytest.mark.filterwarnings("ignore:The string .* is unlikely to represent:UserWarning")
def test_sample_of_an_idc_collection_fetches_one_case_series_and_headers_only(tmp_path):
    """``download hcc_tace_seg --sample 1``: IDC's instances are all case files (the platform hook);
    cases() lists series from header-only reads of each folder's first instance, so the sample costs
    the chosen case's series plus one header per other series, and ``convert --sample 1`` converts it."""
    from dataclasses import replace

    pytest.importorskip("highdicom", reason="the fake SEG files are written with highdicom (test extra)")
    from omnimedseg.converters._run import convert_dataset
    from omnimedseg.downloaders._sample import download_sample
    from omnimedseg.downloaders.emulators import EMULATORS
    from omnimedseg.downloaders.idc import HEADER_START, parse_record, read_index
    from omnimedseg.registry import RemoteFile, load_registry
    from omnimedseg.testing import pin_to_files
    from tests.converters.fake._idc import INDEX_NAME
    from tests.converters.fake.hcc_tace_seg import make_remote_files

    remote = tmp_path / "remote"
    remote.mkdir()
    truth = make_remote_files(remote, extra_patients=6)
    card = load_registry().get("hcc_tace_seg")
    rows = read_index(remote / INDEX_NAME, *parse_record(card.source.record))
    fake = tuple(RemoteFile(f"{r['crdc_series_uuid']}/", None, {}, unpinned="fake release") for r in rows)
    card = pin_to_files(replace(card, source=replace(card.source, files=fake)), remote)
    release = sum(p.stat().st_size for r in rows for p in (remote / r["crdc_series_uuid"]).iterdir())
    root = tmp_path / "root"
    with EMULATORS["idc"]() as emu:
        emu.add_folder(remote)
        old = {k: os.environ.get(k) for k in emu.env}
        os.environ.update(emu.env)
        try:
            raw = download_sample(card, 1, root)
            served = emu.bytes_served(".dcm")  # DICOM objects (the S3 listings are the same for any download)
        finally:
            for k, v in old.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    sample = json.loads((raw / ".sample.json").read_text())
    assert sample["cases"] == {"all": ["HCC_001"]}
    case_series = {truth["HCC_001"]["ct_uuid"], truth["HCC_001"]["seg"].parent.name}  # the SEG and its CT
    case_bytes = sum(p.stat().st_size for uuid in case_series for p in (remote / uuid).iterdir())
    # the listing reads each series' first instance up to its pixel data (the fake's are smaller than
    # the first 64 KiB range: whole), the chosen case's series are then fetched whole
    headers = sum(min(sorted((remote / r["crdc_series_uuid"]).glob("*.dcm"))[0].stat().st_size, HEADER_START)
                  for r in rows)
    print(f"IDC sample of 1 case: {served} bytes served of a {release}-byte release ({served / release:.2f}); "
          f"the case's series: {case_bytes} bytes, headers: {headers} bytes")
    assert served == case_bytes + headers  # nothing else: no instance of another series
    assert served < 0.6 * release  # 6-slice fake series: the headers weigh far more than in a real one
    kept = sorted(p.parent.name for p in raw.rglob("*.dcm"))
    assert set(kept) == case_series  # the headers of series no chosen case reads are dropped
    out = convert_dataset(card, root, sample=1)
    assert [c["case_id"] for c in json.loads((out / "dataset.json").read_text())["cases"]] == ["HCC_001"]


def test_dicom_header_grows_the_range_until_the_whole_header_is_read(tmp_path):
    """A header longer than the first range (a SEG's per-frame groups): read on, stop at the pixel data."""
    import io

    import numpy as np
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    from omnimedseg.downloaders._remote_zip import RangeSource
    from omnimedseg.downloaders.idc import HEADER_START, dicom_header

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, ds.file_meta.MediaStorageSOPInstanceUID, "CT"
    items = []
    for _ in range(1500):  # ~100 KB of references: longer than the first range
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = CTImageStorage, generate_uid()
        items.append(item)
    ds.ReferencedImageSequence = items
    ds.Rows = ds.Columns = 512
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.zeros((512, 512), np.int16).tobytes()
    path = tmp_path / "big.dcm"
    ds.save_as(path, enforce_file_format=True)
    size = path.stat().st_size
    source = RangeSource(path.as_uri(), size)
    header = dicom_header(source)
    assert HEADER_START < len(header) < size  # grew past the first range, stopped before the pixels
    parsed = pydicom.dcmread(io.BytesIO(header), stop_before_pixels=True)
    assert len(parsed.ReferencedImageSequence) == 1500
    assert parsed.ReferencedImageSequence[-1].ReferencedSOPInstanceUID == items[-1].ReferencedSOPInstanceUID


def test_idc_fetches_sixteen_instances_at_once_unless_jobs_says_otherwise(emulator, make_card, monkeypatch):
    """A collection is tens of thousands of small DICOM objects: the platform sets the default parallelism
    (``Downloader.jobs``), ``download --jobs`` still wins."""
    from click.testing import CliRunner

    from omnimedseg.cli import cli
    from omnimedseg.downloaders import _dataset

    _serve(emulator)
    card = make_card("idc", "coll?analysis_result_id=", None, version="v25")
    asked, fetch_all = [], _dataset.fetch_all
    monkeypatch.setattr(_dataset, "fetch_all", lambda *a, **kw: asked.append(kw["jobs"]) or fetch_all(*a, **kw))
    for args in ([], ["--jobs", "2"]):
        result = CliRunner().invoke(cli, ["--registry", str(card.path.parent), "download", card.id, *args])
        assert result.exit_code == 0, result.output
    assert asked == [IdcDownloader.jobs, 2] and IdcDownloader.jobs == 16
    help_text = " ".join(CliRunner().invoke(cli, ["download", "--help"]).output.split())
    assert "(default: the platform's, 4; IDC 16;" in help_text
