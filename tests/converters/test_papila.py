import json

import numpy as np

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.testing import check_converter
from tests.converters.fake.papila import CONTOURS, make_remote_files, rectangle_mask


def test_papila_two_raters_reference_and_contours(tmp_path):
    out = check_converter("papila", make_remote_files, tmp_path, expected_splits={"train": 2})
    for image, experts in CONTOURS.items():
        for expert, structures in experts.items():
            folder = out / "masks" / image if expert == "exp1" else out / "raters" / "expert2" / image
            for structure, box in structures.items():
                found = read_png_array(folder / f"optic_{structure}.png")
                assert np.array_equal(found, rectangle_mask(box)), (image, expert, structure)
    cases = {c["case_id"]: c for c in json.loads((out / "dataset.json").read_text())["cases"]}
    assert sorted(cases["RET002OD"]["raters"]) == ["expert1", "expert2"]
    assert sorted(cases["RET002OS"]["raters"]) == ["expert1"]
    assert cases["RET002OD"]["raters"]["expert1"]["optic_disc"] == "masks/RET002OD/optic_disc.png"
    assert cases["RET002OS"]["meta"] == {"patient": "002", "eye": "OS"}


def test_papila_without_any_contour_file_fails_naming_the_folder(tmp_path):
    """A renamed or missing contour folder would otherwise make every case silently image-only."""
    import shutil

    import pytest

    from tests.converters._outputs import convert_extracted_release

    def drop_contours(raw):
        for folder in raw.glob("PapilaDB-PAPILA-*/ExpertsSegmentations/Contours"):
            shutil.rmtree(folder)
    with pytest.raises(AssertionError, match=r"Contours: no contour files; expected RETnnnOD_disc_exp1\.txt"):
        convert_extracted_release("papila", make_remote_files, tmp_path, drop_contours)
