"""``omnimedseg formats labels-to-masks``: masks written voxel-exact on the label's grid."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from tests.helpers import run_cli as _run_cli

TOL = 1e-4


def run_cli(*args):
    """``omnimedseg formats <args>`` through the real entry point (one-line errors, exit codes)."""
    return _run_cli("formats", *args)


def _pair(tmp_path, label_affine=None):
    affine = np.array([[-2.0, 0, 0, 10], [0, -2.0, 0, 20], [0, 0, 3.0, -5], [0, 0, 0, 1]])
    label = np.zeros((4, 5, 6), np.uint8)
    label[1, 2, 3] = 1
    label[2:4, 0:2, 0] = 7
    nib.save(nib.Nifti1Image(np.zeros(label.shape, np.int16), affine), tmp_path / "img.nii.gz")
    nib.save(nib.Nifti1Image(label, affine if label_affine is None else label_affine), tmp_path / "seg.nii.gz")
    return label, affine


def test_split_writes_exact_masks_and_summary(tmp_path):
    label, affine = _pair(tmp_path)
    out = tmp_path / "out"
    result = run_cli("labels-to-masks", tmp_path / "seg.nii.gz", out, "--image", tmp_path / "img.nii.gz", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary == json.loads((out / "summary.json").read_text())
    assert [(m["label"], m["name"], m["voxels"]) for m in summary["masks"]] == [(1, "label_1", 1), (7, "label_7", 4)]
    assert summary["orientation"] == "LPS" and summary["masks"][1]["volume_mm3"] == pytest.approx(4 * 12.0)
    for value, name in ((1, "label_1"), (7, "label_7")):
        img = nib.load(str(out / f"{name}.nii.gz"))
        assert np.array_equal(np.asanyarray(img.dataobj), (label == value).astype(np.uint8))
        assert np.abs(img.affine - affine).max() < TOL


def test_class_names_and_unknown_label(tmp_path):
    _pair(tmp_path)
    out = tmp_path / "out"
    ok = run_cli("labels-to-masks", tmp_path / "seg.nii.gz", out, "--class", "1=liver", "--class", "7=spleen",
                 "--class", "2=kidney")
    assert ok.exit_code == 0, ok.output
    assert sorted(p.name for p in out.iterdir()) == ["kidney.nii.gz", "liver.nii.gz", "spleen.nii.gz",
                                                     "summary.json"]
    assert not np.asanyarray(nib.load(str(out / "kidney.nii.gz")).dataobj).any()
    bad = run_cli("labels-to-masks", tmp_path / "seg.nii.gz", tmp_path / "o2", "--class", "1=liver")
    assert bad.exit_code == 1 and bad.output.count("\n") == 1
    assert bad.output.startswith(f"Error: {tmp_path / 'seg.nii.gz'}: label values [7] have no class")
    assert run_cli("labels-to-masks", tmp_path / "seg.nii.gz", tmp_path / "o3", "--class", "x=liver").exit_code == 2


def test_label_on_another_grid_is_refused_in_one_line(tmp_path):
    _pair(tmp_path, label_affine=np.diag([2.0, 2.0, 3.0, 1.0]))
    result = run_cli("labels-to-masks", tmp_path / "seg.nii.gz", tmp_path / "out", "--image", tmp_path / "img.nii.gz")
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "Traceback" not in result.output
    assert result.output.startswith(f"Error: {tmp_path / 'seg.nii.gz'}: geometry differs from image img.nii.gz: "
                                    f"orientation RAS vs LPS")
    assert not (tmp_path / "out").exists()


def test_missing_label_file(tmp_path):
    result = run_cli("labels-to-masks", tmp_path / "nope.nrrd", tmp_path / "out")
    assert result.exit_code == 1 and "nope.nrrd: file not found" in result.output


def test_real_lps_mr_labels(realdata, tmp_path):
    folder = realdata("totalseg_nifti")
    out = tmp_path / "out"
    result = run_cli("labels-to-masks", folder / "example_seg_mr.nii.gz", out,
                     "--image", folder / "example_mr_sm.nii.gz", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    source = nib.load(str(folder / "example_seg_mr.nii.gz"))
    labels = np.asanyarray(source.dataobj)
    assert len(summary["masks"]) == 23 and summary["orientation"] == "LPS"
    for entry in summary["masks"][:5] + summary["masks"][-2:]:
        img = nib.load(str(out / entry["file"]))
        assert np.array_equal(np.asanyarray(img.dataobj).astype(bool), labels == entry["label"])
        assert np.abs(img.affine - source.affine).max() < TOL
    assert sum(m["voxels"] for m in summary["masks"]) == int((labels > 0).sum())


def test_real_nrrd_label_to_nifti_keeps_the_flipped_axis(realdata, tmp_path):
    folder = realdata("pyradiomics_nrrd")
    out = tmp_path / "out"
    result = run_cli("labels-to-masks", folder / "brain1_label.nrrd", out, "--image", folder / "brain1_image.nrrd",
                     "--class", "1=tumor")
    assert result.exit_code == 0, result.output
    itk = sitk.ReadImage(str(folder / "brain1_label.nrrd"))
    written = sitk.ReadImage(str(out / "tumor.nii.gz"))  # SimpleITK reads our NIfTI back into LPS
    assert np.array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(itk).astype(np.uint8))
    assert np.abs(np.array(written.GetOrigin()) - np.array(itk.GetOrigin())).max() < TOL
    assert np.abs(np.array(written.GetDirection()) - np.array(itk.GetDirection())).max() < TOL
    assert np.abs(np.array(written.GetSpacing()) - np.array(itk.GetSpacing())).max() < TOL


def test_real_2d_instances_become_one_png(realdata, tmp_path):
    from PIL import Image

    path = realdata("stardist_dsb2018_tif") / "stardist" / "data" / "images" / "mask2d.tif"
    result = run_cli("labels-to-masks", path, tmp_path / "out", "--instances", "--class", "1=nucleus", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["instances"] == 125 and [m["file"] for m in summary["masks"]] == ["nucleus.png"]
    written = np.asarray(Image.open(tmp_path / "out" / "nucleus.png"))
    assert np.array_equal(written.astype(bool), np.asarray(Image.open(path)) > 0)


def test_card_classes_name_the_masks(tmp_path):
    from PIL import Image

    label = np.zeros((6, 7), np.uint8)
    label[2:4, 3:6] = 1
    Image.fromarray(label).save(tmp_path / "l.png")
    result = run_cli("labels-to-masks", tmp_path / "l.png", tmp_path / "out", "--card", "hc18", "--json")
    assert result.exit_code == 0, result.output
    assert [m["name"] for m in json.loads(result.output)["masks"]] == ["fetal_head"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "fetal_head.png")).astype(bool), label == 1)
    label[0, 0] = 2
    Image.fromarray(label).save(tmp_path / "l.png")
    bad = run_cli("labels-to-masks", tmp_path / "l.png", tmp_path / "out2", "--card", "hc18")
    assert bad.exit_code == 1 and "label values [2] have no class" in bad.output
