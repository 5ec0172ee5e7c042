import json

import nibabel as nib
import numpy as np
import pytest

from omnimedseg.registry import load_registry
from omnimedseg.testing import check_converter
from tests.converters.fake import totalsegmentator as fake


@pytest.mark.parametrize("version, make, splits", [
    ("v2", fake.make_remote_files_v2, {"train": 1, "val": 1, "test": 1}),
    ("v3", fake.make_remote_files_v3, {"train": 1, "test": 1}),
])
def test_totalsegmentator_end_to_end(tmp_path, version, make, splits):
    dataset_id = f"totalsegmentator_{version}"
    out = check_converter(dataset_id, make, tmp_path, expected_splits=splits)
    card = load_registry().get(dataset_id)
    assert len(card.classes) == 117
    case = next(iter(fake.CASES[version]))
    for name, stem in zip(card.class_names, fake.raw_stems(version)):
        mask = np.asarray(nib.load(out / f"masks/{case}/{name}.nii.gz").dataobj).astype(bool)
        assert np.array_equal(mask, fake.expected_mask(version, stem)), name
    vertebra = fake.VERTEBRA[version]
    prov = json.loads((out / "provenance.json").read_text())
    top = fake.ZIPS[version][1]
    assert prov["files"][f"masks/{case}/{vertebra.lower()}.nii.gz"]["sources"][0]["path"] == \
        f"{top}{case}/segmentations/{vertebra}.nii.gz"
    assert f"{top}meta.csv" in prov["metadata_sources"]
    dataset = json.loads((out / "dataset.json").read_text())
    entry = next(c for c in dataset["cases"] if c["case_id"] == case)
    assert entry["meta"]["scanner_model"] == "SOMATOM Definition Flash" and entry["meta"]["kvp"] == "120"
    assert "pathology_location" not in entry["meta"]  # empty field left out
    assert "10.1148/ryai.230024" in (out / "CITATION.bib").read_text()
