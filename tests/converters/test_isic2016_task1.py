import numpy as np

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.testing import check_converter
from tests.converters._outputs import cases_by_id, convert_extracted_release, provenance_of
from tests.converters.fake.isic2016_task1 import TEST, TRAIN, lesion_mask, make_remote_files


def test_isic2016_end_to_end(tmp_path):
    out = check_converter("isic2016_task1", make_remote_files, tmp_path, expected_splits={"train": 2, "test": 1})
    cases = cases_by_id(out)
    assert {n: c["split"] for n, c in cases.items()} == {**{n: "train" for n in TRAIN}, **{n: "test" for n in TEST}}
    for name in TRAIN + TEST:
        assert np.array_equal(read_png_array(out / "masks" / name / "skin_lesion.png"), lesion_mask(name))
    assert provenance_of(out, "masks/ISIC_0000003/skin_lesion.png")[1] == [
        "ISBI2016_ISIC_Part1_Test_GroundTruth/ISIC_0000003_Segmentation.png"]
    licence = (out / "LICENSE.txt").read_text()
    assert "Redistribution of converted data allowed: NO" in licence and "copyright_license" in licence


def test_isic2016_convert_raw_folder_as_unzipped(tmp_path):
    out = convert_extracted_release("isic2016_task1", make_remote_files, tmp_path)
    assert sorted(cases_by_id(out)) == sorted(TRAIN + TEST)
