"""Volume readers and label maps: values and affines checked against independent readers.

Fixtures are generated with nibabel, SimpleITK, h5py and scipy.io; real files come from
``../shared/realdata`` through the ``realdata`` fixture. ITK's LPS affines are compared
to ours after negating the first two rows (LPS -> RAS).
"""

from __future__ import annotations

import functools
import pickle

import h5py
import nibabel as nib
import numpy as np
import pytest
import scipy.io
import SimpleITK as sitk
from PIL import Image

from omnimedseg.converters._base import Source
from omnimedseg.converters.formats import volumes
from omnimedseg.converters.formats.geometry import (
    axcodes,
    check_binary,
    check_same_geometry,
    check_slice_count,
    geometry_mismatch,
)
from omnimedseg.converters.formats.image2d import read_image
from omnimedseg.converters.formats.volumes import (
    instances_to_semantic,
    labels_to_masks,
    read_geometry,
    read_hdf5_volume,
    read_instance_mask,
    read_label_class,
    read_label_volume,
    read_mat_volume,
    read_volume,
    stack_slice_masks,
)
from omnimedseg.errors import ConversionError

TOL = 1e-4  # mm
FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def _sitk_ras(img: sitk.Image) -> np.ndarray:
    """Affine from SimpleITK's own index->physical mapping (independent of our formula)."""
    origin = np.array(img.TransformIndexToPhysicalPoint((0, 0, 0)))
    cols = [np.array(img.TransformContinuousIndexToPhysicalPoint(tuple(float(v == a) for v in range(3)))) - origin
            for a in range(3)]
    lps = np.eye(4)
    lps[:3, :3] = np.stack(cols, axis=1)
    lps[:3, 3] = origin
    return FLIP @ lps


def _rotation(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1.0]])


@pytest.fixture
def oblique_kji():
    rng = np.random.default_rng(0)
    return rng.integers(0, 5, size=(4, 5, 6)).astype(np.int16)  # (k, j, i) as SimpleITK stores


def _sitk_image(array_kji, spacing=(0.7, 0.8, 2.5), origin=(10.0, -20.0, 30.0), deg=30.0):
    img = sitk.GetImageFromArray(array_kji)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    direction = _rotation(deg) @ np.diag([1.0, -1.0, 1.0])  # rotated and y flipped
    img.SetDirection(direction.ravel().tolist())
    return img


# ------------------------------------------------------------------ NIfTI

def test_nifti_lps_stored_keeps_voxels_and_affine(tmp_path):
    array = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    affine = np.array([[-3, 0, 0, 168.6], [0, -3, 0, 166.36], [0, 0, 3, 28.99], [0, 0, 0, 1.0]])
    nib.save(nib.Nifti1Image(array, affine), tmp_path / "lps.nii.gz")
    image = read_volume(tmp_path / "lps.nii.gz")
    assert np.array_equal(image.array, array) and image.array.dtype == np.int16
    assert np.abs(image.affine - affine).max() < TOL
    assert axcodes(image.affine) == "LPS" and image.spacing == (3.0, 3.0, 3.0)


def test_nifti_scaled_integer_labels_become_integers(tmp_path):
    raw = np.array([[[0, 1], [2, 3]]], dtype=np.int16)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(2.0, 1.0)
    img.set_data_dtype(np.int16)
    nib.save(img, tmp_path / "scaled.nii")
    label = read_label_volume(tmp_path / "scaled.nii")
    assert label.array.dtype.kind in "iu"
    assert np.array_equal(label.array, raw * 2 + 1)


def test_non_integral_float_labels_are_refused(tmp_path):
    nib.save(nib.Nifti1Image(np.array([[[0.0, 1.5]]], dtype=np.float32), np.eye(4)), tmp_path / "f.nii.gz")
    with pytest.raises(ConversionError, match=r"f\.nii\.gz: non-integral label values \[1\.5\]"):
        read_label_volume(tmp_path / "f.nii.gz")


def test_integral_float_labels_are_accepted(tmp_path):
    arr = np.array([[[0.0, 1.0], [7.0, 300.0]]], dtype=np.float32)
    nib.save(nib.Nifti1Image(arr, np.eye(4)), tmp_path / "f.nii.gz")
    label = read_label_volume(tmp_path / "f.nii.gz")
    assert label.array.dtype == np.int16 and label.array.tolist() == [[[0, 1], [7, 300]]]


# ------------------------------------------------------------------ MHA / MHD / NRRD

@pytest.mark.parametrize("name", ["vol.mha", "vol.mhd", "vol.nrrd"])
def test_itk_containers_array_and_affine(tmp_path, oblique_kji, name):
    img = _sitk_image(oblique_kji)
    sitk.WriteImage(img, str(tmp_path / name))
    if name.endswith(".mhd"):
        assert any(p.suffix in (".raw", ".zraw") for p in tmp_path.iterdir())
    image = read_volume(tmp_path / name)
    assert np.array_equal(image.array, oblique_kji.transpose(2, 1, 0))
    expected = _sitk_ras(img)
    assert np.abs(image.affine - expected).max() < TOL
    # independent world check: voxel (i, j, k) -> SimpleITK's physical point, LPS -> RAS
    ijk = (3, 1, 2)
    lps = np.array(img.TransformIndexToPhysicalPoint(ijk))
    assert np.abs((image.affine @ [*ijk, 1])[:3] - lps * [-1, -1, 1]).max() < TOL
    assert read_geometry(tmp_path / name)[0] == (6, 5, 4)
    assert np.abs(read_geometry(tmp_path / name)[1] - image.affine).max() < TOL


def test_itk_roundtrip_through_nifti_matches_nibabel(tmp_path, oblique_kji):
    """Our MHA affine equals nibabel's affine of the same image written as NIfTI by SimpleITK."""
    img = _sitk_image(oblique_kji)
    sitk.WriteImage(img, str(tmp_path / "v.mha"))
    sitk.WriteImage(img, str(tmp_path / "v.nii.gz"))
    ours = read_volume(tmp_path / "v.mha")
    theirs = nib.load(str(tmp_path / "v.nii.gz"))
    assert np.abs(ours.affine - theirs.affine).max() < TOL
    assert np.array_equal(ours.array, np.asanyarray(theirs.dataobj))


def test_missing_mhd_data_file_is_one_line_error(tmp_path, oblique_kji):
    sitk.WriteImage(_sitk_image(oblique_kji), str(tmp_path / "v.mhd"))
    for p in tmp_path.iterdir():
        if p.suffix != ".mhd":
            p.unlink()
    with pytest.raises(ConversionError, match=r"v\.mhd: not readable by SimpleITK") as info:
        read_volume(tmp_path / "v.mhd")
    assert "\n" not in str(info.value)


def test_float_nrrd_labels(tmp_path):
    arr = np.zeros((2, 3, 4), dtype=np.float32)
    arr[0, 1, 2] = 3.0
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / "l.nrrd"))
    label = read_label_volume(tmp_path / "l.nrrd")
    assert label.array.dtype == np.uint8 and label.array[2, 1, 0] == 3 and label.array.sum() == 3


def test_real_nrrd_against_pynrrd_and_simpleitk(realdata):
    nrrd = pytest.importorskip("nrrd")
    folder = realdata("pyradiomics_nrrd")
    for name in ("brain1_image.nrrd", "brain1_label.nrrd", "breast1_label.nrrd"):
        ours = read_volume(folder / name)
        data, header = nrrd.read(str(folder / name))
        assert np.array_equal(ours.array, data)
        assert header["space"] == "left-posterior-superior"
        lps = np.eye(4)
        lps[:3, :3] = np.asarray(header["space directions"], dtype=float).T
        lps[:3, 3] = header["space origin"]
        assert np.abs(ours.affine - FLIP @ lps).max() < TOL
        assert np.abs(ours.affine - _sitk_ras(sitk.ReadImage(str(folder / name)))).max() < TOL
    brain = read_volume(folder / "brain1_image.nrrd")
    assert axcodes(brain.affine) == "LAS"  # LPS frame with y flipped: the flip is kept in the affine
    assert brain.affine[1, 1] == pytest.approx(0.78125)
    label = read_label_volume(folder / "brain1_label.nrrd")
    assert label.array.dtype == np.int32 and set(np.unique(label.array).tolist()) == {0, 1}
    check_same_geometry(folder / "brain1_label.nrrd", label.array.shape, label.affine,
                        folder / "brain1_image.nrrd", brain.array.shape, brain.affine)


def test_real_nifti_ct_and_lps_mr_against_simpleitk(realdata):
    folder = realdata("totalseg_nifti")
    for image_name, seg_name, codes, n_labels in (("example_ct_sm.nii.gz", "example_seg.nii.gz", "RAS", 42),
                                                  ("example_mr_sm.nii.gz", "example_seg_mr.nii.gz", "LPS", 24)):
        image, seg = read_volume(folder / image_name), read_label_volume(folder / seg_name)
        for ours, name in ((image, image_name), (seg, seg_name)):
            itk = sitk.ReadImage(str(folder / name))
            assert np.array_equal(ours.array, sitk.GetArrayFromImage(itk).transpose(2, 1, 0))
            assert np.abs(ours.affine - _sitk_ras(itk)).max() < TOL
        assert axcodes(image.affine) == codes and np.abs(image.affine - seg.affine).max() < TOL
        assert np.unique(seg.array).size == n_labels
    mr = read_label_volume(folder / "example_seg_mr.nii.gz")
    assert sorted(np.unique(mr.array).tolist()) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 14, 15, 19, 20, 21, 23,
                                                    24, 25, 46, 47, 48, 49]


def test_real_2d_mha(realdata):
    folder = realdata("itkelastix_ct2d_mha") / "examples" / "data"
    image = read_volume(folder / "CT_2D_head_fixed.mha")
    mask = read_label_volume(folder / "CT_2D_head_fixed_mask.mha")
    assert image.array.shape == (256, 256) and image.affine is None and image.spacing == (1.0, 1.0)
    assert image.array.dtype == np.int16 and int(image.array.min()) == -2 and int(image.array.max()) == 217
    assert set(np.unique(mask.array).tolist()) == {0, 1}
    assert np.array_equal(image.array, sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "CT_2D_head_fixed.mha"))))


# ------------------------------------------------------------------ label maps -> masks

def test_labels_to_masks_with_card_classes_and_unknown_label():
    labels = np.array([[[0, 1, 2, 2]]], dtype=np.uint8)
    masks = labels_to_masks(labels, {1: "liver", 2: "spleen", 3: "kidney"}, "x.nii.gz")
    assert masks["spleen"].tolist() == [[[False, False, True, True]]] and not masks["kidney"].any()
    with pytest.raises(ConversionError, match=r"x\.nii\.gz: label values \[2\] have no class"):
        labels_to_masks(labels, {1: "liver"}, "x.nii.gz")
    assert sorted(labels_to_masks(labels, None, "x")) == ["label_1", "label_2"]


def test_read_label_class_merges_ids(tmp_path):
    arr = np.array([[[0, 1, 2, 3]]], dtype=np.uint8)
    nib.save(nib.Nifti1Image(arr, np.eye(4)), tmp_path / "l.nii.gz")
    reader = functools.partial(read_label_class, values=(2, 3))
    mask = Source(tmp_path / "l.nii.gz", pickle.loads(pickle.dumps(reader))).load()
    assert mask.array.dtype == bool and mask.array.tolist() == [[[False, False, True, True]]]


def test_instances_to_semantic_mapping():
    inst = np.array([[0, 5, 5], [9, 0, 12]], dtype=np.uint16)
    assert instances_to_semantic(inst).tolist() == [[0, 1, 1], [1, 0, 1]]
    assert instances_to_semantic(inst, {5: 2, 9: 1, 12: 2}).tolist() == [[0, 2, 2], [1, 0, 2]]
    with pytest.raises(ConversionError, match=r"instance ids \[12\] have no class"):
        instances_to_semantic(inst, {5: 2, 9: 1}, path="i.tif")


def test_real_instance_tiff_to_semantic(realdata):
    path = realdata("stardist_dsb2018_tif") / "stardist" / "data" / "images" / "mask2d.tif"
    raw = read_image(path).array
    assert raw.dtype == np.uint16 and np.unique(raw).size == 126
    mask = read_instance_mask(path)
    assert mask.array.dtype == bool and np.array_equal(mask.array, raw > 0)


# ------------------------------------------------------------------ HDF5 / MATLAB

def _volume():
    return np.arange(2 * 3 * 4, dtype=np.int32).reshape(2, 3, 4)  # (i, j, k)


def test_hdf5_axes_and_geometry(tmp_path):
    vol = _volume()
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["img"] = vol.transpose(2, 1, 0)  # stored (k, j, i)
        f["mask"] = (vol % 2).astype(np.uint8)
        f["bad"] = (vol % 3).astype(np.uint8)
    out = read_hdf5_volume(tmp_path / "v.h5", dataset="img", axes="kji", spacing=(0.5, 0.6, 2.0))
    assert np.array_equal(out.array, vol) and np.allclose(out.affine, np.diag([0.5, 0.6, 2.0, 1.0]))
    affine = np.diag([-1.0, -1.0, 3.0, 1.0])
    nib.save(nib.Nifti1Image(np.zeros(vol.shape, np.int16), affine), tmp_path / "ref.nii.gz")
    reader = pickle.loads(pickle.dumps(functools.partial(read_hdf5_volume, dataset="mask", binary=True)))
    mask = Source((tmp_path / "v.h5", tmp_path / "ref.nii.gz"), reader).load()
    assert mask.array.dtype == bool and np.array_equal(mask.array, vol % 2 == 1)
    assert np.abs(mask.affine - affine).max() < TOL
    with pytest.raises(ConversionError, match=r"v\.h5: expected a binary mask \(0/1\), found values \[0, 1, 2\]"):
        read_hdf5_volume(tmp_path / "v.h5", dataset="bad", spacing=(1, 1, 1), binary=True)
    with pytest.raises(ConversionError, match="no dataset 'nope'"):
        read_hdf5_volume(tmp_path / "v.h5", dataset="nope", spacing=(1, 1, 1))
    with pytest.raises(ConversionError, match="exactly one of"):
        read_hdf5_volume(tmp_path / "v.h5", dataset="img")
    with pytest.raises(ConversionError, match="differs from reference"):
        read_hdf5_volume(tmp_path / "v.h5", tmp_path / "ref.nii.gz", dataset="img")  # still (k, j, i)


def _write_mat73(path, variables: dict) -> None:
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 with a 512-byte user block, column-major data."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in variables.items():
            value = np.asarray(value)
            stored = value.astype(np.uint8) if value.dtype == bool else value
            f.create_dataset(name, data=stored.T)  # column-major: h5py sees the axes reversed
            f[name].attrs["MATLAB_class"] = np.bytes_("logical" if value.dtype == bool else "double")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2026 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(116) + b"\x00" * 8 + b"\x00\x02IM")


def test_mat_v5_and_v73_give_the_same_matlab_order(tmp_path):
    vol = _volume().astype(np.float64)
    scipy.io.savemat(tmp_path / "v5.mat", {"seg": vol, "s": {"mask": vol > 10}})
    _write_mat73(tmp_path / "v73.mat", {"seg": vol, "mask": vol > 10})
    v5 = read_mat_volume(tmp_path / "v5.mat", variable="seg", spacing=(1, 1, 1))
    v73 = read_mat_volume(tmp_path / "v73.mat", variable="seg", spacing=(1, 1, 1))
    assert np.array_equal(v5.array, vol) and np.array_equal(v73.array, vol)
    m5 = read_mat_volume(tmp_path / "v5.mat", variable="s/mask", spacing=(1, 1, 1), binary=True)
    m73 = read_mat_volume(tmp_path / "v73.mat", variable="mask", spacing=(1, 1, 1), binary=True)
    assert m5.array.dtype == bool and np.array_equal(m5.array, vol > 10) and np.array_equal(m73.array, vol > 10)
    with pytest.raises(ConversionError, match=r"v73\.mat: no variable 'nope'"):
        read_mat_volume(tmp_path / "v73.mat", variable="nope", spacing=(1, 1, 1))


# ------------------------------------------------------------------ stacked slices

def test_stack_slice_masks_on_reference_grid(tmp_path):
    rng = np.random.default_rng(1)
    vol = rng.random((5, 7, 3)) > 0.5
    affine = np.array([[0, -0.8, 0, 5], [0.9, 0, 0, -3], [0, 0, 2.5, 7], [0, 0, 0, 1.0]])
    nib.save(nib.Nifti1Image(np.zeros(vol.shape, np.int16), affine), tmp_path / "img.nii.gz")
    slices = []
    for k in range(3):
        Image.fromarray((vol[:, :, k] * 255).astype(np.uint8)).save(tmp_path / f"s{k}.png")
        Image.fromarray((vol[:, :, k].T * 255).astype(np.uint8)).save(tmp_path / f"t{k}.png")
        slices.append(tmp_path / f"s{k}.png")
    stacked = stack_slice_masks(tmp_path / "img.nii.gz", *slices)
    assert stacked.array.dtype == bool and np.array_equal(stacked.array, vol)
    assert np.abs(stacked.affine - affine).max() < TOL
    transposed = stack_slice_masks(tmp_path / "img.nii.gz", *[tmp_path / f"t{k}.png" for k in range(3)],
                                   transpose=True)
    assert np.array_equal(transposed.array, vol)
    with pytest.raises(ConversionError, match=r"2 slice file\(s\) for a volume of 3 slices"):
        stack_slice_masks(tmp_path / "img.nii.gz", *slices[:2])
    with pytest.raises(ConversionError, match=r"t0\.png: slice shape \(7, 5\) differs"):
        stack_slice_masks(tmp_path / "img.nii.gz", *[tmp_path / f"t{k}.png" for k in range(3)])


# ------------------------------------------------------------------ geometry checks

def test_geometry_mismatch_names_orientation_and_file(tmp_path):
    ras = np.diag([3.0, 3.0, 3.0, 1.0])
    lps = FLIP @ ras
    assert geometry_mismatch((2, 2, 2), ras, (2, 2, 2), ras + 5e-4) is None
    assert "shape (2, 2, 2) vs (2, 2, 3)" in geometry_mismatch((2, 2, 2), ras, (2, 2, 3), ras)
    with pytest.raises(ConversionError) as info:
        check_same_geometry(tmp_path / "seg.nii.gz", (2, 2, 2), lps, tmp_path / "img.nii.gz", (2, 2, 2), ras)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "seg.nii.gz")) and "img.nii.gz" in message
    assert "orientation LPS vs RAS" in message and "\n" not in message
    assert check_binary(np.array([0, 1, 1], np.uint8), "m").dtype == bool
    with pytest.raises(ConversionError, match="found values"):
        check_binary(np.array([0, 255]), "m.png")
    with pytest.raises(ConversionError, match="4 slice file"):
        check_slice_count(4, 5, "x")


def test_core_refuses_label_on_another_grid(tmp_path):
    """A label volume whose affine differs from its image: the core's check names the file."""
    from types import SimpleNamespace

    from omnimedseg.converters._base import Case
    from omnimedseg.converters._run import iter_reference_masks

    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)), tmp_path / "img.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.diag([1, 1, 2.0, 1])), tmp_path / "seg.nii.gz")
    image = read_volume(tmp_path / "img.nii.gz")
    card = SimpleNamespace(id="t", dimensionality=3, class_names=["c1"], reference_rater=None)
    case = Case("c", Source(tmp_path / "img.nii.gz", read_volume), "train",
                label=Source(tmp_path / "seg.nii.gz", read_label_volume))

    def on_grid(data, path):
        check_same_geometry(path, data.array.shape, data.affine, tmp_path / "img.nii.gz", image.array.shape,
                            image.affine)

    with pytest.raises(ConversionError, match=r"seg\.nii\.gz: geometry differs from image img\.nii\.gz: affine differs by 1 mm"):
        list(iter_reference_masks(card, case, {1: "c1"}, on_grid, None))


def test_readers_pickle():
    for reader in (read_volume, read_label_volume, functools.partial(read_mat_volume, variable="x", spacing=(1, 1, 1)),
                   functools.partial(stack_slice_masks, transpose=True)):
        assert pickle.loads(pickle.dumps(reader))
    assert volumes.read_volume.__module__ == "omnimedseg.converters.formats.volumes"


def test_real_lps_pair_through_the_core_label_split(realdata):
    """The readers plug into the core: an LPS-stored label map split by the core equals label == id."""
    from types import SimpleNamespace

    from omnimedseg.converters._base import Case
    from omnimedseg.converters._run import iter_reference_masks

    folder = realdata("totalseg_nifti")
    seg = nib.load(str(folder / "example_seg_mr.nii.gz"))
    labels = np.asanyarray(seg.dataobj)
    values = {int(v): f"c{int(v)}" for v in np.unique(labels) if v}
    card = SimpleNamespace(id="t", dimensionality=3, class_names=list(values.values()), reference_rater=None)
    case = Case("mr", Source(folder / "example_mr_sm.nii.gz", read_volume), "train",
                label=Source(folder / "example_seg_mr.nii.gz", read_label_volume))
    masks = {name: mask.array for name, mask, _ in iter_reference_masks(card, case, values, lambda d, p: None, None)}
    assert len(masks) == 23
    for value, name in values.items():
        assert np.array_equal(masks[name], labels == value)
