"""Instance annotations: per-object PNGs merged with stable ids; instance-label TIFFs kept exact."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from omnimedseg.converters.formats.instances import merge_instance_masks, read_instance_map
from omnimedseg.errors import ConversionError


def _write_objects(folder, objects, mode="L"):
    """One binary PNG per object, named like DSB2018's (hex ids); returns the paths."""
    paths = []
    for name, (rows, cols) in objects.items():
        mask = np.zeros((12, 16), np.uint8)
        mask[rows, cols] = 255
        path = folder / f"{name}.png"
        Image.fromarray(mask).convert(mode).save(path)
        paths.append(path)
    return paths


def test_merge_gives_ids_by_file_name_whatever_the_order(tmp_path):
    objects = {"c3f1": (slice(0, 3), slice(0, 3)), "0a9e": (slice(5, 8), slice(5, 9)),
               "7b20": (slice(9, 12), slice(0, 2))}
    paths = _write_objects(tmp_path, objects)
    merged = merge_instance_masks(*paths)
    again = merge_instance_masks(*reversed(paths))
    assert np.array_equal(merged.array, again.array)
    assert merged.array.dtype == np.uint16
    assert merged.meta["instance_files"] == {1: "0a9e.png", 2: "7b20.png", 3: "c3f1.png"}
    assert (merged.array[5:8, 5:9] == 1).all() and (merged.array[9:12, 0:2] == 2).all()
    assert (merged.array[0:3, 0:3] == 3).all()
    assert np.count_nonzero(merged.array) == 9 + 12 + 6


def test_touching_objects_stay_separate_instances(tmp_path):
    # Two nuclei that touch form one connected component; their count comes from the files.
    paths = _write_objects(tmp_path, {"a": (slice(2, 6), slice(2, 5)), "b": (slice(2, 6), slice(5, 8))})
    merged = merge_instance_masks(*paths).array
    from scipy import ndimage

    assert ndimage.label(merged > 0)[1] == 1
    assert sorted(np.unique(merged).tolist()) == [0, 1, 2]


def test_one_bit_pngs_are_merged(tmp_path):
    # Pillow hands 1-bit PNGs out as bool arrays; the merge must not depend on 255.
    paths = _write_objects(tmp_path, {"a": (slice(0, 2), slice(0, 2)), "b": (slice(4, 6), slice(4, 6))}, mode="1")
    assert Image.open(paths[0]).mode == "1"
    merged = merge_instance_masks(*paths).array
    assert merged[0, 0] == 1 and merged[5, 5] == 2 and np.count_nonzero(merged) == 8


def test_overlap_and_empty_masks_are_errors(tmp_path):
    paths = _write_objects(tmp_path, {"a": (slice(0, 4), slice(0, 4)), "b": (slice(3, 6), slice(3, 6))})
    with pytest.raises(ConversionError, match=r"b\.png: 1 pixel\(s\) also belong to a\.png"):
        merge_instance_masks(*paths)
    empty = tmp_path / "z.png"
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(empty)
    with pytest.raises(ConversionError, match="z.png: empty instance mask"):
        merge_instance_masks(paths[0], empty)
    other = tmp_path / "y.png"
    Image.fromarray(np.full((10, 16), 255, np.uint8)).save(other)
    with pytest.raises(ConversionError, match=r"y\.png: instance mask of shape \(10, 16\); expected \(12, 16\)"):
        merge_instance_masks(paths[0], other)


def test_real_stardist_instance_tiff_keeps_ids(realdata, tmp_path):
    source = realdata("stardist_dsb2018_tif") / "stardist" / "data" / "images" / "mask2d.tif"
    path = tmp_path / "mask2d.tif"
    shutil.copy(source, path)
    raw = np.asarray(Image.open(path))
    instances = read_instance_map(path)
    assert instances.array.dtype == np.uint16 and instances.array.shape == (512, 512)
    assert np.array_equal(instances.array, raw)
    assert instances.meta["instance_count"] == 125 and int(instances.array.max()) == 183


def test_instance_tiffs_int32_float_and_negative(tmp_path):
    ids = np.array([[0, 3, 3], [70000, 0, 5]], np.int32)
    Image.fromarray(ids).save(tmp_path / "i32.tif")
    out = read_instance_map(tmp_path / "i32.tif")
    assert out.array.dtype == np.uint32 and out.array.tolist() == ids.tolist() and out.meta["instance_count"] == 3
    Image.fromarray(ids.astype(np.float32)).save(tmp_path / "f.tif")
    assert read_instance_map(tmp_path / "f.tif").array.tolist() == ids.tolist()
    Image.fromarray(np.array([[0, 1.5]], np.float32)).save(tmp_path / "bad.tif")
    with pytest.raises(ConversionError, match="non-integral label values"):
        read_instance_map(tmp_path / "bad.tif")
    Image.fromarray(np.array([[0, -2]], np.int32)).save(tmp_path / "neg.tif")
    with pytest.raises(ConversionError, match="negative instance ids"):
        read_instance_map(tmp_path / "neg.tif")
