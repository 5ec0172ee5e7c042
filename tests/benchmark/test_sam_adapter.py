"""SAM and MedSegX (tiny configs, random weights) driven by robot users through the runner."""

from __future__ import annotations

import json

import numpy as np
import pytest

from omnimedseg.benchmark import Suite, get_model, run_benchmark
from omnimedseg.errors import UsageError
from omnimedseg.interactive import Box, Click, Scribble


def _suite(model, users, **changes):
    data = {"name": "sam", "steps": 2, "sheets": 0, "model": model,
            "datasets": [{"id": "hc18", "split": "train", "max_cases": 2}],
            "robot_users": users, "metrics": ["dice"]}
    data.update(changes)
    return Suite.from_dict(data)


def test_sam_runs_clicks_and_boxes_with_refinement(hc18, tmp_path):
    out = run_benchmark(_suite({"name": "sam", "params": {"config": "tiny"}},
                               ["click_largest_center", "box_careful"]), tmp_path / "o", root=hc18["root"])
    records = json.loads((out / "results.json").read_text())["records"]
    assert len(records) == 4 and all(len(r["steps"]) == 3 for r in records)
    assert all(0.0 <= s["dice"] <= 1.0 for r in records for s in r["steps"])


def test_sam_prediction_has_the_image_shape_and_reuses_the_embedding():
    model = get_model("sam", config="tiny")
    image = np.random.default_rng(0).integers(0, 255, (54, 80), dtype=np.uint8)
    model.set_image(image, {"modality": "ultrasound", "affine": None, "class_name": "fetal_head"})
    first = model.predict([Click(coord=(20, 30), positive=True)], None)
    embedding = model.embeddings
    second = model.predict([Click(coord=(20, 30), positive=True), Scribble(coords=np.array([[25, 40], [26, 41]]),
                                                                           shape=(54, 80),
                                                                           positive=False)], first)
    assert first.shape == second.shape == (54, 80) and first.dtype == bool
    assert model.embeddings is embedding  # encoded once per case
    assert model.low_res is not None  # the previous mask is fed back


def test_medsegx_needs_boxes_and_a_context(hc18, tmp_path):
    model = get_model("sam", config="tiny_medsegx", organ_fallback="BrainWholeTumor")
    image = np.zeros((54, 80), np.uint8)
    model.set_image(image, {"modality": "ultrasound", "affine": None, "class_name": "fetal_head"})
    assert model.context[-1] == 111  # fetal head is not a MedSegDB task: the unseen-task row
    assert model.predict([Box(lo=(10, 10), hi=(40, 60), positive=True)], None).shape == (54, 80)
    with pytest.raises(UsageError, match="use a box_\\* robot user"):
        model.predict([Click(coord=(20, 30), positive=True)], None)
    with pytest.raises(UsageError, match="'Brain' is not a task"):
        get_model("sam", config="tiny_medsegx", organ_fallback="Brain").set_image(
            image, {"modality": "ultrasound", "affine": None, "class_name": "fetal_head"})
    bare = get_model("sam", config="tiny_medsegx")
    with pytest.raises(UsageError, match="organ_fallback"):
        bare.set_image(image, {"modality": "ultrasound", "affine": None, "class_name": "fetal_head"})
    liver = get_model("sam", config="tiny_medsegx")
    liver.set_image(image, {"modality": "CT", "affine": None, "class_name": "liver"})
    assert liver.context == [2, 1, 4, 17, 59]  # CT_Liver in the MedSegDB tree
    out = run_benchmark(_suite({"name": "sam", "params": {"config": "tiny_medsegx", "organ_fallback": "BrainWholeTumor"}},
                               ["box_careful"]), tmp_path / "o", root=hc18["root"])
    assert (out / "summary.md").is_file()


def test_volumes_are_refused_with_the_fix(organs, tmp_path):
    with pytest.raises(UsageError, match='mode = "slices"'):
        run_benchmark(_suite({"name": "sam", "params": {"config": "tiny"}}, ["click_largest_center"],
                             datasets=[{"id": "organs3d"}]), tmp_path / "o", **organs)
    out = run_benchmark(_suite({"name": "sam", "params": {"config": "tiny"}}, ["click_largest_center"],
                               datasets=[{"id": "organs3d", "mode": "slices", "classes": ["liver"]}]),
                        tmp_path / "s", **organs)
    assert json.loads((out / "results.json").read_text())["records"]
