"""2D images keep what they are: EXIF orientation applied to JPEGs, 16-bit kept, grey-looking RGB kept RGB."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from omnimedseg.converters.formats.image2d import read_image
from omnimedseg.errors import ConversionError


def test_jpeg_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((40, 64, 3), np.uint8)
    stored[:16, :16] = 255  # a bright block at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(stored).save(tmp_path / "photo.jpg", exif=exif, quality=95)
    image = read_image(tmp_path / "photo.jpg")
    assert image.array.shape == (64, 40, 3) and image.meta == {"exif_orientation": 6}
    assert image.array[:16, -16:].mean() > 200 and image.array[:16, :16].mean() < 50  # now at the top-right
    Image.fromarray(stored).save(tmp_path / "plain.jpg", quality=95)
    plain = read_image(tmp_path / "plain.jpg")
    assert plain.array.shape == (40, 64, 3) and plain.meta == {}


def test_16_bit_and_grey_looking_rgb_are_kept(tmp_path):
    deep = (np.arange(24, dtype=np.uint16).reshape(4, 6) * 2500)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    read = read_image(tmp_path / "deep.png").array
    assert read.dtype == np.uint16 and np.array_equal(read, deep)
    rgb = np.stack([np.full((4, 6), 90, np.uint8)] * 3, axis=-1)
    rgb[1, 2] = (92, 90, 90)  # a faint tint: not grey
    Image.fromarray(rgb).save(tmp_path / "tinted.png")
    assert np.array_equal(read_image(tmp_path / "tinted.png").array, rgb)


def test_several_frames_are_refused_gif_as_tiff(tmp_path):
    """Which frame is the image is not ours to guess: an animated GIF fails as a multi-page TIFF does."""
    frames = [Image.fromarray(np.full((4, 5), v, np.uint8)) for v in (0, 255)]
    for name in ("anim.gif", "pages.tif"):
        frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:])
        with pytest.raises(ConversionError, match=rf"{name}: has 2 frames; expected a single 2D image"):
            read_image(tmp_path / name)
    frames[0].save(tmp_path / "still.gif")
    assert read_image(tmp_path / "still.gif").array.shape[:2] == (4, 5)  # a palette image: RGB
