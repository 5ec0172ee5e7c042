"""The PNG encoder of converted 2D outputs: exact pixels back through Pillow and OpenCV, every kept mode."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from omnimedseg.converters.formats.image2d import read_png_array, write_png
from omnimedseg.converters.formats.png import encode_png
from omnimedseg.errors import ConversionError

RNG = np.random.default_rng(7)
CASES = {
    "bool odd width": RNG.random((13, 21)) > 0.5,
    "bool one pixel": np.ones((1, 1), bool),
    "uint8 grey": RNG.integers(0, 256, (37, 45), dtype=np.uint8),
    "uint8 grey+alpha": RNG.integers(0, 256, (9, 11, 2), dtype=np.uint8),
    "uint8 rgb": RNG.integers(0, 256, (17, 1, 3), dtype=np.uint8),
    "uint8 rgba": RNG.integers(0, 256, (8, 30, 4), dtype=np.uint8),
    "uint16 grey": RNG.integers(0, 65536, (19, 23), dtype=np.uint16),
}


@pytest.mark.parametrize("name", CASES)
def test_pixels_survive_pillow_and_opencv(name, tmp_path):
    import cv2

    array = CASES[name]
    data = encode_png(array)
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.mode == {"bool odd width": "1", "bool one pixel": "1", "uint8 grey": "L", "uint8 grey+alpha": "LA",
                              "uint8 rgb": "RGB", "uint8 rgba": "RGBA", "uint16 grey": "I;16"}[name]
    write_png(array, tmp_path / "x.png")
    assert np.array_equal(read_png_array(tmp_path / "x.png"), array)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array.dtype == bool:
        assert np.array_equal(decoded > 0, array)
    elif array.ndim == 3 and array.shape[2] >= 3:  # OpenCV gives BGR(A)
        assert np.array_equal(decoded[..., [2, 1, 0] + ([3] if array.shape[2] == 4 else [])], array)
    elif array.ndim == 2:
        assert np.array_equal(decoded, array)


def test_unsupported_arrays_are_refused_with_the_path(tmp_path):
    with pytest.raises(ConversionError, match=r"x\.png: cannot store int32 array of shape \(2, 2\) as PNG"):
        write_png(np.zeros((2, 2), np.int32), tmp_path / "x.png")
    assert encode_png(CASES["uint8 grey"]) == encode_png(CASES["uint8 grey"].copy())  # reproducible bytes
