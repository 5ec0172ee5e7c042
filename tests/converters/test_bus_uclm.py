import json

import numpy as np

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.testing import check_converter
from tests.converters.fake.bus_uclm import CASES, ROOT, SHAPE, make_remote_files


def test_bus_uclm_colour_masks_split_and_rgb_images(tmp_path):
    out = check_converter("bus_uclm", make_remote_files, tmp_path, expected_splits={"test": 1, "train": 2})
    for name, (label, benign, malignant) in CASES.items():
        for cls, box in (("benign_lesion", benign), ("malignant_lesion", malignant)):
            expected = np.zeros(SHAPE, bool)
            if box:
                expected[box] = True
            assert np.array_equal(read_png_array(out / "masks" / name[:-4] / f"{cls}.png"), expected), (name, cls)
    assert read_png_array(out / "images" / "MENE_003.png").shape == SHAPE + (3,)  # grey-looking but RGB
    cases = {c["case_id"]: c for c in json.loads((out / "dataset.json").read_text())["cases"]}
    assert cases["ANFO_001"]["split"] == "test" and cases["ANFO_001"]["meta"]["patient"] == "ANFO"
    assert cases["MENE_002"]["meta"] == {"patient": "MENE", "label": "benign", "doppler": "1", "marks": "0"}
    assert "CC-BY-NC-4.0" in (out / "LICENSE.txt").read_text()
    provenance = json.loads((out / "provenance.json").read_text())["files"]["masks/ANFO_001/malignant_lesion.png"]
    assert provenance["sources"][0]["path"] == f"{ROOT}/masks/ANFO_001.png"  # inside Mendeley's bundle folder
