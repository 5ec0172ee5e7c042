"""Colour-coded masks, polygon files and ellipses: exact pixel values on generated fixtures."""

from __future__ import annotations

import functools
import json
import pickle

import numpy as np
import pytest
from PIL import Image

from omnimedseg.converters._base import Source
from omnimedseg.converters.formats.annotations2d import (
    fill_ellipse,
    parse_colour,
    rasterize_polygons,
    read_ellipse,
    read_palette_mask,
    read_palette_mask_class,
    read_polygon_json,
    read_polygon_text,
    read_polygon_xml,
)
from omnimedseg.converters.formats.image2d import fill_outline
from omnimedseg.errors import ConversionError

PALETTE = {"liver": "#ff0000", "spleen": [0, 255, 0], "vessel": [[0, 0, 255], [0, 0, 254]]}


@pytest.fixture
def colour_mask(tmp_path):
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[1, 1:3] = (0, 255, 0)
    rgb[2, 4] = (0, 0, 255)
    rgb[3, 4] = (0, 0, 254)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    return tmp_path / "c.png", rgb


def test_palette_mask_per_class(colour_mask):
    path, rgb = colour_mask
    masks = read_palette_mask(path, PALETTE)
    assert sorted(masks) == ["liver", "spleen", "vessel"]
    assert np.argwhere(masks["liver"]).tolist() == [[0, 0]]
    assert np.argwhere(masks["spleen"]).tolist() == [[1, 1], [1, 2]]
    assert np.argwhere(masks["vessel"]).tolist() == [[2, 4], [3, 4]]
    assert not (masks["liver"] & masks["spleen"]).any()


def test_palette_class_reader_through_source_pickles(colour_mask):
    path, _ = colour_mask
    reader = pickle.loads(pickle.dumps(functools.partial(read_palette_mask_class, palette=PALETTE,
                                                         class_name="spleen")))
    mask = Source(path, reader).load()
    assert mask.array.dtype == bool and int(mask.array.sum()) == 2 and mask.array[1, 2]


def test_unknown_colour_is_a_one_line_error(colour_mask):
    path, rgb = colour_mask
    rgb[3, 0] = (255, 255, 0)
    Image.fromarray(rgb).save(path)
    with pytest.raises(ConversionError) as info:
        read_palette_mask_class(path, palette=PALETTE, class_name="liver")
    message = str(info.value)
    assert message.startswith(f"{path}: 1 colour(s) not in the palette, e.g. (255, 255, 0) in 1 pixels "
                              f"(first at row 3, col 0)")
    assert "\n" not in message


def test_palette_edge_cases(tmp_path, colour_mask):
    path, rgb = colour_mask
    Image.fromarray(rgb).save(tmp_path / "c.jpg")
    with pytest.raises(ConversionError, match="lossy JPEG"):
        read_palette_mask(tmp_path / "c.jpg", PALETTE)
    with pytest.raises(ConversionError, match="names both"):
        read_palette_mask(path, {"a": "#ff0000", "b": [255, 0, 0]})
    with pytest.raises(ConversionError, match="not in the palette"):
        read_palette_mask_class(path, palette=PALETTE, class_name="kidney")
    assert parse_colour("#0A0b0C") == (10, 11, 12) and parse_colour(7) == (7, 7, 7)
    rgba = np.concatenate([rgb, np.full((4, 5, 1), 255, np.uint8)], axis=2)
    rgba[0, 0] = (9, 9, 9, 0)  # transparent counts as background whatever its colour
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert not read_palette_mask(tmp_path / "a.png", PALETTE)["liver"].any()


def test_polygon_pixel_centre_convention():
    square = [(2, 1), (5, 1), (5, 3), (2, 3)]
    mask = rasterize_polygons((6, 8), [square])
    expected = np.zeros((6, 8), bool)
    expected[1:4, 2:6] = True  # rows y=1..3, cols x=2..5: vertices are pixel centres, outline included
    assert np.array_equal(mask, expected)
    corner = rasterize_polygons((6, 8), [[(2.5, 1.5), (5.5, 1.5), (5.5, 3.5), (2.5, 3.5)]], origin="corner")
    assert np.array_equal(corner, expected)
    triangle = rasterize_polygons((5, 5), [[(0, 0), (4, 0), (0, 4)]])
    assert triangle.sum() == 15 and triangle[0].all() and triangle[:, 0].all() and not triangle[4, 4]
    with pytest.raises(ConversionError, match="outside the 8 x 6 image"):
        rasterize_polygons((6, 8), [[(0, 0), (20, 0), (0, 3)]], where="p.json")
    with pytest.raises(ConversionError, match="at least 3"):
        rasterize_polygons((6, 8), [[(0, 0), (2, 2)]])


def test_polygon_json_layouts(tmp_path):
    square = [[2, 1], [5, 1], [5, 3], [2, 3]]
    expected = rasterize_polygons((6, 8), [square])
    (tmp_path / "points.json").write_text(json.dumps(square))
    (tmp_path / "polys.json").write_text(json.dumps({"roi": [square, [[0, 5], [1, 5], [1, 4]]]}))
    labelme = {"imageHeight": 6, "imageWidth": 8, "shapes": [
        {"label": "tumor", "points": square, "shape_type": "polygon"},
        {"label": "other", "points": [[0, 0], [1, 0], [1, 1]], "shape_type": "polygon"}]}
    (tmp_path / "labelme.json").write_text(json.dumps(labelme))
    Image.new("L", (8, 6)).save(tmp_path / "ref.png")
    assert np.array_equal(read_polygon_json(tmp_path / "points.json", shape=(6, 8)).array, expected)
    reader = functools.partial(read_polygon_json, key="roi")
    both = Source((tmp_path / "polys.json", tmp_path / "ref.png"), reader).load().array
    assert np.array_equal(both[:4], expected[:4]) and both[4:, :2].sum() == 3
    tumor = read_polygon_json(tmp_path / "labelme.json", label="tumor").array
    assert np.array_equal(tumor, expected)
    assert read_polygon_json(tmp_path / "labelme.json").array[0, 0]
    with pytest.raises(ConversionError, match="image size unknown"):
        read_polygon_json(tmp_path / "points.json")


def test_polygon_xml_aperio_with_hole_and_ddti(tmp_path):
    aperio = """<Annotations><Annotation Id="1"><Regions>
      <Region Id="1"><Vertices><Vertex X="1" Y="1"/><Vertex X="6" Y="1"/><Vertex X="6" Y="6"/><Vertex X="1" Y="6"/>
      </Vertices></Region>
      <Region Id="2" NegativeROA="1"><Vertices><Vertex X="3" Y="3"/><Vertex X="4" Y="3"/><Vertex X="4" Y="4"/>
      <Vertex X="3" Y="4"/></Vertices></Region></Regions></Annotation></Annotations>"""
    (tmp_path / "a.xml").write_text(aperio)
    mask = read_polygon_xml(tmp_path / "a.xml", shape=(8, 8)).array
    expected = np.zeros((8, 8), bool)
    expected[1:7, 1:7] = True
    expected[3:5, 3:5] = False
    assert np.array_equal(mask, expected)
    svg = json.dumps([{"points": [{"x": 1, "y": 1}, {"x": 3, "y": 1}, {"x": 3, "y": 2}, {"x": 1, "y": 2}]}])
    ddti = (f"<case><number>1</number><mark><image>1</image><svg>{svg}</svg></mark>"
            f"<mark><image>2</image><svg>[{{\"points\": [{{\"x\": 5, \"y\": 5}}, {{\"x\": 6, \"y\": 5}}, "
            f"{{\"x\": 6, \"y\": 6}}]}}]</svg></mark></case>")
    (tmp_path / "d.xml").write_text(ddti)
    first = read_polygon_xml(tmp_path / "d.xml", shape=(8, 8), frame=1).array
    assert np.argwhere(first).tolist() == [[1, 1], [1, 2], [1, 3], [2, 1], [2, 2], [2, 3]]
    assert read_polygon_xml(tmp_path / "d.xml", shape=(8, 8)).array.sum() == 6 + 3
    with pytest.raises(ConversionError, match="no polygon found"):
        read_polygon_xml(tmp_path / "d.xml", shape=(8, 8), frame=3)


def test_polygon_text(tmp_path):
    (tmp_path / "p.txt").write_text("# x y\n2 1\n5,1\n5 3\n2 3\n\n0 5\n1 5\n1 4\n")
    mask = read_polygon_text(tmp_path / "p.txt", shape=(6, 8)).array
    assert np.array_equal(mask[:4], rasterize_polygons((6, 8), [[(2, 1), (5, 1), (5, 3), (2, 3)]])[:4])
    assert mask[4:].sum() == 3
    (tmp_path / "bad.txt").write_text("1 2 3\n")
    with pytest.raises(ConversionError, match=r"bad\.txt: line 1 '1 2 3'"):
        read_polygon_text(tmp_path / "bad.txt", shape=(6, 8))


def test_fill_ellipse_parameters():
    mask = fill_ellipse((101, 121), center=(60, 50), axes=(40, 20), angle=0)
    assert mask[50, 20] and mask[50, 100] and not mask[50, 19] and not mask[50, 101]
    assert mask[30, 60] and mask[70, 60] and not mask[29, 60] and not mask[71, 60]
    assert abs(mask.sum() - np.pi * 40 * 20) / (np.pi * 40 * 20) < 0.01
    rotated = fill_ellipse((121, 121), center=(60, 60), axes=(40, 20), angle=90)
    assert np.array_equal(rotated, fill_ellipse((121, 121), center=(60, 60), axes=(20, 40), angle=0))
    tilted = fill_ellipse((121, 121), center=(60, 60), axes=(50, 5), angle=45)
    assert tilted[90, 90] and tilted[30, 30] and not tilted[30, 90]  # +45 deg runs down-right on screen


def test_read_ellipse_in_mm(tmp_path):
    Image.new("L", (40, 30)).save(tmp_path / "img.png")
    mask = read_ellipse(tmp_path / "img.png", center=(10.0, 7.5), axes=(5.0, 2.5), angle=0, pixel_size=0.5).array
    assert np.array_equal(mask, fill_ellipse((30, 40), (20, 15), (10, 5), 0))


def test_real_hc18_outline_matches_its_fitted_ellipse(realdata):
    """The filled real outline and an ellipse from its moments agree (checks the angle convention)."""
    path = realdata("hc18_ellipse") / "training_set" / "000_HC_Annotation.png"
    filled = fill_outline(path).array
    rows, cols = np.nonzero(filled)
    cov = np.cov(np.stack([cols, rows]).astype(float))
    values, vectors = np.linalg.eigh(cov)
    major = vectors[:, 1]
    angle = np.degrees(np.arctan2(major[1], major[0]))
    mask = fill_ellipse(filled.shape, (cols.mean(), rows.mean()), 2 * np.sqrt(values[::-1]), angle)
    iou = (mask & filled).sum() / (mask | filled).sum()
    mirrored = fill_ellipse(filled.shape, (cols.mean(), rows.mean()), 2 * np.sqrt(values[::-1]), -angle)
    assert iou > 0.99  # measured 0.998
    assert (mirrored & filled).sum() / (mirrored | filled).sum() < iou - 0.1  # measured 0.85: angle sign matters
