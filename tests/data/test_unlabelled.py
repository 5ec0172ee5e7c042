"""Classes a case does not annotate (DSAD single-organ frames): never a mask, never a sample, never a score.

The converted data is the DSAD fake release run through the real pipeline (download -> convert
-> validate); every layer downstream of dataset.json's per-case ``unlabelled`` is checked on it.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from omnimedseg.registry import load_registry
from omnimedseg.testing import check_converter
from tests.converters.fake.dsad import SHAPE, SINGLE, make_remote_files, organ_mask


@pytest.fixture(scope="module")
def dsad(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dsad")
    out = check_converter("dsad", make_remote_files, tmp, expected_splits={"train": 4, "val": 2, "test": 2})
    return {"out": out, "root": out.parents[2], "organs": load_registry().get("dsad").class_names}


def test_samples_say_which_classes_are_annotated_and_collate(dsad):
    import torch
    from torch.utils.data import default_collate

    from omnimedseg.data import ConvertedDataset

    dataset = ConvertedDataset("dsad", root=dsad["root"])
    by_id = {case["case_id"]: i for i, case in enumerate(dataset.cases)}
    organs = dsad["organs"]
    colon = dataset[by_id["colon_03_04"]]
    assert colon["annotated"].dtype == torch.bool
    assert colon["annotated"].tolist() == [o == "colon" for o in organs]
    assert np.array_equal(colon["masks"][organs.index("colon")].numpy(), organ_mask(SINGLE[("colon", "03", "04")]))
    assert not colon["masks"][[i for i, o in enumerate(organs) if o != "colon"]].any()
    multi = dataset[by_id["01_00"]]
    assert multi["annotated"].all()  # the multilabel frames annotate all eleven structures
    batch = default_collate([colon, multi])
    assert batch["annotated"].shape == (2, len(organs))


def test_benchmark_never_plans_or_scores_an_unlabelled_class(dsad, tmp_path):
    from omnimedseg.benchmark import Suite, run_benchmark
    from omnimedseg.benchmark.runner import plan, run_task
    from omnimedseg.errors import UsageError

    suite = Suite.from_dict({"name": "u", "steps": 1, "seed": 0, "sheets": 0,
                             "model": {"name": "oracle_noise", "params": {"noise": 0.2, "radius": 3}},
                             "datasets": [{"id": "dsad"}], "robot_users": ["click_largest_center"],
                             "metrics": ["dice"]})
    tasks = plan(suite, root=str(dsad["root"]))
    pairs = {(t.case_id, t.class_name) for t in tasks}
    organs = dsad["organs"]
    for organ, surgery, frame in SINGLE:
        case_id = f"{organ}_{surgery}_{frame}"
        assert {c for cid, c in pairs if cid == case_id} == {organ}
    assert len(tasks) == 4 * len(organs) + len(SINGLE)  # 4 multilabel frames x 11 + 1 per single-organ frame
    stray = next(t for t in tasks if t.case_id == "colon_03_04")
    from dataclasses import replace

    with pytest.raises(UsageError, match="not annotated in this case"):
        run_task(suite, replace(stray, class_name="liver"), str(dsad["root"]), ())
    out = run_benchmark(suite, tmp_path / "bench", root=str(dsad["root"]))
    records = json.loads((out / "results.json").read_text())["records"]
    scored = {(r["case_id"], r["class_name"]) for r in records}
    assert ("colon_03_04", "colon") in scored and ("colon_03_04", "liver") not in scored


def test_nnunet_export_marks_unknown_background_as_ignore_and_msd_lists_unlabelled(dsad, tmp_path):
    from omnimedseg.converters.formats.outputs import read_output
    from omnimedseg.data.exports import export_dataset

    organs = dsad["organs"]
    nnunet = export_dataset("dsad", "nnunet", tmp_path / "nnunet", root=dsad["root"]).folder
    info = json.loads((nnunet / "dataset.json").read_text())
    ignore = info["labels"]["ignore"]
    assert ignore == len(organs) + 1
    colon = read_output(nnunet / "labelsTr" / "colon_03_04.png")[0]
    expected = np.where(organ_mask(SINGLE[("colon", "03", "04")]), organs.index("colon") + 1, ignore)
    assert np.array_equal(colon, expected)
    multi = read_output(nnunet / "labelsTr" / "01_00.png")[0]
    assert ignore not in np.unique(multi)  # fully annotated frame: background stays background
    empty_liver = read_output(nnunet / "labelsTr" / "liver_01_00.png")[0]
    assert np.array_equal(empty_liver, np.full(SHAPE, ignore))  # liver labelled absent, the rest unknown
    msd = export_dataset("dsad", "msd", tmp_path / "msd", root=dsad["root"]).folder
    items = {e["case_id"]: e for e in json.loads((msd / "dataset.json").read_text())["training"]}
    assert items["liver_01_03"]["unlabelled"] == [o for o in organs if o != "liver"]
    assert "unlabelled" not in items["01_00"]


def test_validator_rejects_a_mask_for_a_class_listed_unlabelled(dsad, tmp_path):
    from omnimedseg.converters._validate import validate_converted

    copy = tmp_path / "copy"
    shutil.copytree(dsad["out"], copy)
    info = json.loads((copy / "dataset.json").read_text())
    case = next(c for c in info["cases"] if c["case_id"] == "colon_03_04")
    case["masks"]["liver"] = case["masks"]["colon"]
    case["unlabelled"].append("kidney")
    (copy / "dataset.json").write_text(json.dumps(info))
    report = validate_converted(copy)
    text = "\n".join(report.problems)
    assert "['liver'] are listed as unlabelled but have a mask file" in text
    assert "unlabelled class(es) ['kidney'] are not among the classes" in text


def test_contract_refuses_unlabelled_classes_that_contradict_the_case():
    from omnimedseg.converters import Case, Source
    from omnimedseg.converters._run import _contract_problem
    from omnimedseg.converters.formats.image2d import read_binary_mask, read_image

    card = load_registry().get("dsad")
    image = Source("x/image00.png", read_image)
    mask = Source("x/mask00.png", read_binary_mask)
    others = tuple(o for o in card.class_names if o != "liver")
    assert _contract_problem(card, Case("a", image, "train", masks={"liver": mask}, unlabelled=others)) is None
    assert "have a mask source but are listed as unlabelled" in _contract_problem(
        card, Case("a", image, "train", masks={"liver": mask}, unlabelled=("liver",)))
    assert "not in the card's classes" in _contract_problem(
        card, Case("a", image, "train", masks={"liver": mask}, unlabelled=("kidney",)))
    assert "every class is unlabelled" in _contract_problem(card, Case("a", image, "train", unlabelled=others))


def test_qa_counts_a_class_empty_only_over_the_cases_that_annotate_it(dsad, tmp_path):
    """pancreas is annotated (and never shown) in the 4 multilabel frames only: QA says 4, not all 8."""
    from omnimedseg.data.qa import run_qa

    report = run_qa("dsad", tmp_path / "qa", root=dsad["root"], n_images=8, per_class=1, tile=64)
    assert report.validation_ok
    empty = next(f for f in report.findings if f.startswith("class(es) empty"))
    assert empty.startswith("class(es) empty in all 4 labelled cases that annotate them:")
    assert "pancreas" in empty and "colon" not in empty
