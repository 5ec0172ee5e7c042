"""2D annotations that are not plain masks: colour-coded masks, polygons, ellipses.

Pixel convention (all functions here): a point (x, y) is column x, row y, and integer
coordinates are pixel *centres* (pixel (row r, col c) covers x in [c-0.5, c+0.5]).
Files whose coordinates count from the top-left *corner* of the image (x = 0 is the
left edge of column 0) are read with ``origin="corner"``, which subtracts 0.5.

Polygons are filled with Pillow's ImageDraw (the rasteriser LabelMe and many dataset
scripts use), outline included: vertices are first rounded to the nearest pixel centre
(half up), because Pillow's handling of fractional vertices is undocumented. A pixel
is thus foreground when it lies inside or on the polygon drawn through those rounded
vertices. Several polygons are united; Aperio regions marked negative are cut out.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from omnimedseg.converters.formats.image2d import LOSSY_SUFFIXES, read_image
from omnimedseg.converters.formats.imagedata import ImageData
from omnimedseg.errors import ConversionError

PathLike = str | os.PathLike
Colour = Sequence[int] | str
# A vertex may lie this far (pixels) outside the image (annotation tools let users click on the border).
OUTSIDE_TOLERANCE_PX = 1.0


# ---------------------------------------------------------------- colour-coded masks

def parse_colour(colour: Colour) -> tuple[int, int, int]:
    """(r, g, b) from ``"#rrggbb"``, ``[r, g, b]`` or a grey level ``g`` (as a card's TOML may hold)."""
    if isinstance(colour, str):
        text = colour.strip().lstrip("#")
        if not re.fullmatch(r"[0-9a-fA-F]{6}", text):
            raise ConversionError(f"palette colour {colour!r}: expected '#rrggbb' or [r, g, b]")
        return tuple(int(text[i:i + 2], 16) for i in (0, 2, 4))
    if isinstance(colour, (int, np.integer)):
        return (int(colour),) * 3
    values = tuple(int(v) for v in colour)
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise ConversionError(f"palette colour {colour!r}: expected three values 0..255")
    return values


def _palette_table(palette: Mapping[str, Colour | Sequence[Colour]]) -> dict[tuple[int, int, int], str]:
    """colour -> class name; a class may list several colours, a colour may name one class only."""
    table: dict[tuple[int, int, int], str] = {}
    for name, value in palette.items():
        many = isinstance(value, (list, tuple)) and value and not isinstance(value[0], (int, np.integer))
        for colour in (value if many else [value]):
            rgb = parse_colour(colour)
            if rgb in table and table[rgb] != name:
                raise ConversionError(f"palette colour {rgb} names both {table[rgb]!r} and {name!r}")
            table[rgb] = name
    return table


def read_palette_mask(path: PathLike, palette: Mapping[str, Colour | Sequence[Colour]],
                      background: Colour = (0, 0, 0)) -> dict[str, np.ndarray]:
    """Colour-coded mask -> {class name: bool mask} for every class of ``palette``.

    Colours must match exactly (lossless masks). Any pixel whose colour is neither
    ``background`` nor in the palette is an error naming the colour, its pixel count and
    its first position: dropping it silently would lose annotation. Lossy (JPEG) colour
    masks are refused because their edge colours cannot be assigned reliably.
    """
    path = Path(path)
    if path.suffix.lower() in LOSSY_SUFFIXES:
        raise ConversionError(f"{path}: colour-coded mask stored as lossy JPEG; expected PNG/TIFF/BMP; colours "
                              f"at edges are not recoverable exactly")
    return palette_masks(read_image(path).array, palette, background, path)


def palette_masks(array: np.ndarray, palette: Mapping[str, Colour | Sequence[Colour]],
                  background: Colour = (0, 0, 0), path: PathLike = "<array>") -> dict[str, np.ndarray]:
    """The pixels of a colour-coded mask -> {class name: bool mask}; see :func:`read_palette_mask`.

    For masks that are part of a larger file (e.g. the right half of a side-by-side PNG).
    """
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.dtype != np.uint8:
        raise ConversionError(f"{path}: colour mask of type {array.dtype}; expected 8-bit RGB")
    if array.shape[2] == 4:
        if ((array[..., 3] != 255) & (array[..., 3] != 0)).any():
            raise ConversionError(f"{path}: semi-transparent pixels in a colour mask; expected opaque RGB")
        array = np.where(array[..., 3:] == 0, 0, array[..., :3]).astype(np.uint8)  # transparent = background
    elif array.shape[2] != 3:
        raise ConversionError(f"{path}: {array.shape[2]} channels; expected an RGB colour mask")
    table = _palette_table(palette)
    bg = parse_colour(background)
    if bg in table:
        raise ConversionError(f"{path}: background colour {bg} is also class {table[bg]!r} in the palette")
    codes = (array[..., 0].astype(np.uint32) << 16) | (array[..., 1].astype(np.uint32) << 8) | array[..., 2]
    known = {(r << 16) | (g << 8) | b for r, g, b in [*table, bg]}
    values, first, counts = np.unique(codes, return_index=True, return_counts=True)
    unknown = [(int(v), int(i), int(n)) for v, i, n in zip(values, first, counts) if int(v) not in known]
    if unknown:
        value, index, count = max(unknown, key=lambda u: u[2])
        row, col = divmod(index, codes.shape[1])
        rgb = (value >> 16, (value >> 8) & 255, value & 255)
        raise ConversionError(f"{path}: {len(unknown)} colour(s) not in the palette, e.g. {rgb} in {count} pixels "
                              f"(first at row {row}, col {col}); expected {sorted(table)} or background {bg}; "
                              f"add the colour to the card's palette")
    masks = {name: np.zeros(codes.shape, dtype=bool) for name in palette}
    for (r, g, b), name in table.items():
        masks[name] |= codes == ((r << 16) | (g << 8) | b)
    return masks


def read_palette_mask_class(path: PathLike, *, palette: Mapping[str, Colour | Sequence[Colour]], class_name: str,
                            background: Colour = (0, 0, 0)) -> ImageData:
    """One class's bool mask from a colour-coded mask; use via ``functools.partial``.

    The whole image is checked against the palette every time, so an unknown colour is
    reported whichever class is read.
    """
    if class_name not in palette:
        raise ConversionError(f"{path}: class {class_name!r} is not in the palette {sorted(palette)}")
    return ImageData(read_palette_mask(path, palette, background)[class_name])


# ---------------------------------------------------------------- polygons

def rasterize_polygons(shape: Sequence[int], polygons: Sequence[Sequence[Sequence[float]]],
                       holes: Sequence[Sequence[Sequence[float]]] = (), origin: str = "center",
                       where: PathLike = "<polygons>") -> np.ndarray:
    """Fill (x, y) polygons into a (rows, cols) bool mask; see the module docstring for the convention."""
    rows, cols = int(shape[0]), int(shape[1])
    if origin not in ("center", "corner"):
        raise ConversionError(f"{where}: origin {origin!r}; expected 'center' or 'corner'")
    shift = 0.5 if origin == "corner" else 0.0

    def draw(target: Image.Image, polygon, value: int) -> None:
        points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2) - shift
        if len(points) < 3:
            raise ConversionError(f"{where}: a polygon with {len(points)} point(s); expected at least 3")
        low, high = -0.5 - OUTSIDE_TOLERANCE_PX, np.array([cols, rows]) - 0.5 + OUTSIDE_TOLERANCE_PX
        if (points < low).any() or (points > high).any():
            raise ConversionError(f"{where}: polygon point outside the {cols} x {rows} image (x range "
                                  f"{points[:, 0].min():.1f}..{points[:, 0].max():.1f}, y range "
                                  f"{points[:, 1].min():.1f}..{points[:, 1].max():.1f}); expected pixel coordinates "
                                  f"of this image (check origin= and the reference image)")
        rounded = np.floor(points + 0.5).astype(int)
        ImageDraw.Draw(target).polygon([tuple(p) for p in rounded.tolist()], fill=value, outline=value)

    canvas = Image.new("L", (cols, rows), 0)
    for polygon in polygons:
        draw(canvas, polygon, 1)
    for hole in holes:
        draw(canvas, hole, 0)
    return np.asarray(canvas, dtype=np.uint8).astype(bool)


def _shape(path: Path, reference: PathLike | None, shape: Sequence[int] | None,
           from_file: Sequence[int] | None = None) -> tuple[int, int]:
    if reference is not None:
        return tuple(read_image(Path(reference)).array.shape[:2])
    if shape is not None:
        return int(shape[0]), int(shape[1])
    if from_file is not None:
        return int(from_file[0]), int(from_file[1])
    raise ConversionError(f"{path}: image size unknown; expected a reference image (second path) or shape=(rows, cols)")


def _points(value, path: Path) -> list:
    """[[x, y], ...] from [[x, y], ...], [{"x":, "y":}, ...] or a flat [x0, y0, x1, y1, ...]."""
    if value and isinstance(value[0], Mapping):
        return [[float(p["x"]), float(p["y"])] for p in value]
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 1 and array.size % 2 == 0:
        array = array.reshape(-1, 2)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ConversionError(f"{path}: polygon of shape {array.shape}; expected a list of (x, y) points")
    return array.tolist()


def read_polygon_json(path: PathLike, reference: PathLike | None = None, *, shape: Sequence[int] | None = None,
                      label: str | None = None, key: str | None = None, origin: str = "center") -> ImageData:
    """Bool mask from polygons in JSON.

    Accepted layouts: a list of points; a list of polygons; ``{key: ...}`` with either;
    LabelMe (``shapes`` with ``label``/``points``/``shape_type``; only polygons of
    ``label`` when given; the image size from ``imageHeight``/``imageWidth``).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConversionError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{path}: not valid JSON ({exc})") from None
    size = None
    if key is not None:
        if not isinstance(data, Mapping) or key not in data:
            found = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ConversionError(f"{path}: no key {key!r}; found {found}")
        data = data[key]
    if isinstance(data, Mapping) and "shapes" in data:  # LabelMe
        if "imageHeight" in data and "imageWidth" in data:
            size = (data["imageHeight"], data["imageWidth"])
        shapes = [s for s in data["shapes"] if label is None or s.get("label") == label]
        other = sorted({s.get("shape_type", "polygon") for s in shapes} - {"polygon"})
        if other:
            raise ConversionError(f"{path}: LabelMe shape types {other}; expected polygons only")
        polygons = [_points(s["points"], path) for s in shapes]
    elif isinstance(data, list) and data and isinstance(data[0], (list, Mapping)) and _is_point(data[0]):
        polygons = [_points(data, path)]
    elif isinstance(data, list):
        polygons = [_points(p, path) for p in data]
    else:
        raise ConversionError(f"{path}: no polygon list found; expected a list of points, a list of polygons, "
                              f"LabelMe JSON, or key= naming the list")
    rows_cols = _shape(path, reference, shape, size)
    return ImageData(rasterize_polygons(rows_cols, polygons, origin=origin, where=path))


def _is_point(item) -> bool:
    if isinstance(item, Mapping):
        return "x" in item and "y" in item
    return len(item) == 2 and all(isinstance(v, (int, float)) for v in item)


def read_polygon_xml(path: PathLike, reference: PathLike | None = None, *, shape: Sequence[int] | None = None,
                     frame: int | None = None, origin: str = "center") -> ImageData:
    """Bool mask from polygons in XML.

    Aperio ImageScope: every ``Region``'s ``Vertices/Vertex`` (X, Y attributes);
    regions with ``NegativeROA="1"`` are holes. DDTI (thyroid): ``mark`` elements whose
    ``svg`` text is JSON ``[{"points": [{"x":, "y":}, ...]}, ...]``; ``frame`` picks the
    marks whose ``image`` equals it (multi-frame cases).
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise ConversionError(f"{path}: file not found") from None
    except ET.ParseError as exc:
        raise ConversionError(f"{path}: not valid XML ({exc})") from None
    polygons, holes = [], []
    for region in root.iter("Region"):
        vertices = [[float(v.get("X")), float(v.get("Y"))] for v in region.iter("Vertex")]
        (holes if region.get("NegativeROA") == "1" else polygons).append(vertices)
    for mark in root.iter("mark"):
        if frame is not None and (mark.findtext("image") or "").strip() != str(frame):
            continue
        text = (mark.findtext("svg") or "").strip()
        if not text:
            continue
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConversionError(f"{path}: <svg> text is not JSON ({exc}); expected DDTI point lists") from None
        polygons.extend(_points(item["points"], path) for item in items)
    if not polygons:
        raise ConversionError(f"{path}: no polygon found (Aperio Region/Vertex or DDTI mark/svg"
                              f"{'' if frame is None else f' for image {frame}'}); expected at least one")
    rows_cols = _shape(path, reference, shape)
    return ImageData(rasterize_polygons(rows_cols, polygons, holes, origin=origin, where=path))


def read_polygon_text(path: PathLike, reference: PathLike | None = None, *, shape: Sequence[int] | None = None,
                      origin: str = "center") -> ImageData:
    """Bool mask from a text file of "x y" (or "x,y") lines; a blank line starts a new polygon; '#' comments."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConversionError(f"{path}: file not found") from None
    polygons, current = [], []
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            if current:
                polygons.append(current)
                current = []
            continue
        parts = re.split(r"[\s,;]+", line)
        try:
            x, y = (float(v) for v in parts)
        except ValueError:
            raise ConversionError(f"{path}: line {number} {line!r}; expected two numbers 'x y'") from None
        current.append([x, y])
    if current:
        polygons.append(current)
    if not polygons:
        raise ConversionError(f"{path}: no coordinates found; expected 'x y' lines")
    rows_cols = _shape(path, reference, shape)
    return ImageData(rasterize_polygons(rows_cols, polygons, origin=origin, where=path))


# ---------------------------------------------------------------- ellipses

def fill_ellipse(shape: Sequence[int], center: Sequence[float], axes: Sequence[float], angle: float) -> np.ndarray:
    """Filled ellipse as a (rows, cols) bool mask, from its parameters (pixel units).

    ``center`` = (x, y) pixel-centre coordinates, ``axes`` = (a, b) semi-axes, ``angle`` in
    degrees from the +x (column) axis towards +y (down the rows), i.e. clockwise on screen.
    A pixel is inside when its centre satisfies (u/a)^2 + (v/b)^2 <= 1. Written by hand:
    Pillow cannot draw rotated ellipses and scikit-image is not a dependency.
    """
    rows, cols = int(shape[0]), int(shape[1])
    a, b = float(axes[0]), float(axes[1])
    if a <= 0 or b <= 0:
        raise ConversionError(f"ellipse semi-axes {tuple(axes)}: expected two positive lengths")
    theta = np.deg2rad(float(angle))
    y, x = np.mgrid[0:rows, 0:cols]
    dx, dy = x - float(center[0]), y - float(center[1])
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0 + 1e-9  # centres exactly on the boundary stay in despite rounding


def read_ellipse(reference: PathLike, *, center: Sequence[float], axes: Sequence[float], angle: float,
                 pixel_size: float | Sequence[float] | None = None) -> ImageData:
    """Reader: ellipse given as parameters (e.g. a CSV row) on ``reference``'s pixel grid.

    With ``pixel_size`` (mm per pixel, scalar or (row, col) equal values) ``center`` and
    ``axes`` are in mm and converted to pixels (HC18's CSV gives mm).
    """
    rows_cols = read_image(Path(reference)).array.shape[:2]
    if pixel_size is not None:
        sizes = np.atleast_1d(np.asarray(pixel_size, dtype=np.float64))
        if not np.allclose(sizes, sizes[0]):
            raise ConversionError(f"{reference}: anisotropic pixel size {sizes.tolist()}; expected square pixels "
                                  f"for an ellipse in mm")
        center = [c / sizes[0] for c in center]
        axes = [a / sizes[0] for a in axes]
    return ImageData(fill_ellipse(rows_cols, center, axes, angle))


__all__ = ["fill_ellipse", "parse_colour", "rasterize_polygons", "read_ellipse", "read_palette_mask",
           "read_palette_mask_class", "read_polygon_json", "read_polygon_text", "read_polygon_xml"]
