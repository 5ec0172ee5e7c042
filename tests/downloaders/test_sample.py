"""download --sample N / convert --sample N on a multi-GB sparse ZIP64 served by the Zenodo emulator.

The archive mirrors TotalSegmentator's release (one ZIP, ``meta.csv`` with the split of every
case, ``sNNNN/ct.nii.gz`` + ``sNNNN/segmentations/<structure>.nii.gz``) plus one 4.5 GiB stored
member of zeros written as a hole (sparse file), so every later member lies beyond 4 GiB and needs
ZIP64. The ZIP is written here by hand (zipfile would write the 4.5 GiB) and checked with Python's
zipfile before use.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import zipfile
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from omnimedseg.downloaders._remote_zip import RangeSource, fetch_members, read_central_directory
from omnimedseg.downloaders.emulators import ZenodoEmulator
from omnimedseg.downloaders.emulators._server import Blob
from omnimedseg.errors import ChecksumMismatchError
from tests.helpers import register_plugin_dataset, run_cli

HUGE = 9 << 29  # 4.5 GiB of zeros: past the 32-bit limits
TOP = "Totalsegmentator_dataset_v201"
SPLITS = {"s0001": "train", "s0002": "train", "s0003": "train", "s0004": "val", "s0005": "val", "s0006": "test"}
AFFINE = np.diag([1.5, 1.5, 2.0, 1.0])

PLUGIN = '''
    import csv
    from functools import partial

    from omnimedseg.converters import Case, Converter, Source
    from omnimedseg.converters.formats.volumes import read_label_class, read_volume


    class TotalLike(Converter):
        """Cases from meta.csv (image_id;split), as TotalSegmentator's converter reads them."""

        def cases(self, raw_dir):
            meta = raw_dir / "Totalsegmentator_dataset_v201" / "meta.csv"
            with open(meta, newline="") as fh:
                rows = list(csv.DictReader(fh, delimiter=";"))
            for row in rows:
                case = meta.parent / row["image_id"]
                yield Case(case_id=row["image_id"], image=Source(case / "ct.nii.gz", read_volume),
                           split=row["split"], metadata_sources=(meta,),
                           masks={name: Source(case / "segmentations" / f"{name}.nii.gz",
                                               partial(read_label_class, values=(1,)))
                                  for name in ("liver", "spleen")})
'''


def crc32_of_zeros(n: int) -> int:
    """CRC-32 of ``n`` zero bytes in O(log n) (hand-written: Python's zlib has no crc32_combine).

    With zero input the CRC register evolves linearly: one zero bit maps ``r`` to
    ``(r >> 1) ^ (0xEDB88320 if r & 1 else 0)``; that map is raised to the power ``8 n`` by
    squaring 32x32 GF(2) matrices (kept as 32 column words).
    """
    def apply(matrix, vector):
        out, i = 0, 0
        while vector:
            if vector & 1:
                out ^= matrix[i]
            vector, i = vector >> 1, i + 1
        return out

    def square(matrix):
        return [apply(matrix, column) for column in matrix]

    step = [0xEDB88320] + [1 << i for i in range(31)]  # one zero bit
    register, bits = 0xFFFFFFFF, 8 * n
    while bits:
        if bits & 1:
            register = apply(step, register)
        step, bits = square(step), bits >> 1
    return register ^ 0xFFFFFFFF


def _nifti(array: np.ndarray) -> bytes:
    image = nib.Nifti1Image(array, AFFINE)
    return gzip.compress(image.to_bytes(), mtime=0)


def case_files(seed: int) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    ct = rng.integers(-1000, 1000, (10, 8, 4)).astype(np.int16)
    liver = np.zeros((10, 8, 4), np.uint8)
    liver[2:5, 2:6, seed % 4] = 1
    spleen = np.zeros((10, 8, 4), np.uint8)
    spleen[6:9, 1:3, (seed + 1) % 4] = 1
    return {"ct.nii.gz": _nifti(ct), "segmentations/liver.nii.gz": _nifti(liver),
            "segmentations/spleen.nii.gz": _nifti(spleen)}


def write_sparse_zip64(path: Path) -> dict[str, bytes]:
    """The archive (deflated small members after a sparse stored 4.5 GiB member); returns the small members."""
    small = {f"{TOP}/meta.csv": ("image_id;age;gender;split\n" + "".join(
        f"{case};{50 + i};f;{split}\n" for i, (case, split) in enumerate(SPLITS.items()))).encode()}
    for i, case in enumerate(SPLITS):
        small.update({f"{TOP}/{case}/{name}": data for name, data in case_files(i).items()})
    central = []
    with open(path, "wb") as fh:
        def member(name: str, data: bytes | None, size: int = 0) -> None:
            offset = fh.tell()
            raw = name.encode()
            if data is None:  # the huge stored member: sizes in the ZIP64 extra field, bytes a hole
                crc, csize, usize, method = crc32_of_zeros(size), size, size, 0
            else:
                deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
                payload = deflate.compress(data) + deflate.flush()
                crc, csize, usize, method = zlib.crc32(data), len(payload), len(data), 8
            big = usize >= 0xFFFFFFFF or offset >= 0xFFFFFFFF
            local_extra = struct.pack("<HHQQ", 1, 16, usize, csize) if usize >= 0xFFFFFFFF else b""
            fh.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 45, 0x800, method, 0, 0x21, crc,
                                 0xFFFFFFFF if local_extra else csize, 0xFFFFFFFF if local_extra else usize,
                                 len(raw), len(local_extra)) + raw + local_extra)
            if data is None:
                fh.seek(size, 1)  # a hole: the file is sparse, nothing is written
            else:
                fh.write(payload)
            values = [v for v in (usize, csize) if v >= 0xFFFFFFFF] + ([offset] if offset >= 0xFFFFFFFF else [])
            extra = struct.pack(f"<HH{len(values)}Q", 1, 8 * len(values), *values) if big else b""
            central.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 45, 45, 0x800, method, 0, 0x21, crc,
                                       min(csize, 0xFFFFFFFF), min(usize, 0xFFFFFFFF), len(raw), len(extra), 0, 0,
                                       0, 0, min(offset, 0xFFFFFFFF)) + raw + extra)
        member(f"{TOP}/padding/scanner_dump.raw", None, HUGE)
        for name, data in small.items():
            member(name, data)
        cd_offset = fh.tell()
        for entry in central:
            fh.write(entry)
        cd_size = fh.tell() - cd_offset
        zip64_eocd = fh.tell()
        fh.write(struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, len(central), len(central),
                             cd_size, cd_offset))
        fh.write(struct.pack("<4sIQI", b"PK\x06\x07", 0, zip64_eocd, 1))
        fh.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
    return small


@pytest.fixture(scope="module")
def sparse_zip(tmp_path_factory):
    path = tmp_path_factory.mktemp("sparse") / "Totalsegmentator_dataset_v201.zip"
    small = write_sparse_zip64(path)
    return path, small


def test_crc32_of_zeros_matches_zlib():
    for n in (0, 1, 7, 1000, 65537):
        assert crc32_of_zeros(n) == zlib.crc32(bytes(n))


def test_central_directory_of_a_sparse_zip64_matches_zipfile(sparse_zip):
    path, small = sparse_zip
    assert path.stat().st_size > HUGE and path.stat().st_blocks * 512 < 16 << 20  # multi-GB, but sparse
    with zipfile.ZipFile(path) as zf:
        expected = [(i.filename, i.CRC, i.file_size, i.compress_size, i.header_offset) for i in zf.infolist()]
        assert zf.read(f"{TOP}/meta.csv") == small[f"{TOP}/meta.csv"]  # the hand-written ZIP is valid
    members = read_central_directory(RangeSource(path.as_uri(), None))
    assert [(m.name, m.crc, m.size, m.compressed_size, m.offset) for m in members] == expected
    assert members[0].size == HUGE and members[1].offset > 0xFFFFFFFF


def _served_card(tmp_path, monkeypatch, emulator, path: Path, **emulator_options):
    emu = emulator(ZenodoEmulator, **emulator_options)
    blob = Blob(path.name, path=path)
    # Stand-in for Zenodo's published md5 (hashing 4.5 GiB would take the test's whole budget);
    # the sample path never hashes the whole archive: it verifies each member's CRC-32.
    blob._digests["md5"] = "0" * 32
    emu.add_record("11", {path.name: blob}, concept="10")
    files = (f'[[source.files]]\nname = "{path.name}"\nsize = {path.stat().st_size}\n'
             f'hashes = {{ md5 = "{"0" * 32}" }}\nextract = true\n')
    cards = register_plugin_dataset(tmp_path, monkeypatch, "totallike", PLUGIN, "TotalLike",
                                    {'modality = "ultrasound"': 'modality = "CT"',
                                     "dimensionality = 2": "dimensionality = 3",
                                     '1 = "fetal_head"': '1 = "liver"\n2 = "spleen"',
                                     'record = "1327317"': 'record = "10"', 'version = "1327317"': 'version = "11"'},
                                    files)
    return emu, cards


def test_download_sample_reads_members_by_range_and_convert_sample_converts_them(
        sparse_zip, tmp_path, monkeypatch, emulator):
    path, small = sparse_zip
    emu, cards = _served_card(tmp_path, monkeypatch, emulator, path)
    root = tmp_path / "root"
    common = ["--root", root, "--registry", cards, "-q"]
    result = run_cli(*common, "download", "totallike", "--sample", "1", "--json")
    assert result.exit_code == 0, result.output
    served = emu.bytes_served()
    print(f"sample of 3 cases: {served} bytes served of a {path.stat().st_size}-byte archive "
          f"({served / path.stat().st_size:.1e}) in {len(emu.requests)} requests")
    assert served < 64 << 10 and served / path.stat().st_size < 1e-5, served  # never the archive
    assert all("Range" in r.headers for r in emu.log(path_contains="/content"))

    raw = root / "raw" / "totallike"
    marker = json.loads((raw / ".sample.json").read_text())
    assert marker["cases"] == {"train": ["s0001"], "val": ["s0004"], "test": ["s0006"]}  # first per split
    assert marker["partial"] == [path.name] and marker["bytes_fetched"] <= served
    got = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*") if p.is_file() and p.name != ".sample.json")
    wanted = sorted(n for n in small if n.endswith("meta.csv") or n.split("/")[1] in ("s0001", "s0004", "s0006"))
    assert got == wanted
    for name in wanted:  # byte for byte what the archive holds
        assert (raw / name).read_bytes() == small[name]
    lock = json.loads((root / "downloads" / "totallike" / "manifest.lock.json").read_text())
    assert lock["extra"]["sample"]["cases"] == marker["cases"]

    result = run_cli(*common, "verify", "totallike", "--json")
    assert result.exit_code == 0, result.output  # a sample is not a broken download ...
    # ... nor the full release, and the raw tree is a sample too
    assert json.loads(result.output)["files"] == {path.name: "sample", "raw/totallike": "sample"}

    result = run_cli(*common, "convert", "totallike", "--sample", "1", "--json")
    assert result.exit_code == 0, result.output
    out = Path(json.loads(result.output)["output"])
    dataset = json.loads((out / "dataset.json").read_text())
    assert [c["case_id"] for c in dataset["cases"]] == ["s0001", "s0004", "s0006"]
    assert dataset["omnimedseg"]["sample"] == 1
    liver = nib.load(out / dataset["cases"][0]["masks"]["liver"]).get_fdata()
    assert liver[2:5, 2:6, 0].all() and liver.sum() == 12  # where the fake release put it (seed 0)
    result = run_cli(*common, "validate", "totallike", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["ok"], result.output

    again = len(emu.requests)
    assert run_cli(*common, "download", "totallike", "--sample", "1").exit_code == 0
    # a rerun re-reads the directory; members already there (CRC-checked) are not fetched again
    assert emu.bytes_served() - served < 32 << 10 and len(emu.requests) - again <= 6


def test_corrupt_archive_bytes_are_refused(sparse_zip, tmp_path, monkeypatch, emulator):
    path, _ = sparse_zip
    emu, cards = _served_card(tmp_path, monkeypatch, emulator, path)
    emu.inject("wrong_bytes", times=-1, match=path.name)  # flips the first byte of every range served
    result = run_cli("--root", tmp_path / "root", "--registry", cards, "download", "totallike", "--sample", "1")
    assert result.exit_code == 1 and "Traceback" not in result.output  # the directory itself is refused
    assert not (tmp_path / "root" / "raw" / "totallike").exists()



@pytest.mark.parametrize("method,message", [
    (zipfile.ZIP_STORED, r"expected 3 bytes with CRC-32 [0-9a-f]{8}, got 3"),
    (zipfile.ZIP_DEFLATED, "(does not inflate|expected 644 bytes with CRC-32)")])
def test_member_bytes_that_differ_from_the_directory_are_refused(tmp_path, method, message):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", method) as zf:
        zf.writestr("case/ct.nii.gz", b"abc" if method == zipfile.ZIP_STORED else case_files(0)["ct.nii.gz"])
        zf.writestr("case/meta.csv", b"id\n1\n")
    source = RangeSource(archive.as_uri(), None)
    ct, meta = read_central_directory(source)
    data = bytearray(archive.read_bytes())
    data[ct.end - 1] ^= 0xFF  # the last byte of the member's compressed data
    archive.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match=rf"a.zip: member 'case/ct.nii.gz': {message}"):
        fetch_members(source, [ct], tmp_path / "members", tmp_path / "runs")
    assert not (tmp_path / "members" / "case" / "ct.nii.gz").exists()  # nothing unverified under a final name
    assert fetch_members(source, [meta], tmp_path / "members", tmp_path / "runs") == {
        "case/meta.csv": tmp_path / "members" / "case" / "meta.csv"}
    assert (tmp_path / "members" / "case" / "meta.csv").read_bytes() == b"id\n1\n"


def test_server_without_range_support_is_a_clear_error(sparse_zip, tmp_path, monkeypatch, emulator):
    path, _ = sparse_zip
    emu, cards = _served_card(tmp_path, monkeypatch, emulator, path)
    emu.honour_range = False
    result = run_cli("--root", tmp_path / "root", "--registry", cards, "download", "totallike", "--sample", "1")
    assert result.exit_code == 1 and "cannot serve parts of the archive" in result.output
    assert emu.bytes_served() < 1 << 20  # the 200 answer's body was not read


def test_sample_of_per_file_release_fetches_only_the_chosen_files(tmp_path, monkeypatch, emulator):
    """No archive: the platform lists one file per case; big files not needed are never requested."""
    emu = emulator(ZenodoEmulator)
    files = {f"{TOP}/meta.csv": ("image_id;age;gender;split\n" + "".join(
        f"{case};50;f;{split}\n" for case, split in SPLITS.items())).encode()}
    for i, case in enumerate(SPLITS):
        files.update({f"{TOP}/{case}/{name}": data for name, data in case_files(i).items()})
    emu.add_record("21", files, concept="20")
    toml = "".join(f'[[source.files]]\nname = "{n}"\nsize = {len(d)}\n'
                   f'hashes = {{ md5 = "{hashlib.md5(d).hexdigest()}" }}\n\n' for n, d in files.items())
    cards = register_plugin_dataset(tmp_path, monkeypatch, "totallike", PLUGIN, "TotalLike",
                                    {'modality = "ultrasound"': 'modality = "CT"',
                                     "dimensionality = 2": "dimensionality = 3",
                                     '1 = "fetal_head"': '1 = "liver"\n2 = "spleen"',
                                     'record = "1327317"': 'record = "20"', 'version = "1327317"': 'version = "21"'},
                                    toml)
    monkeypatch.setattr("omnimedseg.downloaders._sample.WHOLE_FILE_LIMIT", 0)  # every image counts as big
    result = run_cli("--root", tmp_path / "root", "--registry", cards, "-q", "download", "totallike",
                     "--sample", "2")
    assert result.exit_code == 0, result.output
    fetched = {r.path.split("/files/")[1].removesuffix("/content") for r in emu.log(path_contains="/content")}
    chosen = ("s0001", "s0002", "s0004", "s0005", "s0006")  # two per split where the split has two
    assert fetched == {n for n in files if n.endswith("meta.csv") or n.split("/")[1] in chosen}
    raw = tmp_path / "root" / "raw" / "totallike"
    assert not (raw / TOP / "s0003").exists()
    assert run_cli("--root", tmp_path / "root", "--registry", cards, "-q", "download", "totallike").exit_code == 0
    assert (raw / TOP / "s0003" / "ct.nii.gz").is_file() and not (raw / ".sample.json").exists()  # full release
    lock = json.loads((tmp_path / "root" / "downloads" / "totallike" / "manifest.lock.json").read_text())
    assert "sample" not in lock["extra"]
    before = len(emu.log(path_contains="/content"))
    result = run_cli("--root", tmp_path / "root", "--registry", cards, "download", "totallike", "--sample", "1")
    assert result.exit_code == 0 and "the full release is already in" in result.output
    assert len(emu.log(path_contains="/content")) == before and (raw / TOP / "s0003" / "ct.nii.gz").is_file()


def test_ranges_resume_after_a_drop_and_after_a_rerun(sparse_zip, tmp_path, monkeypatch, emulator):
    path, small = sparse_zip
    emu, _ = _served_card(tmp_path, monkeypatch, emulator, path)
    size = path.stat().st_size
    url = f"{emu.url}/api/records/11/files/{path.name}/content"
    emu.inject("drop", times=1, after=1000, match=path.name)  # the connection dies inside the first range
    members = read_central_directory(RangeSource(url, size, name=path.name))
    with zipfile.ZipFile(path) as zf:
        assert [m.name for m in members] == zf.namelist()
    ranges = [r.headers["Range"] for r in emu.log(path_contains="/content")]
    assert ranges[:2] == [f"bytes={size - 4096}-{size - 1}", f"bytes={size - 4096 + 1000}-{size - 1}"]

    wanted = [m for m in members if m.name.startswith(f"{TOP}/s0002/")]  # one case: one run, one request
    start, end = wanted[0].offset, wanted[-1].end
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    with open(path, "rb") as fh:  # what an interrupted earlier process left
        fh.seek(start)
        (runs_dir / f"{path.name}.{start}-{end}.part").write_bytes(fh.read(700))
    before = len(emu.requests)
    got = fetch_members(RangeSource(url, size, name=path.name), wanted, tmp_path / "members", runs_dir)
    assert [r.headers["Range"] for r in emu.requests[before:]] == [f"bytes={start + 700}-{end - 1}"]
    assert {name: p.read_bytes() for name, p in got.items()} == {m.name: small[m.name] for m in wanted}
    assert list(runs_dir.iterdir()) == []  # the run is removed once its members are verified


def test_sample_from_a_local_copy_reads_the_zip_in_place(sparse_zip, tmp_path, monkeypatch, emulator):
    path, small = sparse_zip
    _, cards = _served_card(tmp_path, monkeypatch, emulator, path)
    result = run_cli("--root", tmp_path / "root", "--registry", cards, "-q", "download", "totallike",
                     "--from", path.parent, "--sample", "2")
    assert result.exit_code == 0, result.output
    raw = tmp_path / "root" / "raw" / "totallike"
    assert json.loads((raw / ".sample.json").read_text())["cases"] == {
        "train": ["s0001", "s0002"], "val": ["s0004", "s0005"], "test": ["s0006"]}
    assert (raw / TOP / "s0005" / "segmentations" / "spleen.nii.gz").read_bytes() == \
        small[f"{TOP}/s0005/segmentations/spleen.nii.gz"]
    assert not (raw / TOP / "s0003").exists() and not (raw / TOP / "padding").exists()
    assert sum(p.stat().st_size for p in (tmp_path / "root").rglob("*") if p.is_file()) < 1 << 20


def test_sample_follows_redirects_to_signed_storage(sparse_zip, tmp_path, monkeypatch, emulator):
    path, small = sparse_zip
    emu, cards = _served_card(tmp_path, monkeypatch, emulator, path, redirect_to_storage=True)
    result = run_cli("--root", tmp_path / "root", "--registry", cards, "-q", "download", "totallike", "--sample", "1")
    assert result.exit_code == 0, result.output
    storage = emu.log(server="storage")
    assert storage and all(r.headers.get("Range", "").startswith("bytes=") and r.status == 206 for r in storage)
    raw = tmp_path / "root" / "raw" / "totallike"
    assert (raw / TOP / "s0004" / "ct.nii.gz").read_bytes() == small[f"{TOP}/s0004/ct.nii.gz"]
