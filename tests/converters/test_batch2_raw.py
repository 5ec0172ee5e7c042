"""``omnimedseg convert <id> --raw DIR`` on folders laid out as the official archives extract (batch 2, 2D)."""

from __future__ import annotations

import importlib
import json
import shutil

import pytest

from omnimedseg.downloaders._archives import extract, is_archive
from tests.helpers import run_cli

CASES = {"montgomery_cxr": 2, "bus_bra": 6, "psfhs": 3, "bus_uclm": 3, "breast_lesions_usg": 3, "arcade_syntax": 5,
         "arcade_stenosis": 3, "papila": 2, "fives": 4, "chaksu": 7}
FAKES = {"arcade_syntax": "arcade", "arcade_stenosis": "arcade"}


def extracted_release(dataset_id: str, tmp_path):
    """The fake release as a user has it after unpacking every archive into one folder."""
    remote, raw = tmp_path / "remote", tmp_path / "release"
    remote.mkdir()
    importlib.import_module(f"tests.converters.fake.{FAKES.get(dataset_id, dataset_id)}").make_remote_files(remote)
    raw.mkdir()
    for path in sorted(remote.iterdir()):
        if is_archive(path.name):
            unpacked = tmp_path / f"unpacked_{path.name}"
            extract(path, unpacked)
            shutil.copytree(unpacked, raw, dirs_exist_ok=True)
        else:
            shutil.copy(path, raw / path.name)
    return raw


@pytest.mark.parametrize("dataset_id", sorted(CASES))
def test_convert_raw_folder(tmp_path, dataset_id):
    if dataset_id == "fives":
        pytest.importorskip("libarchive", reason="FIVES ships as RAR, read through libarchive-c")
    raw = extracted_release(dataset_id, tmp_path)
    result = run_cli("--root", tmp_path / "root", "convert", dataset_id, "--raw", raw, "--json")
    assert result.exit_code == 0, result.output
    out = tmp_path / "root" / "converted" / dataset_id
    dataset = json.loads(next(out.glob("*/dataset.json")).read_text())
    assert len(dataset["cases"]) == CASES[dataset_id]
    assert json.loads(next(out.glob("*/provenance.json")).read_text())["raw_verified"] is False
