import json

import numpy as np

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.testing import check_converter
from tests.converters.fake.bus_bra import CASES, SHAPE, lesion_box, make_remote_files


def test_bus_bra_masks_folds_and_patients(tmp_path):
    out = check_converter("bus_bra", make_remote_files, tmp_path,
                          expected_splits={"fold_1": 2, "fold_2": 1, "fold_3": 1, "fold_4": 1, "fold_5": 1})
    for index, (image_id, patient, pathology, fold) in enumerate(CASES):
        expected = np.zeros(SHAPE, bool)
        expected[lesion_box(index)] = True
        assert np.array_equal(read_png_array(out / "masks" / image_id / "lesion.png"), expected)
    cases = {c["case_id"]: c for c in json.loads((out / "dataset.json").read_text())["cases"]}
    assert cases["bus_0001-r"]["meta"]["patient"] == "1" and cases["bus_0002-l"]["meta"]["pathology"] == "malignant"
    assert cases["bus_0002-l"]["split"] == "fold_2" and cases["bus_0002-l"]["meta"]["device"] == "GE Logiq 5"
    provenance = json.loads((out / "provenance.json").read_text())["files"]
    assert provenance["masks/bus_0003-s/lesion.png"]["sources"][0]["path"] == "BUSBRA/Masks/mask_0003-s.png"
