import json

import numpy as np
from PIL import Image

from omnimedseg.testing import check_converter
from tests.converters.fake import figshare_brain_tumour as fake

NAMES = {1: "meningioma", 2: "glioma", 3: "pituitary_tumour"}


def test_cheng_end_to_end(tmp_path):
    out = check_converter("figshare_brain_tumour", fake.make_remote_files, tmp_path,
                          expected_splits={"fold_1": 2, "fold_2": 1, "fold_3": 1, "fold_4": 1, "fold_5": 1})
    for n, (_, tumour_type, fold, side) in fake.SLICES.items():
        case = f"cheng_{n:04d}"
        image = np.asarray(Image.open(out / f"images/{case}.png"))
        assert image.dtype == np.uint16 and np.array_equal(image, fake.image_rows_cols(n, side))  # MATLAB rows
        for code, name in NAMES.items():
            mask = np.asarray(Image.open(out / f"masks/{case}/{name}.png")).astype(bool)
            expected = fake.mask_rows_cols(side).astype(bool) if code == tumour_type else np.zeros((side, side), bool)
            assert np.array_equal(mask, expected), (case, name)
    splits = json.loads((out / "splits.json").read_text())
    assert splits["fold_1"] == ["cheng_0001", "cheng_0006"]
    prov = json.loads((out / "provenance.json").read_text())
    entry = prov["files"]["masks/cheng_0003/pituitary_tumour.png"]
    assert entry["sources"][0]["path"] == "3.mat" and "only_if={'cjdata/label': 3}" in entry["operation"]
    assert "cvind.mat" in prov["metadata_sources"]
