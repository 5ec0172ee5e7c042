"""MedSegDB label tree, import of the real example tree, export, and model-ready preprocessing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from omnimedseg.data import ConvertedDataset
from omnimedseg.data.medsegdb import LabelTree, MedSegDBDataset, export_medsegdb, scan_medsegdb
from omnimedseg.data.preprocessing import box_from_mask, intensity_to_uint8, model_input, resize_mask
from omnimedseg.errors import UsageError
from omnimedseg.testing import check_converter
from tests.converters.fake.hc18 import make_remote_files

HIERARCHY = json.loads((Path(__file__).resolve().parents[2] / "omnimedseg" / "data" /
                        "medsegdb_hierarchy.json").read_text())


def test_tree_indices_follow_the_listed_order():
    tree = LabelTree.load()
    ctx = tree.context("MRI", "ProstatePeripheralZone")
    assert ctx.modality == HIERARCHY["modality_order"].index("MRI") == 7
    assert ctx.task == HIERARCHY["task_order"].index("ProstatePeripheralZone") and ctx.seen
    assert [HIERARCHY[f"level{i}_order"][ctx.organ[i - 1]] for i in (1, 2, 3)] == ["body", "pelvis", "prostate"]
    assert tree.context("Dermoscopy", "Skin").modality_name == "Dermos"
    assert tree.context("xray", "LeftLung").modality_name == "Xray"
    assert tree.context("CT", "CervicalSpine3").task_name == "CervicalSpine"  # trailing level digits dropped
    unseen = tree.context("CT", "ColonCancer", unseen=True)
    assert unseen.task == len(HIERARCHY["task_order"]) == 111 and not unseen.seen and unseen.organ is not None


def test_registry_classes_map_or_say_they_do_not():
    tree = LabelTree.load()
    assert tree.task_for_class("liver") == "Liver" and tree.task_for_class("left_kidney") == "LeftKidney"
    assert tree.task_for_class("gallbladder") == "GallBladder"
    fetal = tree.context_for_class("ultrasound", "fetal_head")
    assert tree.task_for_class("fetal_head") is None
    assert not fetal.seen and fetal.task == tree.unseen_task and fetal.organ is None and not fetal.complete
    assert tree.context_for_class("microscopy", "nucleus").modality is None  # no MedSegDB modality


def test_real_example_tree_loads_with_right_modality_and_task(realdata):
    root = realdata("medsegdb_example") / "eval"
    items = scan_medsegdb(root)
    assert len(items) == 14
    by_task = {(i.group, i.dataset, i.modality, i.task, i.sequence, i.shift) for i in items}
    assert ("ID", "MSD_Task05", "MRI", "ProstatePeripheralZone", "ADC", None) in by_task
    assert ("ID", "ISIC2018", "Dermoscopy", "Skin", None, None) in by_task
    assert ("OOD", "MSD_Task10", "CT", "ColonCancer", None, "cross_task") in by_task
    assert ("RealWorld", "StomachCancerDataset", "CT", "StomachCancer", None, "cross_task") in by_task
    assert {i.stage for i in items if i.group != "ID"} == {"inference"} and {i.stage for i in items
                                                                               if i.group == "ID"} == {None}
    dataset = MedSegDBDataset(root)
    tree = LabelTree.load()
    for index, item in enumerate(dataset.items):
        sample = dataset[index]
        assert sample["image"].shape == (3, 256, 256) and sample["masks"].shape == (1, 256, 256)
        assert sample["masks"].any()
        ctx = dataset.context(index)
        assert sample["context"].tolist() == ctx.as_row()
        assert ctx.modality == tree.modality_index(item.modality) is not None
        # Every item, cross-task ones included, gets its own task's row as the reference loader
        # (MedSegX-code data/dataset.py: organ_level_4 = task_idx[organ]) gives it.
        # A task outside the table (RealWorld's StomachCancer: the reference loader raises KeyError
        # on it) is the only one on the unseen-task row.
        task = item.task.rstrip("0123456789")
        if task in tree.tasks:
            assert tree.tasks[ctx.task] == task and ctx.seen
        else:
            assert (item.task, ctx.task, ctx.seen) == ("StomachCancer", tree.unseen_task, False)
        assert ctx.organ is not None  # every task of the example is in the organ tree
    colon = next(dataset.context(i) for i, it in enumerate(dataset.items) if it.task == "ColonCancer")
    assert colon.task == tree.tasks.index("ColonCancer") != tree.unseen_task  # a cross-task item


def test_export_of_a_converted_dataset_reimports(tmp_path):
    out = check_converter("hc18", make_remote_files, tmp_path, {"train": 3, "test": 2})
    dataset = ConvertedDataset("hc18", root=out.parents[2])
    written = export_medsegdb(dataset, tmp_path / "medsegdb")
    assert written == 3
    back = MedSegDBDataset(tmp_path / "medsegdb")
    assert [(i.modality, i.task, i.dataset) for i in back.items] == [("US", "FetalHead", "hc18")] * 3
    image = np.load(back.items[0].image)
    label = np.load(back.items[0].label)
    assert image.dtype == np.uint8 and image.shape == (256, 256, 3)
    assert label.dtype == np.uint8 and set(np.unique(label)) == {0, 1}
    original = dataset.raw_item(0)
    assert np.array_equal(label.astype(bool), resize_mask(original[2][0], 256))
    assert back.context(0).task == LabelTree.load().unseen_task  # FetalHead is not a MedSegDB task


def test_intensity_rules_per_modality():
    ct = np.array([[-1000, -160], [40, 240]], dtype=np.int16)
    assert intensity_to_uint8(ct, "CT")[..., 0].tolist() == [[0, 0], [128, 255]]
    mr = np.linspace(0, 1000, 10000, dtype=np.float32).reshape(100, 100)
    grey = intensity_to_uint8(mr, "MRI")[..., 0]
    low, high = np.percentile(mr, (0.5, 99.5))
    assert (grey[mr >= high] == 255).all() and (grey[mr <= low] == 0).all()
    assert ((grey > 0) & (grey < 255)).mean() > 0.98 and abs(int(grey[50, 0]) - 128) <= 2
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert np.array_equal(intensity_to_uint8(rgb, "dermoscopy"), rgb)
    us = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(intensity_to_uint8(us, "ultrasound")[..., 1], us)


def test_boxes_from_masks():
    mask = np.zeros((50, 60), bool)
    mask[10:20, 30:45] = True
    assert box_from_mask(mask).tolist() == [30, 10, 44, 19]  # x0, y0, x1, y1
    rng = np.random.default_rng(0)
    boxes = np.array([box_from_mask(mask, 20, rng) for _ in range(200)])
    assert (boxes[:, :2] <= [30, 10]).all() and (boxes[:, 2:] >= [44, 19]).all()
    assert (boxes >= 0).all() and (boxes[:, 2] <= 59).all() and (boxes[:, 3] <= 49).all()
    assert len({tuple(b) for b in boxes}) > 50
    with pytest.raises(UsageError, match="empty mask"):
        box_from_mask(np.zeros((4, 4), bool))
    with pytest.raises(UsageError, match="explicit numpy Generator"):
        box_from_mask(mask, 5)


def test_model_input_resizes_image_and_mask_safely():
    image = np.random.default_rng(1).integers(0, 4000, (100, 80)).astype(np.uint16)
    mask = np.zeros((100, 80), bool)
    mask[20:60, 10:50] = True
    rgb, small = model_input(image, mask, "MRI", 64)
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8 and small.dtype == bool
    assert small.sum() == pytest.approx(mask.mean() * 64 * 64, rel=0.1)
