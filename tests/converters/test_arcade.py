import json

import numpy as np
import pytest

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.testing import check_converter
from tests.converters.fake.arcade import ANNOTATIONS, SEGMENTS, expected_mask, make_remote_files


@pytest.mark.parametrize("task, splits", [("syntax", {"train": 2, "val": 2, "test": 1}),
                                          ("stenosis", {"train": 1, "val": 1, "test": 1})])
def test_arcade_coco_polygons_per_task(tmp_path, task, splits):
    out = check_converter(f"arcade_{task}", make_remote_files, tmp_path, expected_splits=splits)
    categories = [f"segment_{s}" for s in SEGMENTS] if task == "syntax" else ["stenosis"]
    for split, images in ANNOTATIONS[task].items():
        for name in images:
            case = f"{split}_{name[:-4]}"
            for cls in categories:
                category = cls.removeprefix("segment_")
                found = read_png_array(out / "masks" / case / f"{cls}.png")
                assert np.array_equal(found, expected_mask(task, split, name, category)), (case, cls)
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["labels"]["background"] == 0 and len(dataset["labels"]) == len(categories) + 1
    provenance = json.loads((out / "provenance.json").read_text())["files"]
    entry = provenance[f"masks/train_1/{categories[0]}.png"]
    assert entry["sources"][0]["path"] == f"arcade/{task}/train/annotations/train.json"
    assert "read_coco_mask(categories=" in entry["operation"] and "image_id=1" in entry["operation"]
