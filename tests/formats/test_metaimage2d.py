"""2D MetaImage reader: one slice, channels as slices, repeated components, (x, y) vs (row, col)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from omnimedseg.converters.formats.metaimage2d import read_metaimage_2d, read_metaimage_2d_labels
from omnimedseg.errors import ConversionError

ROWS_COLS = (5, 7)


def _write(array, path, spacing=None, vector=False):
    image = sitk.GetImageFromArray(array, isVector=vector)
    if spacing:
        image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def test_one_slice_volume_is_the_2d_image_with_row_col_spacing(tmp_path):
    array = np.arange(35, dtype=np.int16).reshape(1, *ROWS_COLS)
    image = read_metaimage_2d(_write(array, tmp_path / "a.mha", (0.5, 0.75, 2.0)))
    assert np.array_equal(image.array, array[0]) and image.array.dtype == np.int16
    assert image.spacing == (0.75, 0.5)  # (row, col) = (y, x)
    assert image.meta["size_xyz"] == [7, 5, 1]


def test_channels_as_slices_only_when_declared(tmp_path):
    grey = np.arange(35, dtype=np.uint8).reshape(ROWS_COLS)
    colour = _write(np.stack([grey, 255 - grey, grey // 2]), tmp_path / "c.mha")
    with pytest.raises(ConversionError, match=r"c\.mha: 3D image of 7 x 5 x 3 .*slices_are_channels=True"):
        read_metaimage_2d(colour)
    rgb = read_metaimage_2d(colour, slices_are_channels=True).array
    assert rgb.shape == ROWS_COLS + (3,) and np.array_equal(rgb[..., 1], 255 - grey)
    same = _write(np.stack([grey] * 3), tmp_path / "g.mha")
    assert np.array_equal(read_metaimage_2d(same, slices_are_channels=True).array, grey)


def test_repeated_vector_components_collapse_to_grey(tmp_path):
    grey = np.arange(35, dtype=np.uint8).reshape(ROWS_COLS)
    path = _write(np.stack([grey] * 3, axis=-1), tmp_path / "v.mha", vector=True)
    assert np.array_equal(read_metaimage_2d(path).array, grey)


def test_label_maps_integral_and_single_channel(tmp_path):
    labels = np.zeros(ROWS_COLS, np.float32)
    labels[1:3, 2:6] = 2.0
    read = read_metaimage_2d_labels(_write(labels, tmp_path / "l.mha"))
    assert read.array.dtype == np.uint8 and np.array_equal(read.array, labels.astype(np.uint8))
    labels[0, 0] = 0.5
    with pytest.raises(ConversionError, match="non-integral label values"):
        read_metaimage_2d_labels(_write(labels, tmp_path / "f.mha"))


def test_real_2d_mha_pair(tmp_path, realdata):
    real = realdata("itkelastix_ct2d_mha") / "examples" / "data"
    for name in ("CT_2D_head_fixed.mha", "CT_2D_head_fixed_mask.mha"):
        shutil.copy(real / name, tmp_path / name)
    image = read_metaimage_2d(tmp_path / "CT_2D_head_fixed.mha")
    mask = read_metaimage_2d_labels(tmp_path / "CT_2D_head_fixed_mask.mha")
    assert image.array.shape == (256, 256) and image.array.dtype == np.int16 and image.spacing == (1.0, 1.0)
    assert image.array.min() == -2 and image.array.max() == 217
    assert set(np.unique(mask.array).tolist()) == {0, 1}


def test_label_area_order_guards_undocumented_label_meanings(tmp_path):
    labels = np.zeros(ROWS_COLS, np.uint8)
    labels[0, 0:2] = 1  # small structure
    labels[2:5, 1:6] = 2  # large structure
    path = _write(labels, tmp_path / "ok.mha")
    assert np.array_equal(read_metaimage_2d_labels(path, area_order=(2, 1)).array, labels)
    swapped = _write(np.where(labels > 0, 3 - labels, 0).astype(np.uint8), tmp_path / "swapped.mha")
    with pytest.raises(ConversionError, match=r"swapped\.mha: label 1 covers 15 pixels, more than label 2 \(2\)"):
        read_metaimage_2d_labels(swapped, area_order=(2, 1))
    only_small = _write((labels == 1).astype(np.uint8), tmp_path / "one.mha")  # one structure: nothing to compare
    assert read_metaimage_2d_labels(only_small, area_order=(2, 1)).array.sum() == 2
