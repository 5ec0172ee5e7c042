import json

import nibabel as nib
import numpy as np
import pytest

from omnimedseg.errors import ConversionError
from omnimedseg.registry import load_registry
from omnimedseg.testing import check_converter
from tests.converters.fake import verse20 as fake


def test_verse20_end_to_end(tmp_path):
    out = check_converter("verse20", fake.make_remote_files, tmp_path, expected_splits={"train": 2, "val": 1, "test": 1})
    card = load_registry().get("verse20")
    # sacrum/coccyx (raw 26/27) are not annotated in VerSe, so not classes; raw 28 (T13) is class 26
    assert len(card.classes) == 26 and card.classes[26] == "vertebra_t13"
    assert "sacrum" not in card.class_names and "coccyx" not in card.class_names
    prefix = "sub-gl003_dir-ax"
    expected = fake.labels(prefix)
    for value, name in card.classes.items():
        raw_value = 28 if name == "vertebra_t13" else value
        mask = np.asarray(nib.load(out / f"masks/{prefix}/{name}.nii.gz").dataobj).astype(bool)
        assert np.array_equal(mask, expected == raw_value), name
    t13 = np.asarray(nib.load(out / f"masks/{prefix}/vertebra_t13.nii.gz").dataobj).astype(bool)
    assert t13.sum() == (expected == 28).sum() > 0
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
    # in world space (what the QA sheets draw) every case is a spine: T12/T13 above L1 above L2,
    # whether the volume is stored axially or sagittally
    for case in dataset["cases"]:
        heights = {}
        for name in ("vertebra_t12", "vertebra_t13", "vertebra_l1", "vertebra_l2"):
            img = nib.load(out / f"masks/{case['case_id']}/{name}.nii.gz")
            voxels = np.argwhere(np.asarray(img.dataobj))
            if len(voxels):
                heights[name] = nib.affines.apply_affine(img.affine, voxels.mean(0))
        top = heights.get("vertebra_t12", heights.get("vertebra_t13"))
        assert top[2] > heights["vertebra_l1"][2] > heights["vertebra_l2"][2], case["case_id"]
        assert np.allclose(top[:2], heights["vertebra_l2"][:2]), case["case_id"]  # one column, not side by side


def test_verse20_unannotated_sacrum_value_is_an_error(tmp_path, monkeypatch):
    """A raw 26 (sacrum, "not labeled in this dataset") must stop the conversion, naming the value."""
    original = fake.labels

    def labels_with_sacrum(prefix):
        out = original(prefix)
        out[0, 0, 0] = 26  # a corner voxel exists in axial- and sagittal-stored shapes
        return out

    monkeypatch.setattr(fake, "labels", labels_with_sacrum)
    with pytest.raises(ConversionError, match=r"label values \[26\]"):
        check_converter("verse20", fake.make_remote_files, tmp_path,
                        expected_splits={"train": 2, "val": 1, "test": 1})


def test_verse20_a_missing_centroid_file_concerns_its_case_only(tmp_path):
    """The centroid JSON is one of the case's files: with the case's image and mask gone too (a partial copy)
    the rest converts (cases are listed from the images); alone missing, that case fails naming it (with
    --keep-going the rest converts). It had been read while listing, stopping every case."""
    from tests.converters._outputs import convert_extracted_release

    def drop_case(raw, files=("*_ct.nii.gz", "*_seg-vert_msk.nii.gz", "*_seg-subreg_ctd.json")):
        first = sorted(raw.glob("dataset-01training/rawdata/sub-*/*_ct.nii.gz"))[0]
        prefix = first.name[: -len("_ct.nii.gz")]
        for pattern in files:
            for path in raw.glob(f"dataset-01training/*/{first.parent.name}/{pattern}"):
                if path.name.startswith(prefix):
                    path.unlink()
    out = convert_extracted_release("verse20", fake.make_remote_files, tmp_path / "partial", drop_case)
    dataset = json.loads((out / "dataset.json").read_text())
    assert len(dataset["cases"]) == 3 and not dataset.get("failed")
    with pytest.raises(AssertionError, match=r"missing .*_seg-subreg_ctd\.json \(2 of 3 files of this case"):
        convert_extracted_release("verse20", fake.make_remote_files, tmp_path / "one",
                                  lambda raw: drop_case(raw, ("*_seg-subreg_ctd.json",)))
