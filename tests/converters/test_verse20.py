import json

import nibabel as nib
import numpy as np

from omnimedseg.registry import load_registry
from omnimedseg.testing import check_converter
from tests.converters.fake import verse20 as fake


def test_verse20_end_to_end(tmp_path):
    out = check_converter("verse20", fake.make_remote_files, tmp_path, expected_splits={"train": 2, "val": 1, "test": 1})
    card = load_registry().get("verse20")
    assert len(card.classes) == 28 and card.classes[28] == "vertebra_t13"
    prefix = "sub-gl003_dir-ax"
    expected = fake.labels(prefix)
    for value, name in card.classes.items():
        mask = np.asarray(nib.load(out / f"masks/{prefix}/{name}.nii.gz").dataobj).astype(bool)
        assert np.array_equal(mask, expected == value), name
    # orientation kept as acquired: axial-stored and sagittal-stored images keep their affines
    assert nib.aff2axcodes(nib.load(out / f"images/{prefix}.nii.gz").affine) == nib.aff2axcodes(fake.AXIAL)
    assert nib.aff2axcodes(nib.load(out / "images/sub-verse823_dir-iso.nii.gz").affine) == \
        nib.aff2axcodes(fake.SAGITTAL)
    dataset = json.loads((out / "dataset.json").read_text())
    case = next(c for c in dataset["cases"] if c["case_id"] == prefix)
    assert case["meta"]["centroids"] == fake.centroids(prefix) and case["meta"]["subject"] == "sub-gl003"
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["files"][f"masks/{prefix}/vertebra_l1.nii.gz"]["sources"][0]["path"] == \
        f"dataset-01training/derivatives/sub-gl003/{prefix}_seg-vert_msk.nii.gz"
    assert f"dataset-01training/derivatives/sub-gl003/{prefix}_seg-subreg_ctd.json" in prov["metadata_sources"]
    assert "CC-BY-SA-4.0" in (out / "LICENSE.txt").read_text()
