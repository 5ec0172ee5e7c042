"""Bad raw input: one clear error naming the file, nothing half-written, rerun works."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omnimedseg import paths
from omnimedseg.converters._run import convert_dataset
from omnimedseg.downloaders import download_dataset
from omnimedseg.errors import ChecksumMismatchError, ConversionError, DatasetNotFoundError
from omnimedseg.registry import load_registry
from omnimedseg.testing import pin_to_files
from tests.converters.fake.hc18 import make_remote_files


@pytest.fixture
def fake(tmp_path):
    remote = tmp_path / "remote"
    remote.mkdir()
    make_remote_files(remote)
    return remote, tmp_path / "root"


def _rezip(remote: Path, member: str, data: bytes) -> None:
    """Replace one member of training_set.zip (simulating a bad release)."""
    archive = remote / "training_set.zip"
    with zipfile.ZipFile(archive) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    members[member] = data
    with zipfile.ZipFile(archive, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)


def _png(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _convert(remote: Path, root: Path):
    card = pin_to_files(load_registry().get("hc18"), remote)
    download_dataset(card, root, sources=[remote])
    return card, lambda: convert_dataset(card, root)


def _nothing_half_written(card, root: Path) -> None:
    folder = paths.converted_dir(card.id, card.converter_version, root)
    assert not folder.exists()
    assert not list(folder.parent.glob(".*.staging"))


def test_missing_raw_file_names_it(fake):
    remote, root = fake
    card = pin_to_files(load_registry().get("hc18"), remote)
    (remote / "test_set_pixel_size.csv").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        download_dataset(card, root, sources=[remote])
    assert "test_set_pixel_size.csv" in str(info.value) and "1 of 4 files not found" in str(info.value)


def test_wrong_hash_names_file_expected_and_found(fake):
    remote, root = fake
    card = pin_to_files(load_registry().get("hc18"), remote)
    csv = remote / "training_set_pixel_size_and_HC.csv"
    csv.write_text(csv.read_text().replace("0", "1", 1))  # same size, other bytes
    with pytest.raises(ChecksumMismatchError) as info:
        download_dataset(card, root, sources=[remote])
    message = str(info.value)
    assert "training_set_pixel_size_and_HC.csv" in message and "sha256" in message
    assert not (paths.downloads_dir("hc18", root) / csv.name).exists()


def test_unreadable_png_names_the_file_and_nothing_is_half_written(fake):
    remote, root = fake
    _rezip(remote, "training_set/001_HC.png", b"\x89PNG\r\n\x1a\n truncated")
    card, convert = _convert(remote, root)
    with pytest.raises(ConversionError) as info:
        convert()
    assert "training_set/001_HC.png: not a readable image" in str(info.value)
    _nothing_half_written(card, root)


def test_open_outline_is_refused(fake):
    remote, root = fake
    outline = np.zeros((54, 80), np.uint8)
    outline[10:40, 20] = 255  # a line, not a closed curve
    _rezip(remote, "training_set/000_HC_Annotation.png", _png(outline))
    card, convert = _convert(remote, root)
    with pytest.raises(ConversionError, match=r"000_HC_Annotation.png: the outline is not closed"):
        convert()
    _nothing_half_written(card, root)


def test_label_of_other_size_is_refused_then_rerun_after_fix_works(fake):
    remote, root = fake
    pristine = remote.parent / "pristine.zip"
    shutil.copy(remote / "training_set.zip", pristine)
    ring = np.zeros((60, 80), np.uint8)
    ring[10:50, 10:70] = 255
    ring[12:48, 12:68] = 0
    _rezip(remote, "training_set/010_2HC_Annotation.png", _png(ring))
    card, convert = _convert(remote, root)
    with pytest.raises(ConversionError) as info:
        convert()
    assert "010_2HC_Annotation.png: geometry differs from image 010_2HC.png: shape (60, 80) vs (54, 80)" \
        in str(info.value)
    _nothing_half_written(card, root)
    shutil.copy(pristine, remote / "training_set.zip")  # the corrected release
    card, convert = _convert(remote, root)
    out = convert()
    assert (out / ".complete").is_file()


def test_convert_before_download_says_what_to_run():
    card = load_registry().get("hc18")
    with pytest.raises(DatasetNotFoundError, match="run: omnimedseg download hc18"):
        convert_dataset(card)
