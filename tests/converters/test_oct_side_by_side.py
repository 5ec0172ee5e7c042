import numpy as np
import pytest

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.testing import check_converter
from tests.converters._outputs import cases_by_id, convert_extracted_release, provenance_of
from tests.converters.fake.oct_side_by_side import LAYOUT, class_masks, left_half, maker


@pytest.mark.parametrize("card_id", sorted(LAYOUT))
def test_side_by_side_scans_are_split_into_image_and_masks(tmp_path, card_id):
    out = check_converter(card_id, maker(card_id), tmp_path, expected_splits={"train": 2})
    cases = cases_by_id(out)
    root, groups, _ = LAYOUT[card_id]
    assert sorted(cases) == [f"{g}_001" for g in groups]
    for group in groups:
        case = cases[f"{group}_001"]
        assert case["shape"] == [16, 20, 3]  # one half of the 16 x 40 file
        assert np.array_equal(read_png_array(out / case["image"]), left_half(card_id, group))
        for name, expected in class_masks(card_id, group).items():
            assert np.array_equal(read_png_array(out / case["masks"][name]), expected), name
    name = next(iter(class_masks(card_id, groups[0])))
    operation, sources = provenance_of(out, f"masks/{groups[0]}_001/{name}.png")
    assert operation.startswith("omnimedseg.converters.formats.side_by_side.read_half_palette_class(")
    assert f"snap={card_id == 'amd_sd'}" in operation and sources == [f"{root}/{groups[0]}/001.png"]


def test_oimhs_convert_raw_folder_as_unzipped(tmp_path):
    out = convert_extracted_release("oimhs", maker("oimhs"), tmp_path)
    assert sorted(cases_by_id(out)) == ["1_001", "2_001"]
