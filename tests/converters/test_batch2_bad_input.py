"""Batch-2 converters on damaged or partial release folders: absent cases listed, bad input named."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from tests.converters.fake.bus_uclm import ROOT as BUS_UCLM
from tests.converters.test_batch2_raw import extracted_release
from tests.helpers import run_cli


def _convert(tmp_path, dataset_id, raw):
    return run_cli("--root", tmp_path / "root", "convert", dataset_id, "--raw", raw, "--json", "--accept-licence")


@pytest.mark.parametrize("dataset_id, remove, absent", [
    ("bus_bra", ["BUSBRA/Images/bus_0002-l.png", "BUSBRA/Masks/mask_0002-l.png"], "bus_0002-l"),
    ("bus_uclm", [f"{BUS_UCLM}/images/MENE_002.png", f"{BUS_UCLM}/masks/MENE_002.png"], "MENE_002"),
])
def test_side_table_lists_more_cases_than_present(tmp_path, dataset_id, remove, absent):
    raw = extracted_release(dataset_id, tmp_path)
    for name in remove:
        (raw / name).unlink()
    result = _convert(tmp_path, dataset_id, raw)
    assert result.exit_code == 0, result.output
    dataset = json.loads(next((tmp_path / "root" / "converted" / dataset_id).glob("*/dataset.json")).read_text())
    assert [a["case_id"] for a in dataset["absent"]] == [absent]


@pytest.mark.parametrize("dataset_id, damage, message", [
    ("bus_bra", lambda raw: (raw / "BUSBRA/Masks/mask_0003-s.png").unlink(),
     "missing .*mask_0003-s.png .*3 of 4 files of this case are present"),
    ("fives", lambda raw: (raw / "FIVES A Fundus Image Dataset for AI-based Vessel Segmentation/test/Groud truth")
     .mkdir(), r"test: expected one folder named groud truth or ground truth \(any case\), found \['Groud truth', "
               r"'Ground truth'\]"),
    ("breast_lesions_usg", lambda raw: (raw / "BrEaST-Lesions_USG-images_and_masks/case001_lesion.png")
     .write_bytes(b"x"), "case001_lesion.png: unexpected file; expected caseNNN.png"),
    ("chaksu", lambda raw: shutil.rmtree(raw / "Test/4.0_OD_CO_Fusion_Images/Remedio/STAPLE"),
     "Remedio: expected one folder named staple"),
    ("bus_uclm", lambda raw: _recolour(raw / BUS_UCLM / "masks/ANFO_001.png"),
     r"ANFO_001.png: 1 colour\(s\) not in the palette, e.g. \(0, 0, 255\)"),
    ("arcade_stenosis", lambda raw: _relabel(raw / "arcade/stenosis/val/annotations/val.json"),
     r"val.json: annotations of categories \['1'\], which are not classes of arcade_stenosis"),
])
def test_bad_release_is_one_clear_error(tmp_path, dataset_id, damage, message):
    if dataset_id == "fives":
        pytest.importorskip("libarchive", reason="FIVES ships as RAR, read through libarchive-c")
    raw = extracted_release(dataset_id, tmp_path)
    damage(raw)
    result = _convert(tmp_path, dataset_id, raw)
    assert result.exit_code == 1, result.output
    error = json.loads(result.stdout)  # with --json the error is one JSON object on stdout
    assert error["exit_code"] == 1 and re.search(message, error["error"]), result.output


def _recolour(path):
    import numpy as np
    from PIL import Image

    mask = np.asarray(Image.open(path)).copy()
    mask[0, 0] = (0, 0, 255)
    Image.fromarray(mask).save(path)


def _relabel(path):
    coco = json.loads(path.read_text())
    coco["annotations"][0]["category_id"] = 1  # a SYNTAX segment in the stenosis file
    path.write_text(json.dumps(coco))


def test_bus_uclm_cropped_image_is_a_failed_case_with_keep_going(tmp_path):
    """Some real BUS-UCLM images were cropped after annotation (licences.md): image and mask sizes differ and the
    alignment is unknown, so the pair is refused (one clear error), and --keep-going lists it as failed."""
    import numpy as np
    from PIL import Image

    raw = extracted_release("bus_uclm", tmp_path)
    image = raw / BUS_UCLM / "images/MENE_002.png"
    Image.fromarray(np.asarray(Image.open(image))[2:, 3:]).save(image)  # cropped by 2 rows, 3 columns
    failed = _convert(tmp_path, "bus_uclm", raw)
    assert failed.exit_code == 1 and "MENE_002" in failed.output, failed.output
    result = run_cli("--root", tmp_path / "root", "convert", "bus_uclm", "--raw", raw, "--json", "--accept-licence",
                     "--keep-going")
    assert result.exit_code == 1 and "1 case(s) failed" in result.output, result.output
    dataset = json.loads(next((tmp_path / "root" / "converted" / "bus_uclm").glob("*/dataset.json")).read_text())
    assert [f["case_id"] for f in dataset["failed"]] == ["MENE_002"]
    assert len(dataset["cases"]) == 2
