"""Labels on their image's voxel grid stored in another axis order are reoriented losslessly
(converter core and ``formats labels-to-masks --image``); real mismatches are refused saying which."""

from __future__ import annotations

import json
import shutil
import zipfile

import nibabel as nib
import numpy as np
import pytest
from nibabel import orientations

from omnimedseg.converters.formats.geometry import conform_to_grid, grid_reorientation
from omnimedseg.converters.formats.imagedata import ImageData
from omnimedseg.errors import ConversionError
from omnimedseg.testing import check_converter
from tests.helpers import register_plugin_dataset, run_cli

# An oblique, anisotropic grid stored as dcm2niix writes an axial CT (rows reversed: LAS-like).
ROTATION = np.array([[np.cos(0.2), -np.sin(0.2), 0], [np.sin(0.2), np.cos(0.2), 0], [0, 0, 1]])
IMAGE_AFFINE = np.eye(4)
IMAGE_AFFINE[:3, :3] = ROTATION @ np.diag([-0.8, 0.7, 2.5])
IMAGE_AFFINE[:3, 3] = (120.0, -40.0, -300.0)
SHAPE = (9, 7, 5)


def _label() -> np.ndarray:
    rng = np.random.default_rng(4)
    return rng.integers(0, 3, SHAPE).astype(np.uint8)


def _stored_in(array: np.ndarray, affine: np.ndarray, codes: str) -> tuple[np.ndarray, np.ndarray]:
    """The same voxels in another axis order (what ITK/Slicer/dcmqi write), by nibabel."""
    image = nib.Nifti1Image(array, affine).as_reoriented(
        orientations.ornt_transform(nib.io_orientation(affine), orientations.axcodes2ornt(tuple(codes))))
    return np.asarray(image.dataobj), image.affine


def _world_values(array: np.ndarray, affine: np.ndarray) -> dict:
    """World position of every voxel centre (rounded to 1e-6 mm) -> value: first principles."""
    index = np.indices(array.shape).reshape(3, -1)
    world = (affine[:3, :3] @ index + affine[:3, 3:4]).T
    return {tuple(np.round(p, 6)): v for p, v in zip(world, array.reshape(-1))}


@pytest.mark.parametrize("codes", ["RAS", "LPS", "SPL", "AIL"])  # flips, and flips with permutations
def test_same_grid_in_another_axis_order_is_reoriented_losslessly(tmp_path, codes):
    label = _label()
    stored, stored_affine = _stored_in(label, IMAGE_AFFINE, codes)
    assert stored.shape != SHAPE or not np.allclose(stored_affine, IMAGE_AFFINE)  # really stored otherwise
    conformed = conform_to_grid(ImageData(stored, stored_affine), tmp_path / "seg.nii.gz", SHAPE, IMAGE_AFFINE,
                                tmp_path / "img.nii.gz")
    assert np.array_equal(conformed.array, label) and np.allclose(conformed.affine, IMAGE_AFFINE)
    assert _world_values(conformed.array, conformed.affine) == _world_values(stored, stored_affine)
    record = conformed.meta["reoriented"]
    assert record["from_orientation"] == codes and record["to_orientation"] == "".join(nib.aff2axcodes(IMAGE_AFFINE))
    assert record["from_shape"] == list(stored.shape)


def _refusal(tmp_path, array, affine) -> str:
    with pytest.raises(ConversionError) as info:
        conform_to_grid(ImageData(array, affine), tmp_path / "seg.nii.gz", SHAPE, IMAGE_AFFINE, tmp_path / "img.nii.gz")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'seg.nii.gz'}: geometry differs from image img.nii.gz: ")
    assert "\n" not in message
    return message


def test_real_mismatches_are_refused_saying_which(tmp_path):
    label = _label()
    flipped, flipped_affine = _stored_in(label, IMAGE_AFFINE, "LPS")
    shifted = flipped_affine.copy()
    shifted[:3, 3] += (0.0, 0.0, 1.0)
    assert "orientation LPS vs LAS; voxel centres shifted by up to 1 mm" in _refusal(tmp_path, flipped, shifted)
    finer = flipped_affine.copy()
    finer[:3, 2] *= 0.5  # 1.25 mm slices: the same shape covers another extent
    assert "voxel size [0.8, 0.7, 1.25] vs [0.8, 0.7, 2.5] mm" in _refusal(tmp_path, flipped, finer)
    rotated = flipped_affine.copy()
    turn = np.array([[np.cos(0.05), -np.sin(0.05), 0], [np.sin(0.05), np.cos(0.05), 0], [0, 0, 1]])
    rotated[:3, :3] = turn @ rotated[:3, :3]
    assert "axes rotated by up to 2.86 deg" in _refusal(tmp_path, flipped, rotated)
    cropped = flipped[:, :, 1:]
    message = _refusal(tmp_path, cropped, flipped_affine)
    assert "orientation LPS vs LAS; shape (9, 7, 4) vs (9, 7, 5)" in message
    permuted, permuted_affine = _stored_in(label[:, :, 1:], IMAGE_AFFINE, "SPL")
    assert "shape (4, 7, 9) ((9, 7, 4) in the image's axis order) vs (9, 7, 5)" in _refusal(tmp_path, permuted,
                                                                                            permuted_affine)
    assert grid_reorientation(flipped.shape, shifted, SHAPE, IMAGE_AFFINE) is None
    # a flip that is only a world-axis sign change (other voxel centres) is not the same grid
    mirrored = np.diag([-1.0, -1.0, 1.0, 1.0]) @ IMAGE_AFFINE
    assert "voxel centres shifted" in _refusal(tmp_path, label, mirrored)


def test_labels_to_masks_reorients_a_real_itk_style_label(realdata, tmp_path):
    """TotalSegmentator's CT DICOM: our image (dcm2niix layout, LAS) and its label written back by
    an ITK-style tool in DICOM row order (LPS); every organ mask lands on the image grid."""
    from omnimedseg.converters.formats.dicom import read_series
    from omnimedseg.converters.formats.nifti import write_nifti

    folder = realdata("totalseg_ct_dicom")
    image = read_series(folder / "example_ct_dicom")
    write_nifti(image, tmp_path / "ct.nii.gz")
    seg = nib.load(folder / "example_seg_dicom.nii.gz")
    labels = np.asarray(seg.dataobj)
    assert seg.shape == image.array.shape and np.allclose(seg.affine, image.affine, atol=1e-3)
    stored, stored_affine = _stored_in(labels, seg.affine, "LPS")
    nib.save(nib.Nifti1Image(stored, stored_affine), tmp_path / "seg_itk.nii.gz")
    result = run_cli("formats", "labels-to-masks", tmp_path / "seg_itk.nii.gz", tmp_path / "masks",
                     "--image", tmp_path / "ct.nii.gz", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["reoriented"]["from_orientation"] == "LPS" and summary["reoriented"]["to_orientation"] == "LAS"
    for entry in summary["masks"]:
        mask = nib.load(tmp_path / "masks" / entry["file"])
        assert np.allclose(mask.affine, image.affine, atol=1e-4)
        assert np.array_equal(np.asarray(mask.dataobj).astype(bool), labels == entry["label"])
    assert len(summary["masks"]) == len(np.unique(labels)) - 1


PLUGIN = '''
    from omnimedseg.converters import Case, Converter, Source
    from omnimedseg.converters.formats.nifti import read_nifti


    class Flipped(Converter):
        def cases(self, raw_dir):
            for image in sorted((raw_dir / "imagesTr").glob("*.nii.gz")):
                yield Case(case_id=image.name[:-7], image=Source(image, read_nifti), split="train",
                           label=Source(raw_dir / "labelsTr" / image.name, read_nifti))
'''


def test_converter_core_reorients_and_records_it_in_provenance(tmp_path, monkeypatch):
    label = _label()
    stored, stored_affine = _stored_in(label, IMAGE_AFFINE, "SPL")

    def release(folder):
        work = folder / "work"
        for sub in ("imagesTr", "labelsTr"):
            (work / sub).mkdir(parents=True)
        nib.save(nib.Nifti1Image(np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE), IMAGE_AFFINE),
                 work / "imagesTr" / "case_1.nii.gz")
        nib.save(nib.Nifti1Image(stored, stored_affine), work / "labelsTr" / "case_1.nii.gz")
        with zipfile.ZipFile(folder / "flipped.zip", "w") as zf:
            for path in sorted(work.rglob("*.nii.gz")):
                zf.write(path, path.relative_to(work).as_posix())
        shutil.rmtree(work)

    cards = register_plugin_dataset(tmp_path, monkeypatch, "flipped3d", PLUGIN, "Flipped",
                                    {'modality = "ultrasound"': 'modality = "CT"', "dimensionality = 2": "dimensionality = 3",
                                     '1 = "fetal_head"': '1 = "liver"\n2 = "spleen"'},
                                    '[[source.files]]\nname = "flipped.zip"\nextract = true\n')
    work = tmp_path / "work"
    work.mkdir()
    out = check_converter("flipped3d", release, work, {"train": 1}, registry_dirs=(str(cards),))
    for value, name in ((1, "liver"), (2, "spleen")):
        mask = nib.load(out / "masks" / "case_1" / f"{name}.nii.gz")
        assert np.allclose(mask.affine, IMAGE_AFFINE, atol=1e-4)
        assert np.array_equal(np.asarray(mask.dataobj).astype(bool), label == value)
    provenance = json.loads((out / "provenance.json").read_text())
    records = {rel: r for rel, r in provenance["files"].items() if rel.startswith("masks/")}
    assert sorted(records) == ["masks/case_1/liver.nii.gz", "masks/case_1/spleen.nii.gz"]
    assert all(r["reoriented"]["from_orientation"] == "SPL" for r in records.values())
    assert not any("reoriented" in r for rel, r in provenance["files"].items() if rel not in records)
