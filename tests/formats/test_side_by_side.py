"""Side-by-side image + colour label files (OIMHS, AMD-SD) split at width / 2."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from omnimedseg.converters.formats.side_by_side import read_half, read_half_palette_class, snap_channels
from omnimedseg.errors import ConversionError

PALETTE = {"choroid": [255, 255, 0], "retina": [0, 255, 0], "macular_hole": "#ff0000"}


def _scan(tmp_path, width=20, smooth=False):
    image = np.repeat(np.arange(12 * width, dtype=np.uint8).reshape(12, width)[..., None], 3, axis=2)
    label = np.zeros((12, width, 3), np.uint8)
    label[0:3] = (255, 255, 0)
    label[4:8, 2:9] = (0, 255, 0)
    label[9, 3] = (255, 0, 0)
    if smooth:
        label = np.where(label == 255, 247, 6).astype(np.uint8)
    path = tmp_path / "0001.png"
    Image.fromarray(np.concatenate([image, label], axis=1)).save(path)
    return path, image, label


def test_halves_are_image_and_label(tmp_path):
    path, image, label = _scan(tmp_path)
    assert np.array_equal(read_half(path).array, image)
    assert np.array_equal(read_half(path, half="right").array, label)
    hole = read_half_palette_class(path, palette=PALETTE, class_name="macular_hole").array
    assert hole.dtype == bool and np.argwhere(hole).tolist() == [[9, 3]]
    retina = read_half_palette_class(path, palette=PALETTE, class_name="retina").array
    assert retina.sum() == 28 and retina[4:8, 2:9].all()


def test_smoothed_primaries_need_snap(tmp_path):
    path, _, label = _scan(tmp_path, smooth=True)
    with pytest.raises(ConversionError, match=r"0001\.png \(right half\): .* not in the palette"):
        read_half_palette_class(path, palette=PALETTE, class_name="retina")
    retina = read_half_palette_class(path, palette=PALETTE, class_name="retina", snap=True).array
    assert retina.sum() == 28
    assert snap_channels(np.array([0, 127, 128, 255], np.uint8)).tolist() == [0, 0, 255, 255]


def test_odd_width_and_bad_half(tmp_path):
    path = tmp_path / "odd.png"
    Image.fromarray(np.zeros((4, 7, 3), np.uint8)).save(path)
    with pytest.raises(ConversionError, match=r"odd\.png: width 7 is odd"):
        read_half(path)
    with pytest.raises(ConversionError, match="half='top'"):
        read_half(path, half="top")
