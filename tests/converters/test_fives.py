import json
from functools import partial

import numpy as np
import pytest

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.testing import check_converter
from tests.converters.fake.fives import CASES, make_remote_files, vessel

pytest.importorskip("libarchive", reason="FIVES ships as RAR, read through libarchive-c (pip install libarchive-c)")


def test_fives_from_rar(tmp_path):
    out = check_converter("fives", make_remote_files, tmp_path, expected_splits={"train": 2, "test": 2})
    for split, names in CASES.items():
        for name in names:
            assert np.array_equal(read_png_array(out / "masks" / f"{split}_{name}" / "retinal_vessel.png"),
                                  vessel(split, name)), (split, name)
    assert read_png_array(out / "images" / "train_1_A.png").shape == (24, 24, 3)
    cases = {c["case_id"]: c for c in json.loads((out / "dataset.json").read_text())["cases"]}
    assert cases["test_3_G"]["meta"] == {"category": "glaucoma"}
    provenance = json.loads((out / "provenance.json").read_text())["files"]
    assert provenance["masks/test_1_D/retinal_vessel.png"]["sources"][0]["path"] == (
        "FIVES A Fundus Image Dataset for AI-based Vessel Segmentation/test/Ground truth/1_D.png")


def test_fives_accepts_the_catalogues_groud_truth_spelling(tmp_path):
    """datasets.md spells the mask folder "Groud truth" (unconfirmed); that layout converts the same way."""
    out = check_converter("fives", partial(make_remote_files, mask_folder="Groud truth"), tmp_path,
                          expected_splits={"train": 2, "test": 2})
    assert np.array_equal(read_png_array(out / "masks" / "test_3_G" / "retinal_vessel.png"), vessel("test", "3_G"))
    provenance = json.loads((out / "provenance.json").read_text())["files"]
    assert provenance["masks/test_1_D/retinal_vessel.png"]["sources"][0]["path"].endswith("test/Groud truth/1_D.png")
