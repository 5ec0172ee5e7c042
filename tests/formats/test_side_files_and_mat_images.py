"""Shared operations added for the 3D radiology batch: macOS debris in listings, documented label ids,
2D MATLAB images (v7.3 transposed storage) and Decathlon-style dataset.json checks."""

from __future__ import annotations

import shutil
from functools import partial

import h5py
import numpy as np
import pytest
import scipy.io

from omnimedseg.converters._base import Source
from omnimedseg.converters.formats.dataset_json import (
    check_channel_names,
    check_label_names,
    listed_cases,
    read_dataset_json,
    release_path,
)
from omnimedseg.converters.formats.listing import is_macos_debris, list_files
from omnimedseg.converters.formats.volumes import read_label_class, read_mat_array, read_mat_image
from omnimedseg.errors import ConversionError


# ------------------------------------------------------------------ listing without macOS debris

def test_list_files_leaves_out_appledouble_macosx_and_ds_store(tmp_path):
    for name in ("imagesTr/la_003.nii.gz", "imagesTr/._la_003.nii.gz", "imagesTr/.DS_Store",
                 "__MACOSX/imagesTr/._la_003.nii.gz", "imagesTr/la_004.nii.gz"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_files(tmp_path / "imagesTr", "*.nii.gz")] == ["la_003.nii.gz", "la_004.nii.gz"]
    assert [p.relative_to(tmp_path).as_posix() for p in list_files(tmp_path, "**/*.nii.gz")] == \
        ["imagesTr/la_003.nii.gz", "imagesTr/la_004.nii.gz"]
    assert list_files(tmp_path / "missing", "*") == []
    assert is_macos_debris("__MACOSX/a/b.png") and is_macos_debris("x/._b.png") and not is_macos_debris("x/b.png")


# ------------------------------------------------------------------ documented label ids (real label map)

def test_read_label_class_refuses_values_outside_the_documented_ids(realdata, tmp_path):
    seg = tmp_path / "example_seg.nii.gz"
    shutil.copy(realdata("totalseg_nifti") / "example_seg.nii.gz", seg)  # real uint8 map, ids up to 117
    liver = read_label_class(seg, values=(5,), known=range(1, 118))
    assert liver.array.dtype == bool and liver.array.any()
    with pytest.raises(ConversionError, match=r"label values \[52, 63, 64, .*\] are not among .* expected only 1-50"):
        read_label_class(seg, values=(5,), known=range(1, 51))


# ------------------------------------------------------------------ 2D MATLAB images

MATLAB_IMAGE = np.arange(15, dtype=np.int16).reshape(3, 5)  # A(row, col) as MATLAB shows it: 3 rows, 5 columns


def _write_v73(path, fields: dict):
    """MATLAB -v7.3: HDF5 with a 512-byte user block; arrays stored column-major (h5py sees A.T)."""
    with h5py.File(path, "w", userblock_size=512) as f:
        group = f.create_group("s")
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        for name, (array, matlab_class) in fields.items():
            ds = group.create_dataset(name, data=np.asarray(array).T)
            ds.attrs["MATLAB_class"] = np.bytes_(matlab_class)
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116, b" "))


def test_read_mat_image_gives_matlab_rows_for_v73_and_v5(tmp_path):
    mask = np.zeros((3, 5), np.uint8)
    mask[0, 3:] = 1  # top right corner: a transposed read would put it bottom left
    _write_v73(tmp_path / "a.mat", {"image": (MATLAB_IMAGE, "int16"), "mask": (mask, "logical"),
                                    "label": (np.array([[2.0]]), "double")})
    scipy.io.savemat(tmp_path / "b.mat", {"s": {"image": MATLAB_IMAGE, "mask": mask, "label": 2.0}})
    for name in ("a.mat", "b.mat"):
        image = read_mat_image(tmp_path / name, variable="s/image")
        assert image.array.dtype == np.uint16 and np.array_equal(image.array, MATLAB_IMAGE), name
        read = Source(tmp_path / name, partial(read_mat_image, variable="s/mask", binary=True, only_if={"s/label": 2}))
        assert np.array_equal(read.load().array, mask.astype(bool)), name
        other = read_mat_image(tmp_path / name, variable="s/mask", binary=True, only_if={"s/label": 3})
        assert other.array.shape == (3, 5) and not other.array.any()


def test_read_mat_image_errors_name_the_problem(tmp_path):
    _write_v73(tmp_path / "a.mat", {"image": (MATLAB_IMAGE - 5, "int16"), "cube": (np.zeros((2, 2, 2)), "double"),
                                    "mask": (MATLAB_IMAGE, "int16")})
    with pytest.raises(ConversionError, match=r"a\.mat: s/image holds values -5\.\.9; expected 0\.\.65535"):
        read_mat_image(tmp_path / "a.mat", variable="s/image")
    with pytest.raises(ConversionError, match=r"s/cube has shape \(2, 2, 2\); expected a 2D image"):
        read_mat_image(tmp_path / "a.mat", variable="s/cube")
    with pytest.raises(ConversionError, match=r"s/mask: expected a binary mask"):
        read_mat_image(tmp_path / "a.mat", variable="s/mask", binary=True)
    with pytest.raises(ConversionError, match=r"no variable 's/nothing'"):
        read_mat_image(tmp_path / "a.mat", variable="s/nothing")


def test_read_mat_array_reads_v5_fold_indices(tmp_path):
    scipy.io.savemat(tmp_path / "cvind.mat", {"cvind": np.array([[1.0], [5.0], [3.0]])}, do_compression=True)
    assert read_mat_array(tmp_path / "cvind.mat", "cvind").ravel().tolist() == [1.0, 5.0, 3.0]


# ------------------------------------------------------------------ dataset.json

def test_dataset_json_labels_channels_and_case_paths(tmp_path):
    path = tmp_path / "dataset.json"
    path.write_text('\ufeff{"labels": {"0": "background", "1": "PZ", "2": "TZ"}, "modality": {"0": "T2", "1": "ADC"},'
                    ' "training": [{"image": "./imagesTr/p_00.nii.gz", "label": "./labelsTr/p_00.nii.gz"}],'
                    ' "test": ["./imagesTs/p_01.nii.gz"]}', encoding="utf-8")
    data = read_dataset_json(path)
    check_label_names(path, data["labels"], {1: "peripheral_zone", 2: "transition_zone"},
                      {"pz": "peripheral_zone", "tz": "transition_zone"})
    with pytest.raises(ConversionError, match=r"labels \{1: 'pz', 2: 'tz'\} map to .* card expects"):
        check_label_names(path, data["labels"], {1: "peripheral_zone", 2: "transition_zone"})
    check_channel_names(path, data["modality"], ["t2", "ADC"])  # sequence names compared without case
    with pytest.raises(ConversionError, match=r"card expects \['ADC', 'T2'\] in that order"):
        check_channel_names(path, data["modality"], ["ADC", "T2"])
    assert listed_cases(path, data, "test") == [{"image": "./imagesTs/p_01.nii.gz"}]
    assert release_path(tmp_path, "./imagesTr/p_00.nii.gz") == tmp_path / "imagesTr" / "p_00.nii.gz"
    with pytest.raises(ConversionError, match="leaves the release folder"):
        release_path(tmp_path, "../secret.nii.gz")
    with pytest.raises(ConversionError, match=r"no 'validation' list"):
        listed_cases(path, data, "validation")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ConversionError, match=r"broken\.json: not valid JSON"):
        read_dataset_json(tmp_path / "broken.json")
