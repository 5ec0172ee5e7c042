import json

import numpy as np

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.registry import load_registry
from omnimedseg.testing import check_converter
from tests.converters._outputs import cases_by_id, convert_extracted_release, provenance_of
from tests.converters.fake.dsad import FRAMES, SHAPE, SINGLE, make_remote_files, organ_mask

MULTILABEL = ["01_00", "01_07", "02_05", "03_12"]
SINGLE_IDS = [f"{organ}_{surgery}_{frame}" for organ, surgery, frame in SINGLE]


def test_dsad_multilabel_frames_one_mask_file_per_organ(tmp_path):
    out = check_converter("dsad", make_remote_files, tmp_path, expected_splits={"train": 4, "val": 2, "test": 2})
    cases = cases_by_id(out)
    organs = load_registry().get("dsad").class_names
    assert sorted(cases) == sorted(MULTILABEL + SINGLE_IDS)
    for (surgery, frame), shown in FRAMES.items():
        case = cases[f"{surgery}_{frame}"]
        assert case["meta"]["no_mask_file"] == [o for o in organs if o not in shown]
        assert case["unlabelled"] == []
        for organ in organs:
            mask = read_png_array(out / case["masks"][organ])
            expected = organ_mask(shown[organ]) if organ in shown else np.zeros(SHAPE, bool)
            assert np.array_equal(mask, expected), (surgery, frame, organ)
    assert provenance_of(out, "masks/01_00/liver.png") == (
        "omnimedseg.converters.formats.image2d.read_binary_mask", ["multilabel/01/mask00_liver.png"])
    assert provenance_of(out, "masks/01_00/spleen.png") == (
        "omnimedseg.converters.formats.masks2d.read_empty_mask", ["multilabel/01/image00.png"])
    assert {c["split"] for c in cases.values()} == {"train", "val", "test"}
    assert cases["03_12"]["split"] == "val" and cases["02_05"]["split"] == "test"


def test_dsad_single_organ_frames_label_one_organ_and_leave_the_others_unlabelled(tmp_path):
    out = check_converter("dsad", make_remote_files, tmp_path, expected_splits={"train": 4, "val": 2, "test": 2})
    cases = cases_by_id(out)
    organs = load_registry().get("dsad").class_names
    for (organ, surgery, frame), rows in SINGLE.items():
        case = cases[f"{organ}_{surgery}_{frame}"]
        assert list(case["masks"]) == [organ]  # no file for the unknown organs
        assert case["unlabelled"] == [o for o in organs if o != organ]
        expected = organ_mask(rows) if rows else np.zeros(SHAPE, bool)  # labelled and empty is kept
        assert np.array_equal(read_png_array(out / case["masks"][organ]), expected)
        assert not (out / "masks" / case["case_id"] / f"{case['unlabelled'][0]}.png").exists()
        assert case["meta"] == {"surgery": surgery, "subset": organ}
    assert provenance_of(out, "masks/colon_03_04/colon.png") == (
        "omnimedseg.converters.formats.image2d.read_binary_mask", ["colon/03/mask04.png"])
    assert cases["colon_03_04"]["split"] == "val" and cases["stomach_02_09"]["split"] == "test"
    dataset = json.loads((out / "dataset.json").read_text())
    assert sum(1 for c in dataset["cases"] if c["unlabelled"]) == len(SINGLE)


def test_dsad_convert_raw_folder_as_unzipped(tmp_path):
    out = convert_extracted_release("dsad", make_remote_files, tmp_path)
    assert len(cases_by_id(out)) == len(MULTILABEL) + len(SINGLE)
