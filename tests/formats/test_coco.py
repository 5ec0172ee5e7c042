"""COCO polygons and RLE through pycocotools, on a generated instances file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from omnimedseg.converters.formats.coco import load_coco, read_coco_mask
from omnimedseg.errors import ConversionError

H, W = 10, 12


def _file(tmp_path, annotations, categories=({"id": 1, "name": "1"}, {"id": 26, "name": "stenosis"})):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "1.png", "height": H, "width": W},
                                           {"id": 2, "file_name": "2.png", "height": H, "width": W}],
                                "categories": list(categories), "annotations": annotations}))
    return path


def test_polygons_follow_the_coco_corner_convention_and_unite(tmp_path):
    path = _file(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[2, 3, 8, 3, 8, 6, 2, 6]], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [[0, 8, 3, 8, 3, 10, 0, 10]], "iscrowd": 0},
        {"id": 3, "image_id": 1, "category_id": 26, "segmentation": [[9, 0, 12, 0, 12, 2, 9, 2]], "iscrowd": 0}])
    expected = np.zeros((H, W), bool)
    expected[3:6, 2:8] = True  # x 2..8, y 3..6: columns 2-7, rows 3-5
    expected[8:10, 0:3] = True
    assert np.array_equal(read_coco_mask(path, image_id=1, categories=("1",)).array, expected)
    stenosis = read_coco_mask(path, image_id=1, categories=("stenosis",)).array
    assert stenosis.sum() == 6 and stenosis[0:2, 9:12].all()
    assert not read_coco_mask(path, image_id=2, categories=("1",)).array.any()  # no annotation: empty


def test_uncompressed_and_compressed_rle(tmp_path):
    truth = np.zeros((H, W), np.uint8)
    truth[4:7, 1] = 1
    truth[0, 5:9] = 1
    compressed = coco_mask.encode(np.asfortranarray(truth))
    runs, flat, value, count = [], truth.flatten(order="F"), 0, 0
    for pixel in flat:  # column-major runs starting with background, as COCO writes them
        if pixel != value:
            runs.append(count)
            value, count = pixel, 0
        count += 1
    runs.append(count)
    path = _file(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 1, "segmentation": {"size": [H, W], "counts": runs}},
        {"id": 2, "image_id": 2, "category_id": 1, "iscrowd": 1,
         "segmentation": {"size": [H, W], "counts": compressed["counts"].decode("ascii")}}])
    assert np.array_equal(read_coco_mask(path, image_id=1, categories=("1",)).array, truth.astype(bool))
    assert np.array_equal(read_coco_mask(path, image_id=2, categories=("1",)).array, truth.astype(bool))


@pytest.mark.parametrize("annotation, message", [
    ({"id": 7, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 2, 2]]}, "fewer than 3 points"),
    ({"id": 7, "image_id": 1, "category_id": 1, "segmentation": {"size": [H, W], "counts": [3, 4]}}, "cover 7 pixels"),
    ({"id": 7, "image_id": 1, "category_id": 1, "segmentation": {"size": [5, 5], "counts": [25]}}, "RLE size"),
])
def test_bad_segmentations_name_file_and_annotation(tmp_path, annotation, message):
    path = _file(tmp_path, [annotation])
    with pytest.raises(ConversionError, match=rf"train\.json: annotation 7 .*{message}"):
        read_coco_mask(path, image_id=1, categories=("1",))


def test_inconsistent_files_are_refused(tmp_path):
    with pytest.raises(ConversionError, match="category 5, which is not in 'categories'"):
        load_coco(_file(tmp_path, [{"id": 1, "image_id": 1, "category_id": 5, "segmentation": []}]))
    path = _file(tmp_path, [])
    with pytest.raises(ConversionError, match=r"categories \['2'\] not in the file"):
        read_coco_mask(path, image_id=1, categories=("2",))
