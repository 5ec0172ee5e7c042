import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from omnimedseg.converters._run import convert_dataset
from omnimedseg.errors import ConversionError
from omnimedseg.registry import load_registry
from omnimedseg.testing import check_converter
from tests.converters.fake import ct_org as fake


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ct_org")
    # TCIA serves CT-ORG outside its DICOM API: the card says manual download, so via="local" (download --from)
    return check_converter("ct_org", fake.make_remote_files, tmp, expected_splits={"test": 21, "train": 119},
                           via="local")


def test_float_labels_become_exact_masks(converted):
    for value, box in fake.BOXES.items():
        name = load_registry().get("ct_org").classes[value]
        mask = np.asarray(nib.load(converted / f"masks/ct_org_002/{name}.nii.gz").dataobj)
        expected = np.zeros(fake.SHAPE, bool)
        expected[box] = True
        assert np.array_equal(mask.astype(bool), expected), name
    # a class absent from a case is still written, empty
    assert not np.asarray(nib.load(converted / "masks/ct_org_005/brain.nii.gz").dataobj).any()


def test_splits_meta_and_provenance(converted):
    dataset = json.loads((converted / "dataset.json").read_text())
    case = next(c for c in dataset["cases"] if c["case_id"] == "ct_org_020")
    assert case["split"] == "test" and case["meta"]["lungs_and_bones"] == "manual"
    assert dataset["labels"] == {"background": 0, "liver": 1, "bladder": 2, "lungs": 3, "kidneys": 4, "bone": 5,
                                 "brain": 6}
    prov = json.loads((converted / "provenance.json").read_text())["files"]
    assert [s["path"] for s in prov["masks/ct_org_002/liver.nii.gz"]["sources"]] == ["labels-2.nii.gz"]
    assert [s["path"] for s in prov["images/ct_org_002.nii.gz"]["sources"]] == ["volume-2.nii.gz"]
    assert "CC-BY-3.0" in (converted / "LICENSE.txt").read_text()
    assert "10.1038/s41597-020-00715-8" in (converted / "CITATION.bib").read_text()


def test_non_integral_float_label_is_a_clear_error(converted, tmp_path):
    root = converted.parents[2]
    raw = root / "raw" / "ct_org"
    broken = tmp_path / "root"
    shutil.copytree(root / "raw", broken / "raw")
    labels = fake.label_map(7)
    labels[0, 0, 0] = 2.5  # a resampled (interpolated) label map
    from tests.converters.fake._common import write_nifti
    write_nifti(broken / "raw" / "ct_org" / "labels-7.nii.gz", labels, dtype=np.float32)
    with pytest.raises(ConversionError, match=r"labels-7\.nii\.gz: non-integral label values \[2\.5\]"):
        convert_dataset(load_registry().get("ct_org"), broken)
    assert raw.is_dir()
