"""Data layer, exports, QA, metrics and robot users on channels, raters, instances and ignore masks."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from omnimedseg.converters._run import convert_dataset
from omnimedseg.data.datasets import ConvertedDataset, SliceDataset
from omnimedseg.errors import UsageError
from tests.converters import contract_data as data


def _converted(tmp_path, monkeypatch, make_card, make_raw, **kwargs) -> dict:
    data.use_test_converters(monkeypatch)
    cards = tmp_path / "cards"
    card = make_card(cards, **kwargs)
    raw = tmp_path / "raw"
    make_raw(raw)
    root = tmp_path / "root"
    convert_dataset(card, root, raw=raw)
    return {"root": root, "registry_dirs": (str(cards),), "raw": raw, "id": card.id}


@pytest.fixture
def brain(tmp_path, monkeypatch):
    return _converted(tmp_path, monkeypatch, data.brain_card, data.make_brain)


@pytest.fixture
def fundus(tmp_path, monkeypatch):
    return _converted(tmp_path, monkeypatch, data.fundus_card, data.make_fundus)


@pytest.fixture
def nuclei(tmp_path, monkeypatch):
    return _converted(tmp_path, monkeypatch, data.nuclei_card, data.make_nuclei)


def _kw(d):
    return {"root": d["root"], "registry_dirs": d["registry_dirs"]}


def test_multichannel_volumes_and_slices(brain):
    dataset = ConvertedDataset("brain4d", **_kw(brain))
    sample = dataset[0]
    four_d = np.asanyarray(nib.load(brain["raw"] / "imagesTr" / "BRATS_000.nii.gz").dataobj)
    assert sample["image"].shape == (2, 9, 8, 6)
    assert np.array_equal(sample["image"].numpy(), np.moveaxis(four_d, -1, 0).astype(np.float32))
    assert sample["ignore"].shape == (9, 8, 6) and sample["ignore"][:, :, 0].all() and not sample["ignore"][:, :, 1:].any()
    assert "instances" not in sample
    slices = SliceDataset("brain4d", axis=2, **_kw(brain))
    assert len(slices) == 3 * 6
    first = slices[0]
    assert first["image"].shape == (2, 9, 8) and first["ignore"].all()
    assert np.array_equal(first["image"].numpy(), np.moveaxis(four_d[:, :, 0], -1, 0).astype(np.float32))
    assert not slices[1]["ignore"].any()
    assert slices.ignore_mask(0).all() and np.array_equal(dataset.ignore_mask(0), sample["ignore"].numpy())


def test_rater_parameter_picks_that_annotator(fundus):
    reference = ConvertedDataset("fundus", **_kw(fundus))
    expert3 = ConvertedDataset("fundus", rater="expert3", **_kw(fundus))
    case = reference.cases[0]["case_id"]
    cup3 = np.asarray(Image.open(fundus["raw"] / "Masks" / "expert3" / f"{case}_cup.png")) > 0
    consensus = np.asarray(Image.open(fundus["raw"] / "Consensus" / f"{case}_cup.png")) > 0
    assert np.array_equal(expert3[0]["masks"][1].numpy(), cup3)
    assert np.array_equal(reference[0]["masks"][1].numpy(), consensus)
    assert not np.array_equal(cup3, consensus)
    assert reference[0]["image"].shape == (3, 40, 48) and not reference[0]["ignore"].any()
    with pytest.raises(UsageError, match=r"no rater 'expert9'; the dataset's raters are \['expert1'"):
        ConvertedDataset("fundus", rater="expert9", **_kw(fundus))


def test_instances_in_samples_and_default_collate(nuclei):
    import torch

    dataset = ConvertedDataset("nuclei", **_kw(nuclei))
    sample = dataset[0]
    published = np.asarray(Image.open(nuclei["raw"] / "instances" / "nuc00.png"))
    assert sample["instances"].dtype == torch.int32 and np.array_equal(sample["instances"][0].numpy(), published)
    assert sample["ignore"][-3:].all()
    batch = torch.utils.data.default_collate([{k: dataset[i][k] for k in ("image", "masks", "ignore", "instances")}
                                              for i in range(2)])
    assert batch["instances"].shape == (2, 1, 32, 36)


def test_nnunet_export_has_one_file_per_channel_and_the_ignore_label(brain):
    from omnimedseg.data.exports import export_dataset

    result = export_dataset("brain4d", "nnunet", brain["root"] / "nn", **_kw(brain))
    info = json.loads((result.folder / "dataset.json").read_text())
    assert info["channel_names"] == {"0": "FLAIR", "1": "T1w"}
    assert info["labels"] == {"background": 0, "edema": 1, "tumour": 2, "ignore": 3}
    four_d = np.asanyarray(nib.load(brain["raw"] / "imagesTr" / "BRATS_001.nii.gz").dataobj)
    for c in range(2):
        exported = np.asanyarray(nib.load(result.folder / "imagesTr" / f"BRATS_001_{c:04d}.nii.gz").dataobj)
        assert np.array_equal(exported, four_d[..., c])
    label = np.asanyarray(nib.load(result.folder / "labelsTr" / "BRATS_001.nii.gz").dataobj)
    raw_label = np.asanyarray(nib.load(brain["raw"] / "labelsTr" / "BRATS_001.nii.gz").dataobj)
    assert (label[:, :, 0] == 3).all() and np.array_equal(label[:, :, 1:], raw_label[:, :, 1:])


def test_msd_export_lists_channel_files_for_monai(brain):
    from monai.data import load_decathlon_datalist

    from omnimedseg.data.exports import export_dataset

    result = export_dataset("brain4d", "msd", brain["root"] / "msd", **_kw(brain))
    items = load_decathlon_datalist(str(result.folder / "dataset.json"), data_list_key="training")
    assert len(items) == 3
    assert [p.rsplit("/", 1)[1] for p in items[0]["image"]] == ["BRATS_000_FLAIR.nii.gz", "BRATS_000_T1w.nii.gz"]
    assert all(json.loads((result.folder / "dataset.json").read_text())["modality"].values())


def test_qa_sheets_for_channels_raters_and_instances(brain, fundus, nuclei, tmp_path):
    from omnimedseg.data.qa import IGNORE_GREY, run_qa

    report = run_qa("brain4d", tmp_path / "qa_brain", **_kw(brain))
    names = {p.name for p in report.sheets}
    assert "channels_01.png" in names and report.validation_ok
    overview = np.asarray(Image.open(tmp_path / "qa_brain" / "overview_01.png"))
    assert (overview == IGNORE_GREY).all(-1).any()  # legend swatch of the ignore region
    fundus_sheets = {p.name for p in run_qa("fundus", tmp_path / "qa_fundus", **_kw(fundus)).sheets}
    assert {"rater_expert1_01.png", "rater_expert2_01.png", "rater_expert3_01.png"} <= fundus_sheets
    nuclei_sheets = {p.name for p in run_qa("nuclei", tmp_path / "qa_nuclei", **_kw(nuclei)).sheets}
    assert "instances_01.png" in nuclei_sheets


def test_metrics_exclude_the_ignore_mask():
    from omnimedseg.metrics import HD95, NSD, Dice, InteractiveMetric, exclude_ignored

    reference = np.zeros((20, 20), bool)
    reference[5:15, 5:15] = True
    prediction = reference.copy()
    prediction[0:3, :] = True  # a false positive strip outside the field of view
    ignore = np.zeros((20, 20), bool)
    ignore[0:4, :] = True
    assert Dice()(prediction, reference) < 0.9
    assert Dice()(prediction, reference, ignore=ignore) == 1.0
    assert HD95()(prediction, reference) > 1.0 and HD95()(prediction, reference, ignore=ignore) == 0.0
    assert NSD(1.0)(prediction, reference, ignore=ignore) == 1.0
    score = InteractiveMetric(Dice())([prediction, reference], reference, ignore=ignore)
    assert score.step_values == (1.0, 1.0)
    with pytest.raises(UsageError, match="ignore must have the reference's shape"):
        exclude_ignored(prediction, reference, ignore[:10])


def test_robot_session_never_prompts_in_the_ignore_region():
    from omnimedseg.interactive import get_robot_user, run_robot_session

    label = np.zeros((30, 30), bool)
    label[2:28, 2:28] = True
    ignore = np.zeros((30, 30), bool)
    ignore[:, :20] = True  # only columns >= 20 are annotated
    session = run_robot_session(get_robot_user("click_largest_center"), label, lambda prompts, previous: label & ~ignore,
                                2, seed=0, case_id="c", class_name="x", ignore=ignore)
    first = session[0].interaction
    assert first.coord[1] >= 20  # without ignore the centre click would be at column ~14
    unmasked = run_robot_session(get_robot_user("click_largest_center"), label, lambda p, q: label, 0, seed=0,
                                 case_id="c", class_name="x")
    assert unmasked[0].interaction.coord[1] < 20


def test_benchmark_never_prompts_or_scores_in_the_ignore_region(tmp_path, monkeypatch):
    """The runner passes each case's ignore mask to the robot user and to the metrics."""
    from functools import partial

    from omnimedseg.benchmark import Suite, run_benchmark

    d = _converted(tmp_path, monkeypatch, data.nuclei_card, partial(data.make_nuclei, ignored_cols=18, n=4))
    suite = Suite.from_dict({"name": "ign", "steps": 2, "seed": 0, "sheets": 0,
                             "model": {"name": "oracle_noise", "params": {"noise": 0.3, "radius": 3}},
                             "datasets": [{"id": "nuclei"}], "robot_users": ["click_largest_center"],
                             "metrics": ["dice"]})
    out = run_benchmark(suite, tmp_path / "bench", root=d["root"], registry_dirs=d["registry_dirs"])
    records = json.loads((out / "results.json").read_text())["records"]
    clicks = [p["coord"] for r in records for p in r["prompts"] if "coord" in p]
    assert clicks and all(col >= 18 and row < 29 for row, col in clicks)


def test_qa_channel_tiles_name_every_channel_the_first_included(brain):
    """The channels sheet titles each tile with its channel; the first channel once had no name on it."""
    from omnimedseg.data.datasets import ConvertedDataset
    from omnimedseg.data.qa import _case_tiles

    dataset = ConvertedDataset("brain4d", labelled_only=True, **_kw(brain))
    classes = range(len(dataset.class_names))
    overview = [np.asarray(t) for t in _case_tiles(dataset, 0, classes, 256, None)]
    first, second = ([np.asarray(t) for t in _case_tiles(dataset, 0, classes, 256, None, ch)] for ch in (0, 1))
    for plain, named, other in zip(overview, first, second):
        assert np.array_equal(plain[14:], named[14:])  # the same pixels of channel 0 ...
        assert not np.array_equal(plain[:14], named[:14])  # ... titled with its name
        assert not np.array_equal(named[:14], other[:14])
