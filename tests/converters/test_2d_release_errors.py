"""Broken or unexpected raw files of the 2D datasets give one clear error naming the file."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.helpers import run_cli


def _convert(tmp_path, dataset_id, raw):
    return run_cli("--root", tmp_path / "home", "convert", dataset_id, "--raw", raw, "--accept-licence")


def test_hyperkvasir_box_file_that_is_not_json(tmp_path):
    raw = tmp_path / "raw" / "segmented-images"
    raw.mkdir(parents=True)
    (raw / "bounding-boxes.json").write_text("{not json")
    result = _convert(tmp_path, "hyperkvasir_seg", tmp_path / "raw")
    assert result.exit_code != 0 and "bounding-boxes.json: not valid JSON" in result.output


def test_dsad_unexpected_mask_name(tmp_path):
    frames = tmp_path / "raw" / "multilabel" / "01"
    frames.mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(frames / "image00.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(frames / "mask00_kidney.png")
    result = _convert(tmp_path, "dsad", tmp_path / "raw")
    assert result.exit_code != 0 and "mask00_kidney.png: unexpected mask name" in result.output


def test_dsad_unexpected_mask_name_fails_its_frame_only(tmp_path):
    """Found while listing, the problem belongs to one case (Case.problem): --keep-going converts the other frames;
    it had stopped every case of the release."""
    import json

    frames = tmp_path / "raw" / "multilabel" / "01"
    frames.mkdir(parents=True)
    for frame in ("00", "01"):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(frames / f"image{frame}.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(frames / "mask00_kidney.png")  # no DSAD organ
    Image.fromarray(np.full((4, 4), 255, np.uint8)).save(frames / "mask01_colon.png")
    result = run_cli("--root", tmp_path / "home", "convert", "dsad", "--raw", tmp_path / "raw", "--accept-licence",
                     "--keep-going", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout.splitlines()[0])
    assert report["cases"] == 1 and [f["case_id"] for f in report["failed"]] == ["01_00"]
    assert "mask00_kidney.png: unexpected mask name" in report["failed"][0]["error"]


def test_bbbc038_image_without_masks_and_wrong_top_folder(tmp_path):
    case = tmp_path / "raw" / "abc" / "images"
    case.mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 4), np.uint8)).save(case / "abc.png")
    result = _convert(tmp_path, "bbbc038_stage1_train", tmp_path / "raw")
    assert result.exit_code != 0 and "no <image id>/masks/*.png in any of 1 image folders" in result.output
    nested = tmp_path / "nested"
    (nested / "stage1_train").mkdir(parents=True)
    result = _convert(tmp_path, "bbbc038_stage1_train", nested)
    assert result.exit_code != 0 and "no <image id>/images/ folders" in result.output


def test_oct_side_by_side_missing_folder_and_odd_width(tmp_path):
    result = _convert(tmp_path, "oimhs", tmp_path)
    assert result.exit_code != 0 and "Images: missing" in result.output
    eye = tmp_path / "raw" / "Images" / "7"
    eye.mkdir(parents=True)
    Image.fromarray(np.zeros((4, 9, 3), np.uint8)).save(eye / "001.png")
    result = _convert(tmp_path, "oimhs", tmp_path / "raw")
    assert result.exit_code != 0 and "width 9 is odd" in result.output
