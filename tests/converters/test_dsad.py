import numpy as np

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.registry import load_registry
from omnimedseg.testing import check_converter
from tests.converters._outputs import cases_by_id, convert_extracted_release, provenance_of
from tests.converters.fake.dsad import FRAMES, SHAPE, make_remote_files, organ_mask


def test_dsad_multilabel_frames_one_mask_file_per_organ(tmp_path):
    out = check_converter("dsad", make_remote_files, tmp_path, expected_splits={"train": 2, "val": 1, "test": 1})
    cases = cases_by_id(out)
    organs = load_registry().get("dsad").class_names
    assert sorted(cases) == ["01_00", "01_07", "02_05", "03_12"]
    for (surgery, frame), shown in FRAMES.items():
        case = cases[f"{surgery}_{frame}"]
        assert case["meta"]["no_mask_file"] == [o for o in organs if o not in shown]
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


def test_dsad_convert_raw_folder_as_unzipped(tmp_path):
    out = convert_extracted_release("dsad", make_remote_files, tmp_path)
    assert len(cases_by_id(out)) == 4
