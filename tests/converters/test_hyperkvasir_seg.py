import json

import numpy as np

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.testing import check_converter
from tests.converters._outputs import cases_by_id, convert_extracted_release, provenance_of
from tests.converters.fake.hyperkvasir_seg import IDS, make_remote_files, polyp_mask


def test_hyperkvasir_end_to_end_with_thresholded_jpeg_masks(tmp_path):
    out = check_converter("hyperkvasir_seg", make_remote_files, tmp_path, expected_splits={"train": 3})
    info = json.loads((out / "dataset.json").read_text())
    assert info["labels"] == {"background": 0, "polyp": 1}
    from scipy import ndimage

    for name in IDS:
        mask = read_png_array(out / "masks" / name / "polyp.png")
        truth = polyp_mask(name)
        # the midpoint threshold keeps every pixel 2 px inside the drawn edge and nothing 2 px outside
        assert mask[ndimage.binary_erosion(truth, iterations=2)].all()
        assert not mask[~ndimage.binary_dilation(truth, iterations=2)].any()
        image = read_png_array(out / "images" / f"{name}.png")
        assert image.shape == (36, 44, 3) and image.dtype == np.uint8
    cases = cases_by_id(out)
    assert [box["label"] for box in cases[IDS[1]]["meta"]["bounding_boxes"]] == ["polyp", "polyp"]
    assert cases[IDS[0]]["meta"]["bounding_boxes"][0] == {"label": "polyp", "xmin": 12, "ymin": 8, "xmax": 28,
                                                          "ymax": 24}
    operation, sources = provenance_of(out, f"masks/{IDS[0]}/polyp.png")
    assert operation == "omnimedseg.converters.formats.masks2d.read_lossy_mask(background_corners=True)"
    assert sources == [f"segmented-images/masks/{IDS[0]}.jpg"]
    assert "Borgli" in (out / "CITATION.bib").read_text()


def test_hyperkvasir_convert_raw_folder_as_unzipped(tmp_path):
    out = convert_extracted_release("hyperkvasir_seg", make_remote_files, tmp_path)
    assert sorted(cases_by_id(out)) == sorted(IDS)
