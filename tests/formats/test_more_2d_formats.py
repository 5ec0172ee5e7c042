"""Text label arrays ("width height" header + integers), XML shape exports other than Aperio
(``Shape/Data/Points/Point``, ASAP ``Coordinates/Coordinate``) and HDF5 files holding one 2D
slice, on files written the way their tools write them."""

from __future__ import annotations

import functools
import pickle
import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pytest

from omnimedseg.converters._base import Source
from omnimedseg.converters.formats.annotations2d import read_polygon_xml, read_text_labels
from omnimedseg.converters.formats.volumes import labels_to_masks, read_hdf5_slice
from omnimedseg.errors import ConversionError

# ---------------------------------------------------------------- text label arrays

def _label_map(rows=5, cols=7, seed=0):
    return np.random.default_rng(seed).integers(0, 4, (rows, cols))


def test_text_labels_row_by_row(tmp_path):
    labels = _label_map()
    path = tmp_path / "img_001.regions.txt"
    # one image row per line, as most tools write it
    path.write_text(f"{labels.shape[1]} {labels.shape[0]}\n" + "\n".join(" ".join(map(str, r)) for r in labels) + "\n")
    image = read_text_labels(path)
    assert image.array.dtype == np.uint8 and np.array_equal(image.array, labels) and not image.is_3d
    masks = labels_to_masks(image.array, {1: "a", 2: "b", 3: "c"}, path)
    assert all(np.array_equal(masks[n], labels == v) for v, n in ((1, "a"), (2, "b"), (3, "c")))
    reader = pickle.loads(pickle.dumps(Source(path, read_text_labels)))  # conversion in worker processes
    assert np.array_equal(reader.load().array, labels)


def test_text_labels_free_layout_and_column_order(tmp_path):
    labels = _label_map(4, 3) * 100  # values above 255 need a wider type
    flat = " ".join(map(str, labels.T.ravel()))  # column by column, all on one line, commas too
    (tmp_path / "c.txt").write_text(f"3 4\n{flat.replace(' ', ', ', 3)}\n")
    image = read_text_labels(tmp_path / "c.txt", order="columns")
    assert np.array_equal(image.array, labels) and image.array.dtype == np.uint16


@pytest.mark.parametrize("text, message", [
    ("3 2\n0 1 2\n1 1\n", r"5 values after the header; expected width x height = 3 x 2 = 6"),
    ("3 2\n0 1 2\n1 1 0 0\n", r"7 values after the header"),
    ("3 2\n0 1 2\n1 x 0\n", r"value 'x' is not an integer"),
    ("3 2\n0 1 2\n1 0.5 0\n", r"value '0.5' is not an integer"),
    ("3 2\n0 1 2\n1 -1 0\n", r"negative label -1"),
    ("three 2\n0 1 2\n", r"header 'three 2'; expected 'width height'"),
    ("0 2\n", r"header 0 x 2; expected a positive"),
])
def test_text_labels_refuse_what_does_not_fit(tmp_path, text, message):
    (tmp_path / "bad.txt").write_text(text)
    with pytest.raises(ConversionError, match=message) as info:
        read_text_labels(tmp_path / "bad.txt")
    assert str(info.value).startswith(str(tmp_path / "bad.txt")) and "\n" not in str(info.value)
    with pytest.raises(ConversionError, match="file not found"):
        read_text_labels(tmp_path / "nope.txt")


# ---------------------------------------------------------------- XML shape exports

RECTANGLE = [(2, 1), (5, 1), (5, 3), (2, 3)]  # fills rows 1..3, columns 2..5 (pixel-centre convention)
TRIANGLE = [(10, 2), (14, 2), (10, 6)]


def _expected(shape, *polygons_rows_cols):
    mask = np.zeros(shape, bool)
    for rows, cols in polygons_rows_cols:
        mask[rows, cols] = True
    return mask


def _triangle_mask(shape):
    rows, cols = np.indices(shape)
    return (cols >= 10) & (rows >= 2) & (cols - 10 + rows - 2 <= 4)  # on or inside the right triangle


def _shape_export(path, shapes, child_elements=False):
    """``<Annotations><Shapes><Shape Name=..><Data><Points><Point X= Y=/>`` as shape-based exports write it."""
    root = ET.Element("Annotations")
    container = ET.SubElement(root, "Shapes")
    for name, points in shapes:
        shape = ET.SubElement(container, "Shape", Name=name, Type="Polygon")
        data = ET.SubElement(ET.SubElement(shape, "Data"), "Points")
        for x, y in points:
            if child_elements:
                point = ET.SubElement(data, "Point")
                ET.SubElement(point, "X").text, ET.SubElement(point, "Y").text = f"{x:.4f}", f"{y:.4f}"
            else:
                ET.SubElement(data, "Point", X=f"{x:.2f}", Y=f"{y:.2f}")
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


@pytest.mark.parametrize("child_elements", [False, True])
def test_shape_data_points_xml(tmp_path, child_elements):
    path = _shape_export(tmp_path / "a.xml", [("tumour", RECTANGLE), ("stroma", TRIANGLE)], child_elements)
    both = read_polygon_xml(path, shape=(8, 16)).array
    assert np.array_equal(both, _expected((8, 16), (slice(1, 4), slice(2, 6))) | _triangle_mask((8, 16)))
    tumour = read_polygon_xml(path, shape=(8, 16), label="tumour").array
    assert np.array_equal(tumour, _expected((8, 16), (slice(1, 4), slice(2, 6))))
    with pytest.raises(ConversionError, match="no polygon found .* named 'vessel'"):
        read_polygon_xml(path, shape=(8, 16), label="vessel")


def test_asap_coordinates_are_ordered_by_their_order_attribute(tmp_path):
    root = ET.Element("ASAP_Annotations")
    annotation = ET.SubElement(ET.SubElement(root, "Annotations"), "Annotation", Name="Annotation 0",
                               Type="Polygon", PartOfGroup="tumour")
    coordinates = ET.SubElement(annotation, "Coordinates")
    for order in (2, 0, 3, 1):  # stored out of order: only Order gives the rectangle (else a bow tie)
        x, y = RECTANGLE[order]
        ET.SubElement(coordinates, "Coordinate", Order=str(order), X=str(x), Y=str(y))
    ET.ElementTree(root).write(tmp_path / "asap.xml")
    mask = read_polygon_xml(tmp_path / "asap.xml", shape=(6, 8), label="tumour").array
    assert np.array_equal(mask, _expected((6, 8), (slice(1, 4), slice(2, 6))))


def test_shape_point_without_coordinates_is_refused(tmp_path):
    path = tmp_path / "b.xml"
    path.write_text('<Shapes><Shape><Data><Points><Point X="1" Y="2"/><Point X="3"/><Point X="4" Y="1"/>'
                    '</Points></Data></Shape></Shapes>')
    with pytest.raises(ConversionError, match=r"b\.xml: <Point> without a numeric Y"):
        read_polygon_xml(path, shape=(5, 5))


# ---------------------------------------------------------------- HDF5 slices

def _slice_file(path, image, label):
    """One slice per file with ``image`` and ``label`` datasets (as semi-supervised ACDC slices are kept)."""
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=image, compression="gzip")
        f.create_dataset("label", data=label, compression="gzip")
    return path


def test_hdf5_slice_image_and_label(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.random((6, 9)).astype(np.float32)
    label = rng.integers(0, 4, (6, 9)).astype(np.uint8)
    path = _slice_file(tmp_path / "patient001_frame01_slice_3.h5", image, label)
    read = read_hdf5_slice(path, dataset="image")
    assert read.array.dtype == np.float32 and np.array_equal(read.array, image) and not read.is_3d
    labels = read_hdf5_slice(path, dataset="label", label=True)
    assert np.array_equal(labels.array, label)
    source = pickle.loads(pickle.dumps(Source(path, functools.partial(read_hdf5_slice, dataset="label", label=True))))
    assert np.array_equal(source.load().array, label)
    assert np.array_equal(read_hdf5_slice(path, dataset="image", transpose=True).array, image.T)


def test_hdf5_slice_with_a_unit_axis_and_masks(tmp_path):
    mask = np.zeros((1, 5, 4), np.uint8)
    mask[0, 1:3, 2] = 1
    path = _slice_file(tmp_path / "s.h5", mask.astype(np.float64), mask.transpose(1, 2, 0) * 3)
    assert np.array_equal(read_hdf5_slice(path, dataset="image", binary=True).array, mask[0].astype(bool))
    with pytest.raises(ConversionError, match=r"expected a binary mask \(0/1\), found values \[0, 3\]"):
        read_hdf5_slice(path, dataset="label", binary=True)


def test_hdf5_slice_errors_name_the_file(tmp_path):
    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data/volume", data=np.zeros((3, 4, 5)))
        f.create_dataset("data/probabilities", data=np.full((4, 5), 0.5))
    with pytest.raises(ConversionError, match=r"v\.h5: dataset 'data/volume' has shape \(3, 4, 5\); expected one 2D"):
        read_hdf5_slice(path, dataset="data/volume")
    with pytest.raises(ConversionError, match=r"no dataset 'label'; found datasets \['data/probabilities', "
                                              r"'data/volume'\]"):
        read_hdf5_slice(path, dataset="label")
    with pytest.raises(ConversionError, match=r"non-integral label values \[0.5\]"):
        read_hdf5_slice(path, dataset="data/probabilities", label=True)
    (tmp_path / "not.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(ConversionError, match=r"not\.h5: not a readable HDF5 file"):
        read_hdf5_slice(tmp_path / "not.h5", dataset="image")
