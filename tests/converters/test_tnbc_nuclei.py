import numpy as np

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.testing import check_converter
from tests.converters._outputs import cases_by_id, convert_extracted_release, provenance_of
from tests.converters.fake.tnbc_nuclei import make_remote_files, nucleus_mask


def test_tnbc_end_to_end_drops_opaque_alpha(tmp_path):
    out = check_converter("tnbc_nuclei", make_remote_files, tmp_path, expected_splits={"train": 3})
    cases = cases_by_id(out)
    assert sorted(cases) == ["01_1", "01_2", "02_1"]
    assert cases["02_1"]["shape"] == [32, 32, 3] and cases["02_1"]["meta"] == {"slide": "02"}
    for name in cases:
        assert np.array_equal(read_png_array(out / "masks" / name / "nucleus.png"), nucleus_mask(name))
    assert read_png_array(out / "images" / "02_1.png").shape == (32, 32, 3)
    operation, sources = provenance_of(out, "images/02_1.png")
    assert operation.endswith("masks2d.read_image_without_alpha")
    assert sources == ["TNBC_NucleiSegmentation/Slide_02/02_1.png"]


def test_tnbc_convert_raw_folder_as_unzipped(tmp_path):
    out = convert_extracted_release("tnbc_nuclei", make_remote_files, tmp_path)
    assert sorted(cases_by_id(out)) == ["01_1", "01_2", "02_1"]
