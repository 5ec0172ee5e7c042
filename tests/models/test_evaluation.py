"""The reference evaluation protocol: tight box, best of three masks, Dice + HD95 (px), CSV + markdown."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from omnimedseg.data.medsegdb import MedSegDBDataset
from omnimedseg.data.preprocessing import box_from_mask
from omnimedseg.metrics import dice, hd95
from omnimedseg.models import ModelConfig, ModelError, build_model, medsegx_checkpoint_keys, predict
from omnimedseg.models.context import TASKS, UNSEEN_TASK_INDEX
from omnimedseg.models.evaluation import best_of_masks, evaluate, reference_hd_for_empty_prediction
from omnimedseg.models.training import PromptedSamples
from tests.data.conftest import hc18, organs  # noqa: F401  (fixtures)
from tests.helpers import run_cli

TINY = ModelConfig.preset("tiny_medsegx")


@pytest.fixture(scope="module")
def model():
    """Tiny MedSegX with random, non-trivial weights (values are meaningless, the protocol is not)."""
    torch.manual_seed(0)
    m = build_model(TINY)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "adapter_up" in name or "embed" in name:
                p.normal_(0, 0.5)
    return m


@pytest.fixture
def example(realdata):
    return MedSegDBDataset(realdata("medsegdb_example") / "eval")


def square(size=64, lo=10, hi=30):
    mask = np.zeros((size, size), bool)
    mask[lo:hi, lo:hi] = True
    return mask


# -- protocol pieces -----------------------------------------------------------------------
def test_best_mask_is_chosen_by_dice_and_hd_comes_from_that_mask():
    label = square()
    shifted = np.roll(label, 3, axis=1)  # Dice 0.85, small HD
    with_blob = label.copy()
    with_blob[50:60, 50:60] = True  # higher Dice (0.89), far larger HD95
    masks = np.stack([np.zeros_like(label), shifted, with_blob])
    index, dsc, hd = best_of_masks(masks, label)
    assert index == 2 and dsc == pytest.approx(dice(with_blob, label))
    assert hd == pytest.approx(hd95(with_blob, label)) and hd > 5 * hd95(shifted, label)
    assert best_of_masks(np.stack([shifted, shifted, label]), label)[0] == 2
    assert best_of_masks(np.stack([label, label, shifted]), label)[0] == 0  # ties keep the first
    with pytest.raises(ModelError):
        best_of_masks(masks, label, empty_hd="max")


def test_empty_prediction_hd_follows_the_reference_rule():
    label = square(16, 6, 9)
    background = np.argwhere(~label)
    inside = np.argwhere(label)
    brute = np.sqrt(((background[:, None, :] - inside[None, :, :]) ** 2).sum(-1)).min(1)
    assert reference_hd_for_empty_prediction(label) == pytest.approx(np.percentile(brute, 95))
    empty = np.zeros((3, 16, 16), bool)
    assert best_of_masks(empty, label)[1:] == (0.0, pytest.approx(np.percentile(brute, 95)))
    assert best_of_masks(empty, label, "diagonal")[2] == pytest.approx(np.hypot(16, 16))


def test_hd95_in_pixels_equals_monai_as_the_reference_uses():
    monai_metrics = pytest.importorskip("monai.metrics")
    rng = np.random.default_rng(0)
    for _ in range(3):
        a, b = square(48, *sorted(rng.integers(2, 40, 2) + [0, 6])), square(48, *sorted(rng.integers(2, 40, 2) + [0, 6]))
        b[rng.integers(0, 48, 5), rng.integers(0, 48, 5)] = True
        ref = monai_metrics.compute_hausdorff_distance(torch.from_numpy(a)[None, None].float(),
                                                       torch.from_numpy(b)[None, None].float(),
                                                       include_background=True, percentile=95)
        assert hd95(a, b) == pytest.approx(float(ref), abs=1e-4)


# -- end to end ----------------------------------------------------------------------------
def test_real_medsegdb_example_runs_end_to_end(model, example, tmp_path):
    result = evaluate(model, example, tmp_path, batch_size=5)
    assert set(result.reports) == {"ID", "OOD/cross_site", "OOD/cross_task", "RealWorld/cross_site",
                                   "RealWorld/cross_task"}
    assert sum(len(r.rows) for r in result.reports.values()) == 14
    for path in ("ID/internal.csv", "ID/internal.md", "OOD/cross_site/cross_site.csv", "OOD/cross_task/cross_task.md",
                 "RealWorld/cross_task/cross_task.csv", "summary.json"):
        assert (tmp_path / path).is_file(), path
    rows = list(csv.DictReader((tmp_path / "ID" / "internal.csv").open()))
    assert list(rows[0]) == ["File", "DSC", "HD"] and len(rows) == 10
    assert rows[0]["File"] == "AbdomenCT1K/CT_Liver/casenum_00371_sliceid_50.npy"
    md = (tmp_path / "ID" / "internal.md").read_text().splitlines()
    assert md[0] == "# internal evaluation" and "- MSD_Task05" in md and "  - MRI_ProstatePeripheralZone" in md
    assert any(line.startswith("    - ADC: DSC (") for line in md) and md[-2] == "- ALL"
    mean = np.mean([float(r["DSC"]) for r in rows])
    assert md[-1] == f"  - Mean: DSC ({mean:.4f}), HD ({np.mean([float(r['HD']) for r in rows]):.4f})"
    external = (tmp_path / "OOD" / "cross_task" / "cross_task.md").read_text().splitlines()
    assert external[:4] == ["# external cross_task evaluation", "", "- CT_ColonCancer", external[3]]
    assert external[3].startswith("  - MSD_Task10: DSC (")
    assert json.loads((tmp_path / "summary.json").read_text())["ID"]["files"] == 10

    # Recompute one file by hand: tight box of the 256-px label, three masks, best Dice, its HD95.
    for position in (2, 11):  # ISIC (ID) and the cross-task colon cancer (its own task's row)
        item = example.items[position]
        label = np.load(item.label) > 0
        image = np.load(item.image)
        task = f"{item.modality}_{item.task}"
        context = example[position]["context"].tolist()
        pred = predict(model, image, boxes=box_from_mask(label)[None], context=torch.tensor([context]))
        masks = pred.masks[0].numpy()
        assert masks.shape == (3, 256, 256)
        scores = [dice(m, label) for m in masks]
        best = int(np.argmax(scores))
        report = result.reports["ID" if item.shift is None else f"{item.group}/{item.shift}"]
        row = next(r for r in report.rows if r["task"] == task and r["File"].endswith(item.label.name))
        assert row["mask"] == best and row["DSC"] == pytest.approx(max(scores))
        assert row["HD"] == pytest.approx(best_of_masks(masks, label)[2])
    # Cross-task data uses its task's row, as the reference loader does (task_idx[organ]), not row 111.
    assert item.shift == "cross_task" and context[-1] == TASKS.index("ColonCancer") != UNSEEN_TASK_INDEX


def test_reference_selection_keeps_only_the_reference_external_pairs(model, example):
    result = evaluate(model, example, None, reference_selection=True)
    assert set(result.reports) == {"ID", "OOD/cross_site", "OOD/cross_task"} and result.files == []


def write_medsegdb(root: Path, folder: str, cases: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for case in range(cases):
        for sub, array in (("npy_imgs", rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)),
                           ("npy_gts", square(256, 60 + case, 120).astype(np.uint8))):
            (root / folder / sub).mkdir(parents=True, exist_ok=True)
            np.save(root / folder / sub / f"casenum_{folder[-20:].replace('/', '')}{case}_sliceid_0.npy", array)


def test_external_finetune_files_are_never_evaluated_and_train_uses_the_percent_folder(model, tmp_path):
    base = "OOD/cross_site/MRI_Prostate/siteA"
    write_medsegdb(tmp_path, f"{base}/inference", 2)
    write_medsegdb(tmp_path, f"{base}/finetune/005_percent", 1, seed=1)
    write_medsegdb(tmp_path, f"{base}/finetune/100_percent", 3, seed=2)
    data = MedSegDBDataset(tmp_path)
    assert len(data) == 6
    result = evaluate(model, data, tmp_path / "out")
    rows = result.reports["OOD/cross_site"].rows
    assert len(rows) == 2 and all(r["File"].startswith("MRI_Prostate/siteA/casenum_") for r in rows)
    samples = PromptedSamples(data, size=96)
    assert len(samples.for_training(5)) == 1 and len(samples.for_training(100)) == 3
    with pytest.raises(ModelError, match="no finetune/025_percent"):
        samples.for_training(25)


def test_converted_data_is_evaluated_at_256_px(model, organs, tmp_path):  # noqa: F811
    from omnimedseg.data.collection import DatasetCollection

    result = evaluate(model, DatasetCollection(["organs3d"], **organs), tmp_path)
    rows = result.reports["converted"].rows
    assert len(rows) == 6 and {r["task"] for r in rows} == {"CT_Liver", "CT_Spleen"}
    assert rows[0]["File"].startswith("organs3d/CT_Liver/organs_001_slice1")
    md = (tmp_path / "converted" / "converted.md").read_text()
    assert "- organs3d\n  - CT_Liver: DSC (" in md and "  - CT_Spleen: DSC (" in md


def test_evaluate_cli_with_a_trained_checkpoint(model, example, tmp_path):
    owned = set(medsegx_checkpoint_keys(TINY))
    sam_file = tmp_path / "sam.pth"
    torch.save({k: v for k, v in model.state_dict().items() if k not in owned}, sam_file)
    medsegx_file = tmp_path / "medsegx.pth"
    torch.save({"model": {k: v for k, v in model.state_dict().items() if k in owned}}, medsegx_file)
    data = example.items[0].image.parents[4]
    out = tmp_path / "eval"
    result = run_cli("evaluate", out, "--model", "tiny_medsegx", "--sam-checkpoint", sam_file,
                     "--medsegx-checkpoint", medsegx_file, "--data", data, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    direct = evaluate(model, example, None).summary()
    assert summary["reports"]["ID"] == pytest.approx(direct["ID"])
    assert (out / "ID" / "internal.csv").is_file()
    refused = run_cli("evaluate", out, "--model", "tiny_medsegx", "--random-init")
    assert refused.exit_code == 2 and refused.output.startswith("Error: give either --data")


def test_plain_sam_is_evaluated_without_medsegdb_context(hc18, tmp_path):  # noqa: F811
    from omnimedseg.data import ConvertedDataset

    torch.manual_seed(0)
    sam = build_model("tiny")
    data = ConvertedDataset("hc18", **hc18)  # fetal_head has no MedSegDB organ: MedSegX cannot take it
    with pytest.raises(ModelError, match="no MedSegDB context"):
        evaluate(build_model(TINY), data, None)
    rows = evaluate(sam, data, tmp_path).reports["converted"].rows
    assert len(rows) == 3 and all(0 <= r["DSC"] <= 1 for r in rows) and rows[0]["task"] == "US_fetal_head"


def test_cross_task_items_feed_evaluate_and_train_their_task_row(example):
    """PromptedSamples (what evaluate and train iterate) gives a cross-task item the row the
    reference loader gives it: task_idx[organ] (MedSegX-code data/dataset.py), not row 111."""
    samples = PromptedSamples(example)
    checked = []
    for position in range(len(samples)):
        meta = samples.describe(position)
        if meta["shift"] != "cross_task" or meta["task"] == "CT_StomachCancer":  # not in the task table
            continue
        task = meta["task"].split("_", 1)[1]
        checked.append(task)
        assert samples[position]["context"].tolist()[-1] == TASKS.index(task) != UNSEEN_TASK_INDEX
        assert samples.with_options(box_shift=5)[position]["context"].tolist()[-1] == TASKS.index(task)
    assert "ColonCancer" in checked
