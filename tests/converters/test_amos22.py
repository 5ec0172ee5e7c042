import json

import nibabel as nib
import numpy as np
import pytest

from omnimedseg.converters._run import collect_cases
from omnimedseg.errors import ConversionError
from omnimedseg.registry import load_registry
from omnimedseg.testing import check_converter
from tests.converters.fake import amos22 as fake


@pytest.mark.parametrize("dataset_id, splits, numbers", [
    ("amos22_ct", {"train": 2, "val": 1, "test": 1}, (1, 500, 8, 2)),
    ("amos22_mr", {"train": 1, "val": 1, "test": 1}, (507, 540, 501)),
])
def test_amos22_end_to_end(tmp_path, dataset_id, splits, numbers):
    out = check_converter(dataset_id, fake.make_remote_files, tmp_path, expected_splits=splits)
    card = load_registry().get(dataset_id)
    dataset = json.loads((out / "dataset.json").read_text())
    assert sorted(c["case_id"] for c in dataset["cases"]) == sorted(f"amos_{n:04d}" for n in numbers)
    assert dataset["modality"] == {"0": card.modality}
    labelled = [n for n in numbers if n not in fake.CASES["Ts"]]
    for n in labelled:
        expected = fake.label_map(n)
        for value, name in card.classes.items():
            mask = np.asarray(nib.load(out / f"masks/amos_{n:04d}/{name}.nii.gz").dataobj).astype(bool)
            assert np.array_equal(mask, expected == value), (n, name)
        liver = nib.load(out / f"masks/amos_{n:04d}/liver.nii.gz")
        image = nib.load(out / f"images/amos_{n:04d}.nii.gz")
        liver_x = nib.affines.apply_affine(liver.affine, np.argwhere(np.asarray(liver.dataobj)).mean(0))[0]
        centre_x = nib.affines.apply_affine(image.affine, (np.array(image.shape[:3]) - 1) / 2)[0]
        assert liver_x > centre_x, n  # on the patient's right (+x in RAS world coordinates)
    test_case = next(c for c in dataset["cases"] if c["split"] == "test")
    assert test_case["masks"] == {}
    prov = json.loads((out / "provenance.json").read_text())
    n = labelled[0]
    assert prov["files"][f"masks/amos_{n:04d}/aorta.nii.gz"]["sources"][0]["path"] == \
        f"amos22/labels{'Tr' if n in fake.CASES['Tr'] else 'Va'}/amos_{n:04d}.nii.gz"
    assert "amos22/dataset.json" in prov["metadata_sources"]
    assert "10.48550/arXiv.2206.08023" in (out / "CITATION.bib").read_text()


def test_label_names_that_disagree_with_the_card_fail_loudly(tmp_path):
    release = tmp_path / "amos22"
    release.mkdir()
    data = fake.dataset_json()
    data["labels"]["9"] = "portal vein"
    (release / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(ConversionError, match=r"dataset\.json: labels .*'portal vein'.* card expects"):
        collect_cases(load_registry().get("amos22_ct"), tmp_path)
