import json
from functools import partial

import numpy as np
import pytest

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.errors import ConversionError
from omnimedseg.testing import check_converter
from tests.converters.fake.montgomery_cxr import LEFT, RIGHT, SHAPE, make_remote_files


def test_montgomery_left_right_and_union_masks(tmp_path):
    out = check_converter("montgomery_cxr", make_remote_files, tmp_path, expected_splits={"train": 2})
    left, right = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    left[LEFT], right[RIGHT] = True, True
    masks = {n: read_png_array(out / "masks" / "MCUCXR_0002_1" / f"{n}.png") for n in ("left_lung", "right_lung", "lungs")}
    assert np.array_equal(masks["left_lung"], left) and np.array_equal(masks["right_lung"], right)
    assert np.array_equal(masks["lungs"], left | right)
    dataset = json.loads((out / "dataset.json").read_text())
    assert {c["case_id"]: c["meta"]["tuberculosis"] for c in dataset["cases"]} == {"MCUCXR_0001_0": False,
                                                                                   "MCUCXR_0002_1": True}
    provenance = json.loads((out / "provenance.json").read_text())["files"]["masks/MCUCXR_0001_0/lungs.png"]
    assert [s["path"] for s in provenance["sources"]] == ["MontgomerySet/ManualMask/leftMask/MCUCXR_0001_0.png",
                                                          "MontgomerySet/ManualMask/rightMask/MCUCXR_0001_0.png"]
    assert provenance["operation"].endswith("masks2d.read_binary_mask_union")
    assert "NOASSERTION" in (out / "LICENSE.txt").read_text()



def test_montgomery_refuses_a_left_mask_on_the_image_left(tmp_path):
    """The side convention is checked on every mask: swapped sides are an error, not swapped classes."""
    with pytest.raises(ConversionError, match=r"leftMask/MCUCXR_0001_0\.png: mask centred at column \d+ of 32, in "
                                              r"the image left half; expected the image right half"):
        check_converter("montgomery_cxr", partial(make_remote_files, swap_sides=True), tmp_path,
                        expected_splits={"train": 2})
