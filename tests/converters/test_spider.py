import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from omnimedseg.converters._run import convert_dataset
from omnimedseg.errors import ConversionError
from omnimedseg.registry import load_registry
from omnimedseg.testing import check_converter
from tests.converters.fake import spider as fake
from tests.converters.fake._common import write_itk


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return check_converter("spider", fake.make_remote_files, tmp_path_factory.mktemp("spider"),
                           expected_splits={"train": 2, "val": 1})


def test_value_groups_become_class_masks(converted):
    labels = np.transpose(fake.mask_kji("1_t1"), (2, 1, 0))  # (k, j, i) -> (i, j, k)
    expected = {"vertebrae": np.isin(labels, [1, 2, 106]), "spinal_canal": labels == 100,
                "intervertebral_discs": np.isin(labels, [201, 202])}
    for name, want in expected.items():
        mask = np.asarray(nib.load(converted / f"masks/spider_1_t1/{name}.nii.gz").dataobj).astype(bool)
        assert np.array_equal(mask, want), name
    image = nib.load(converted / "images/spider_1_t1.nii.gz")
    assert nib.aff2axcodes(image.affine) == nib.aff2axcodes(nib.load(
        converted / "masks/spider_1_t1/vertebrae.nii.gz").affine)
    dataset = json.loads((converted / "dataset.json").read_text())
    case = next(c for c in dataset["cases"] if c["case_id"] == "spider_2_t2_SPACE")
    assert case["split"] == "val" and case["meta"] == {"patient": "2", "sequence": "t2_SPACE"}
    prov = json.loads((converted / "provenance.json").read_text())
    assert prov["files"]["masks/spider_1_t1/spinal_canal.nii.gz"]["sources"][0]["path"] == "masks/1_t1.mha"
    assert "overview.csv" in prov["metadata_sources"]


def test_undocumented_label_value_is_an_error(converted, tmp_path):
    root = converted.parents[2]
    shutil.copytree(root / "raw", tmp_path / "raw")
    labels = fake.mask_kji("1_t2")
    labels[0, 0, 0] = 150
    write_itk(tmp_path / "raw/spider/masks/1_t2.mha", labels, (0.6, 0.6, 3.3), (10.0, -20.0, 30.0), fake.SAGITTAL)
    with pytest.raises(ConversionError, match=r"1_t2\.mha: label values \[150\] are not among"):
        convert_dataset(load_registry().get("spider"), tmp_path)


def test_overview_without_subset_column_fails_loudly(tmp_path):
    from omnimedseg.converters._run import collect_cases

    (tmp_path / "overview.csv").write_text("new_file_name,num_vertebrae\n1_t1,3\n")
    with pytest.raises(ConversionError, match=r"overview\.csv: no column\(s\) \['subset'\]"):
        collect_cases(load_registry().get("spider"), tmp_path)
