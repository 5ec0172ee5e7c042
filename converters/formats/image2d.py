"""2D images and masks: PNG, JPEG, TIFF, BMP, GIF in; PNG out, pixel-exact.

Images keep their bit depth and colour (8-bit and 16-bit grey, RGB, RGBA). Masks
come out as ``bool`` arrays; the rule that turned raw values into True is part of
each function's name and docstring, so provenance says exactly what was done.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from omnimedseg.converters.formats.imagedata import ImageData
from omnimedseg.errors import ConversionError
from omnimedseg.files import repair_command

# Pillow mode -> how it is kept. Palette and bilevel images are expanded; 32-bit
# integer greyscale is narrowed to uint16 only when every value fits.
_KEPT_MODES = {"L": "L", "I;16": "I;16", "I;16B": "I;16", "I;16L": "I;16", "RGB": "RGB", "RGBA": "RGBA",
               "LA": "LA", "1": "L", "P": None, "PA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "I": None}
LOSSY_SUFFIXES = (".jpg", ".jpeg")
# A lossy 0/255 mask is foreground where its value (the mean of its colour channels, for RGB) is >= 128, the
# midpoint: JPEG ringing and chroma subsampling smear the two levels symmetrically around the drawn edge, so
# the midpoint keeps the boundary where the annotator put it. Every reader of lossy masks uses this constant.
LOSSY_MASK_THRESHOLD = 128


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise ConversionError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ConversionError(f"{path}: not a readable image ({exc}); expected PNG/JPEG/TIFF/BMP/GIF; "
                              f"check the raw files with: {repair_command(path)}") from None
    if getattr(image, "n_frames", 1) > 1:  # a multi-page TIFF, an animated GIF: which frame is the image?
        raise ConversionError(f"{path}: has {image.n_frames} frames; expected a single 2D image")
    return image


def _upright(image: Image.Image) -> tuple[Image.Image, int]:
    """The image as viewers show it: a JPEG's EXIF Orientation (2..8) is applied to the pixels.

    Cameras (fundus cameras, phones) store pixels in sensor order and flag the rotation in
    EXIF; viewers and OpenCV's imread apply it, Pillow does not. Annotations are drawn on
    the displayed image, so the stored pixels are turned the same way (Pillow's exif_transpose).
    """
    from PIL import ImageOps

    orientation = image.getexif().get(0x0112, 1) if image.format == "JPEG" else 1
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        image = ImageOps.exif_transpose(image)
    return image, orientation


def read_image(path: Path) -> ImageData:
    """Read a 2D image keeping bit depth and colour (16-bit stays 16-bit); JPEG EXIF orientation applied."""
    image, orientation = _upright(_open(Path(path)))
    mode = image.mode
    if mode not in _KEPT_MODES:
        raise ConversionError(f"{path}: unsupported image mode {mode!r}; expected one of {', '.join(_KEPT_MODES)}")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "I":
        array = np.asarray(image)
        if array.min() < 0 or array.max() > 65535:
            raise ConversionError(f"{path}: 32-bit integer pixels outside 0..65535 "
                                  f"(found {array.min()}..{array.max()}); expected 8- or 16-bit data")
        return ImageData(array.astype(np.uint16))
    elif _KEPT_MODES[mode] != mode and _KEPT_MODES[mode] != "I;16":
        image = image.convert(_KEPT_MODES[mode])
    array = np.asarray(image)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("="))
    return ImageData(array, meta={"exif_orientation": orientation} if orientation != 1 else {})


def _grey(path: Path) -> np.ndarray:
    array = read_image(path).array
    if array.ndim == 3:
        channels = array[..., :3]
        if not (np.array_equal(channels[..., 0], channels[..., 1]) and np.array_equal(channels[..., 0], channels[..., 2])):
            raise ConversionError(f"{path}: a colour mask where a greyscale mask was expected; "
                                  f"use a palette reader for colour-coded masks")
        array = channels[..., 0]
    return array


def read_binary_mask(path: Path) -> ImageData:
    """Binary mask: any value > 0 is foreground; lossy JPEG masks use >= 128 (half of 255).

    JPEG compression smears 0/255 edges into intermediate values; thresholding at the
    midpoint keeps the boundary where the annotator drew it.
    """
    path = Path(path)
    grey = _grey(path)
    threshold = LOSSY_MASK_THRESHOLD if path.suffix.lower() in LOSSY_SUFFIXES else 1
    return ImageData(grey >= threshold)


def fill_outline(path: Path) -> ImageData:
    """Fill a closed outline (e.g. HC18's ellipse) into a solid mask, outline included.

    The outline is every pixel > 0; the filled region is the outline plus all
    background pixels not 4-connected to the image border. An outline with a gap
    encloses nothing and is refused rather than written as an empty mask.
    """
    from scipy import ndimage

    path = Path(path)
    outline = _grey(path) > 0
    if not outline.any():
        raise ConversionError(f"{path}: the annotation is empty; expected a closed outline")
    filled = ndimage.binary_fill_holes(outline)
    if not (filled & ~outline).any():
        raise ConversionError(f"{path}: the outline is not closed (it encloses no pixels); "
                              f"expected a closed contour to fill")
    return ImageData(filled)


def read_png_array(path: Path) -> np.ndarray:
    """Pixels of a PNG this project wrote: 1-bit masks come back as canonical bool arrays.

    Pillow hands out 1-bit images as ``bool`` arrays whose bytes are 0/255; numpy code
    that views them as bytes (``.view(np.uint8)``) or copies them with ``astype(bool)``
    then sees 255, not 1. Comparing with 0 makes them ordinary 0/1 booleans.
    """
    with Image.open(path) as image:
        image.load()
        if image.mode == "1":
            return np.asarray(image.convert("L")) > 0
        return np.asarray(image)


def write_png(array: np.ndarray, path: Path) -> None:
    """Write a 2D array losslessly: bool -> 1-bit, uint8 -> 8-bit, uint16 -> 16-bit, RGB(A) kept.

    Encoded by :func:`omnimedseg.converters.formats.png.encode_png` (measured there: ~5x
    faster than Pillow's encoder for files within a few percent of its level 3).
    """
    from omnimedseg.converters.formats.png import encode_png

    try:
        data = encode_png(array)
    except ConversionError as exc:
        raise ConversionError(f"{path}: {exc}") from None
    Path(path).write_bytes(data)


__all__ = ["LOSSY_MASK_THRESHOLD", "LOSSY_SUFFIXES", "fill_outline", "read_binary_mask", "read_image", "read_png_array",
           "write_png"]
