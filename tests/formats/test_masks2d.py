"""Lossy JPEG masks by the documented threshold; constant alpha dropped; 16-bit images kept."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from omnimedseg.converters.formats.image2d import read_image
from omnimedseg.converters.formats.masks2d import (
    LOSSY_MASK_THRESHOLD,
    drop_constant_alpha,
    read_image_without_alpha,
    read_lossy_mask,
)
from omnimedseg.errors import ConversionError


def _disc(shape=(64, 80), centre=(30, 40), radius=18):
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius ** 2


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_jpeg_mask_threshold_keeps_the_drawn_boundary(tmp_path, mode):
    truth = _disc()
    path = tmp_path / "mask.jpg"
    Image.fromarray((truth * 255).astype(np.uint8)).convert(mode).save(path, quality=75)
    raw = np.asarray(Image.open(path))
    assert len(np.unique(raw)) > 2  # really lossy: the edge holds intermediate values
    mask = read_lossy_mask(path).array
    assert mask.dtype == bool
    assert (mask != truth).sum() <= 0.01 * truth.size  # JPEG moves at most a few edge pixels
    from scipy import ndimage

    inner, outer = ndimage.binary_erosion(truth, iterations=2), ~ndimage.binary_dilation(truth, iterations=2)
    assert mask[inner].all() and not mask[outer].any()
    assert LOSSY_MASK_THRESHOLD == 128


def test_rgb_jpeg_mask_with_drifting_channels(tmp_path):
    # Kvasir/HyperKvasir-style RGB JPEG masks: channels differ by a few levels (chroma noise).
    truth = _disc()
    rgb = np.repeat((truth * 255).astype(np.uint8)[..., None], 3, axis=2)
    rgb[..., 0] = np.where(truth, 250, 4)
    Image.fromarray(rgb).save(tmp_path / "m.jpg", quality=90)
    assert np.array_equal(read_lossy_mask(tmp_path / "m.jpg").array[30], truth[30])


def test_mid_grey_file_is_not_a_lossy_mask(tmp_path):
    grey = np.tile(np.linspace(0, 255, 80, dtype=np.uint8), (64, 1))
    Image.fromarray(grey).save(tmp_path / "photo.jpg")
    with pytest.raises(ConversionError, match=r"photo\.jpg: .* mid-grey"):
        read_lossy_mask(tmp_path / "photo.jpg")


def test_constant_alpha_is_dropped_varying_alpha_refused(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., :3] = np.arange(60, dtype=np.uint8).reshape(4, 5, 3)
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    out = read_image_without_alpha(tmp_path / "a.png").array
    assert out.shape == (4, 5, 3) and np.array_equal(out, rgba[..., :3])
    la = np.stack([np.arange(20, dtype=np.uint8).reshape(4, 5), np.full((4, 5), 7, np.uint8)], axis=2)
    assert np.array_equal(drop_constant_alpha(la, "la.png"), la[..., 0])
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "b.png")
    with pytest.raises(ConversionError, match=r"b\.png: alpha channel varies \(2 values, 0\.\.255\)"):
        read_image_without_alpha(tmp_path / "b.png")
    grey = np.zeros((4, 5), np.uint8)
    assert drop_constant_alpha(grey, "g.png") is grey


def test_real_16bit_tiff_image_keeps_its_bit_depth(realdata, tmp_path):
    source = realdata("stardist_dsb2018_tif") / "stardist" / "data" / "images" / "img2d.tif"
    shutil.copy(source, tmp_path / "img2d.tif")
    image = read_image_without_alpha(tmp_path / "img2d.tif").array
    assert image.dtype == np.uint16 and image.shape == (512, 512)
    assert np.array_equal(image, read_image(tmp_path / "img2d.tif").array)
    assert int(image.max()) == 235  # values as stored, not rescaled to 8 bits


def test_inverted_polarity_is_refused_when_corners_are_background(tmp_path):
    inverted = (~_disc() * 255).astype(np.uint8)
    Image.fromarray(inverted).save(tmp_path / "inv.jpg", quality=90)
    assert read_lossy_mask(tmp_path / "inv.jpg").array[0, 0]  # without the check it is read as it is
    with pytest.raises(ConversionError, match=r"inv\.jpg: all four corners are foreground"):
        read_lossy_mask(tmp_path / "inv.jpg", background_corners=True)


def test_empty_mask_on_the_reference_grid(tmp_path):
    from omnimedseg.converters.formats.masks2d import read_empty_mask

    Image.fromarray(np.zeros((7, 9, 3), np.uint8)).save(tmp_path / "frame.png")
    mask = read_empty_mask(tmp_path / "frame.png").array
    assert mask.dtype == bool and mask.shape == (7, 9) and not mask.any()


def test_mask_on_side_accepts_its_half_and_refuses_the_other(tmp_path):
    from omnimedseg.converters.formats.masks2d import read_mask_on_side

    mask = np.zeros((30, 40), np.uint8)
    mask[5:25, 24:36] = 255  # the image's right half
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert np.array_equal(read_mask_on_side(tmp_path / "m.png", side="image_right").array, mask > 0)
    with pytest.raises(ConversionError, match=r"m\.png: mask centred at column 30 of 40, in the image right half; "
                                              r"expected the image left half"):
        read_mask_on_side(tmp_path / "m.png", side="image_left")
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "empty.png")
    assert not read_mask_on_side(tmp_path / "empty.png", side="image_left").array.any()
    with pytest.raises(ConversionError, match="expected one of"):
        read_mask_on_side(tmp_path / "m.png", side="patient_left")
