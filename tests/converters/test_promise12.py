import json

import nibabel as nib
import numpy as np

from omnimedseg.testing import check_converter
from tests.converters.fake import promise12 as fake


def test_promise12_end_to_end(tmp_path):
    out = check_converter("promise12", fake.make_remote_files, tmp_path,
                          expected_splits={"train": 2, "test": 1, "live_test": 1})
    for split, folder in (("train", "training_data"), ("live_test", "livechallenge_test_data")):
        mask = np.asarray(nib.load(out / f"masks/{split}_Case00/prostate.nii.gz").dataobj).astype(bool)
        assert np.array_equal(mask, np.transpose(fake.mask_kji(folder, "Case00"), (2, 1, 0)).astype(bool))
    image = nib.load(out / "images/train_Case01.nii.gz")
    assert np.allclose(image.header.get_zooms(), fake.SPACING)
    prov = json.loads((out / "provenance.json").read_text())["files"]
    assert prov["masks/test_Case00/prostate.nii.gz"]["sources"][0]["path"] == "test_data/Case00_segmentation.mhd"
    assert prov["images/train_Case00.nii.gz"]["sources"][0]["path"] == "training_data/Case00.mhd"
    licence = (out / "LICENSE.txt").read_text()
    assert "Redistribution of converted data allowed: NO" in licence and "not been verified" in licence
