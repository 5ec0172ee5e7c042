"""The benchmark runner end to end on converted data: records, tables, plots, resume, determinism."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from omnimedseg.benchmark import Suite, get_model, run_benchmark
from omnimedseg.benchmark.models import OracleNoiseModel, RegionGrowingModel
from omnimedseg.errors import PluginError, UsageError
from omnimedseg.interactive import Box, Click, get_robot_user
from omnimedseg.progress import Progress
from tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[2]


def _suite(**changes) -> Suite:
    data = {"name": "t", "steps": 3, "seed": 1, "sheets": 1,
            "model": {"name": "oracle_noise", "params": {"noise": 0.4, "radius": 6}},
            "datasets": [{"id": "hc18", "split": "train"}],
            "robot_users": ["click_largest_center", "box_careful"],
            "metrics": ["dice", {"name": "nsd", "tolerance": 1.0}, {"name": "hd95"}]}
    data.update(changes)
    return Suite.from_dict(data)


def test_suite_errors_name_the_field():
    with pytest.raises(UsageError, match="missing required field 'datasets'"):
        Suite.from_dict({"name": "x", "model": {"name": "oracle_noise"}, "robot_users": [], "metrics": []})
    with pytest.raises(UsageError, match="click_nowhere"):
        _suite(robot_users=["click_nowhere"])
    with pytest.raises(UsageError, match="unknown metric 'dsc'"):
        _suite(metrics=["dsc"])
    with pytest.raises(PluginError, match="no model named 'sam3'"):
        _suite(model={"name": "sam3"})
    with pytest.raises(UsageError, match="datasets\\[0\\].mode"):
        _suite(datasets=[{"id": "hc18", "mode": "cubes"}])


def test_shipped_suites_parse():
    for path in sorted((REPO / "benchmarks").glob("*.toml")):
        assert Suite.from_toml(path).robot_users


def test_oracle_run_writes_everything_and_curves_rise(hc18, tmp_path):
    suite = _suite()
    out = run_benchmark(suite, tmp_path / "out", root=hc18["root"])
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 3 * 2 * (3 + 1)  # cases x users x (steps + 1)
    assert set(rows[0]) == {"dataset", "case_id", "class_name", "robot_user", "step", "interaction",
                            "dice", "nsd_1mm", "hd95"}
    records = json.loads((out / "results.json").read_text())["records"]
    for r in records:
        dice = [s["dice"] for s in r["steps"]]
        assert all(b >= a for a, b in zip(dice, dice[1:])), dice  # interactions only remove oracle noise
        if r["robot_user"].startswith("click"):
            assert dice[-1] > dice[0] + 0.03, dice  # each click clears the noise around it
        assert r["dice_final"] == dice[-1]
        assert r["dice_auc"] == pytest.approx(np.trapezoid(dice) / 3)
    summary = (out / "summary.md").read_text()
    assert "| hc18 | box_careful | 3 |" in summary and "| hc18 | click_largest_center | 3 |" in summary
    # the normalisation is stated exactly: 3 steps + step 0 integrated, divided by the 3 intervals
    assert "over 4 integrated steps (including step 0), divided by 4 - 1 = 3" in summary
    for name in ("dice", "nsd_1mm", "hd95"):
        assert (out / "plots" / f"hc18_{name}.png").stat().st_size > 1000
    # one sheet per session of the first (case, class): one per robot user
    assert sorted(p.name for p in (out / "sheets").glob("*.png")) == [
        "hc18_train_000_HC_fetal_head_box_careful.png", "hc18_train_000_HC_fetal_head_click_largest_center.png"]
    assert json.loads((out / "config.json").read_text())["config_hash"] == suite.config_hash


def test_resume_recomputes_only_missing_sessions_and_refuses_other_configs(hc18, tmp_path):
    suite = _suite(sheets=0)
    out = run_benchmark(suite, tmp_path / "out", root=hc18["root"])
    records = sorted((out / "records").glob("*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in records}
    first = (out / "results.csv").read_text()
    records[0].unlink()
    progress = Progress(stream=io.StringIO())
    run_benchmark(suite, out, root=hc18["root"], progress=progress)
    assert f"{len(records) - 1} of {len(records)} session(s) reused" in progress.stream.getvalue()
    assert records[0].is_file()
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p != records[0])
    assert (out / "results.csv").read_text() == first
    with pytest.raises(UsageError, match="another configuration"):
        run_benchmark(_suite(seed=2, sheets=0), out, root=hc18["root"])


def test_parallel_results_equal_serial(hc18, tmp_path):
    serial = run_benchmark(_suite(sheets=0), tmp_path / "a", root=hc18["root"])
    parallel = run_benchmark(_suite(sheets=0), tmp_path / "b", root=hc18["root"], workers=2)
    assert (serial / "results.csv").read_text() == (parallel / "results.csv").read_text()


def test_region_growing_on_volumes_and_slices(organs, tmp_path):
    base = dict(model={"name": "region_growing"}, robot_users=["click_largest_center"], steps=2, sheets=1,
                metrics=["dice"])
    volumes = run_benchmark(_suite(datasets=[{"id": "organs3d"}], **base), tmp_path / "v", **organs)
    records = json.loads((volumes / "results.json").read_text())["records"]
    assert {(r["case_id"], r["class_name"]) for r in records} == {
        (c, k) for c in ("organs_001", "organs_002") for k in ("liver", "spleen")}
    slices = run_benchmark(_suite(datasets=[{"id": "organs3d", "mode": "slices", "classes": ["spleen"]}],
                                  **base), tmp_path / "s", **organs)
    records = json.loads((slices / "results.json").read_text())["records"]
    assert [r["case_id"] for r in records] == ["organs_001_s4", "organs_002_s4"]
    assert list((slices / "sheets").glob("*.png"))
    volume_sheets = sorted((volumes / "sheets").glob("*.png"))
    assert [p.name for p in volume_sheets] == ["organs3d_organs_001_liver_click_largest_center.png"]
    # the runner passes the case's affine: the click is drawn where the radiological view puts it (the LPS-stored
    # organs are flipped in-plane and transposed relative to the array view); placements need no predictions
    from PIL import Image

    from omnimedseg.benchmark.runner import _open_dataset, draw_session, plan
    from omnimedseg.interactive.contact_sheet import POSITIVE
    from omnimedseg.interactive.prompts import prompt_from_dict

    suite = _suite(datasets=[{"id": "organs3d"}], **base)
    task = plan(suite, organs["root"], organs["registry_dirs"])[0]
    record = json.loads((volumes / "records" / f"{task.key}.json").read_text())
    _, image, masks, affine = _open_dataset(task.dataset, organs["root"], organs["registry_dirs"]).raw_item(task.index)
    click = prompt_from_dict(record["prompts"][0])
    drawn = {geometry is None: draw_session(suite, record, image, masks[0], [masks[0]] * 3, None,
                                            tmp_path / "layout.png", affine=geometry)[1][0]
             for geometry in (affine, None)}
    assert drawn[False].view.plane == "axial" and drawn[True].view.plane is None
    x, y = drawn[False].sheet_xy(click.coord)
    assert (x, y) != drawn[True].sheet_xy(click.coord)
    assert np.asarray(Image.open(volume_sheets[0]).convert("RGB"))[int(y), int(x)].tolist() == list(POSITIVE)


def test_interaction_sheet_draws_the_prompts_that_were_scored(hc18, tmp_path):
    """The sheet shows, per step, the recorded prompts (negative ones included) on the prediction that was
    scored; a recorded click's centre pixel has its polarity's colour on the runner's PNG."""
    from PIL import Image

    from omnimedseg.benchmark.runner import _model, _open_dataset, draw_session, plan, sheet_path
    from omnimedseg.interactive import run_robot_session
    from omnimedseg.interactive.contact_sheet import NEGATIVE, POSITIVE
    from omnimedseg.interactive.prompts import Click, prompt_from_dict

    suite = _suite(robot_users=["click_ritm"], steps=5, metrics=["dice"],
                   model={"name": "oracle_noise", "params": {"noise": 0.6, "radius": 3}})
    out = run_benchmark(suite, tmp_path / "out", root=hc18["root"])
    task = plan(suite, hc18["root"])[0]
    record = json.loads((out / "records" / f"{task.key}.json").read_text())
    clicks = [prompt_from_dict(p) for p in record["prompts"]]
    assert all(isinstance(c, Click) for c in clicks)
    assert {c.positive for c in clicks} == {True, False}  # corrections include negative clicks
    # the recorded prompts are those of the scored session (same model, same seeds)
    case, image, masks, _ = _open_dataset(task.dataset, hc18["root"], ()).raw_item(task.index)
    model = _model(suite.model, json.dumps(suite.model_params, sort_keys=True))
    model.set_image(image, {**case, "class_name": task.class_name})
    session = run_robot_session(get_robot_user("click_ritm"), masks[0],
                                lambda prompts, previous: model.predict(prompts, previous, masks[0]), 5, seed=1,
                                case_id=task.case_id, class_name=task.class_name, spacing=tuple(case["spacing"]))
    assert [s.interaction for s in session] == clicks
    # where each panel lies (layout of the same drawing), then the runner's own PNG is read there
    _, placed = draw_session(suite, record, image, masks[0], [s.prediction for s in session], None,
                             tmp_path / "again.png")
    sheet = np.asarray(Image.open(sheet_path(out, task)).convert("RGB"))
    for step, (click, placement) in enumerate(zip(clicks, placed)):
        x, y = placement.sheet_xy(click.coord)
        pixel = sheet[int(y), int(x)].tolist()
        assert pixel == list(POSITIVE if click.positive else NEGATIVE), (step, click)
        assert record["steps"][step]["dice"] == pytest.approx(
            2 * (session[step].prediction & masks[0]).sum() / (session[step].prediction.sum() + masks[0].sum()))


def test_benchmark_cli(hc18, tmp_path):
    suite_file = tmp_path / "suite.toml"
    suite_file.write_text('name = "cli"\nsteps = 1\nsheets = 0\nrobot_users = ["click_largest_center"]\n'
                          'metrics = ["dice"]\n[model]\nname = "region_growing"\n[[datasets]]\nid = "hc18"\n')
    result = run_cli("--root", hc18["root"], "-q", "benchmark", suite_file, "--out", tmp_path / "o", "--json")
    assert result.exit_code == 0, result.output
    assert Path(json.loads(result.output)["summary"]).is_file()


def test_region_growing_follows_clicks_on_a_synthetic_blob():
    rng = np.random.default_rng(0)
    image = rng.normal(50, 5, (80, 90))
    truth = np.zeros((80, 90), bool)
    truth[20:50, 30:70] = True
    image[truth] += 100
    model = RegionGrowingModel(smoothing=0)  # sharp synthetic edges: grow on the raw intensities
    model.set_image(image, {"affine": None})
    pred = model.predict([Click(coord=(35, 50), positive=True)], None)
    assert (pred & truth).sum() / truth.sum() > 0.95 and (pred & ~truth).sum() == 0
    boxed = model.predict([Box(lo=(20, 30), hi=(49, 69), positive=True)], None)
    assert not (boxed & ~truth).any() and boxed.sum() / truth.sum() > 0.95  # grown from the box centre
    cut = model.predict([Click(coord=(35, 50), positive=True), Click(coord=(35, 31), positive=False)], None)
    assert not cut[35, 31] and cut[35, 50]


def test_oracle_is_exact_where_the_user_clicked():
    truth = np.zeros((60, 60), bool)
    truth[15:45, 15:45] = True
    model = OracleNoiseModel(noise=0.5, radius=8)
    model.set_image(np.zeros((60, 60)), {"case_id": "x"})
    first = model.predict([], None, truth)
    assert (first != truth).any()
    click = get_robot_user("click_largest_center").next_prompt(truth, first, np.random.default_rng(0))
    after = model.predict([click], first, truth)
    assert (after != truth).sum() <= (first != truth).sum()
    with pytest.raises(UsageError, match="needs the reference"):
        model.predict([], None)
    assert get_model("region_growing", tolerance=2).tolerance == 2


def test_summary_states_the_auc_normalisation_exactly():
    from omnimedseg.benchmark.report import summary_markdown

    with_step0 = summary_markdown(_suite(), [], ["dice"])
    without = summary_markdown(_suite(include_step0=False), [], ["dice"])
    assert "over 4 integrated steps (including step 0), divided by 4 - 1 = 3" in with_step0
    assert "over 3 integrated steps (excluding step 0), divided by 3 - 1 = 2" in without


def test_benchmark_dataset_override_runs_the_suite_on_another_dataset(both, tmp_path):
    suite_file = tmp_path / "suite.toml"
    suite_file.write_text('name = "organs"\nsteps = 1\nsheets = 0\nrobot_users = ["click_largest_center"]\n'
                          'metrics = ["dice"]\n[model]\nname = "region_growing"\n'
                          '[[datasets]]\nid = "organs3d"\nmax_cases = 2\nclasses = ["spleen"]\n')
    common = ["--root", both["root"], "--registry", both["registry_dirs"][0], "-q", "benchmark", suite_file]
    result = run_cli(*common, "--dataset", "hc18", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["suite"] == "organs_on_hc18"
    assert Path(report["output"]) == both["root"] / "benchmarks" / "organs_on_hc18"
    records = json.loads((Path(report["output"]) / "results.json").read_text())["records"]
    assert {r["dataset"] for r in records} == {"hc18"} and {r["class_name"] for r in records} == {"fetal_head"}
    assert len({r["case_id"] for r in records}) == 2  # the suite's max_cases, over every split
    unknown = run_cli(*common, "--dataset", "nope")
    assert unknown.exit_code == 1 and "unknown dataset 'nope'" in unknown.output


def test_one_dataset_selected_three_ways_is_reported_three_ways(organs, tmp_path):
    """Slices along two axes and whole volumes of one dataset: slice k of axis 0 is not slice k of axis 2 (their
    records had overwritten each other) and their results are not pooled under one dataset name."""
    from omnimedseg.benchmark.runner import plan

    spleen = {"id": "organs3d", "mode": "slices", "classes": ["spleen"]}
    suite = _suite(model={"name": "region_growing"}, robot_users=["click_largest_center"], steps=1, sheets=1,
                   metrics=["dice"], datasets=[{**spleen, "axis": 0}, {**spleen, "axis": 2}, {"id": "organs3d"}])
    tasks = plan(suite, organs["root"], organs["registry_dirs"])
    assert len({t.key for t in tasks}) == len(tasks)
    out = run_benchmark(suite, tmp_path / "out", **organs)
    records = json.loads((out / "results.json").read_text())["records"]
    assert len(list((out / "records").glob("*.json"))) == len(tasks) == len(records)
    labels = {"organs3d_slices_axis0", "organs3d_slices_axis2", "organs3d_whole"}
    assert {r["dataset"] for r in records} == labels
    summary = (out / "summary.md").read_text()
    assert all(f"| {label} |" in summary for label in labels)
    assert {p.name.split("_dice")[0] for p in (out / "plots").glob("*.png")} == labels
    assert {p.name.split("_organs_")[0] for p in (out / "sheets").glob("*.png")} == labels


def test_a_run_into_a_folder_another_run_is_writing_is_refused(hc18, tmp_path):
    from filelock import FileLock

    out = tmp_path / "out"
    with FileLock(str(tmp_path / ".out.lock")):
        with pytest.raises(UsageError, match=r"another omnimedseg benchmark is writing to .*out; wait for it"):
            run_benchmark(_suite(), out, root=hc18["root"])
    assert not out.exists()


class _Probabilities(OracleNoiseModel):
    """A model returning probabilities (or NaN): they had been scored as the mask "value != 0"."""
    name = "probabilities"

    def __init__(self, fill: float = 0.01, **params):
        super().__init__(**params)
        self.fill = fill

    def predict(self, prompts, previous=None, reference=None):
        return np.full(np.shape(super().predict(prompts, previous, reference)), self.fill, dtype=np.float32)


@pytest.mark.parametrize("fill", [0.01, float("nan")])
def test_probabilities_or_nan_from_a_model_are_refused_naming_the_session(hc18, tmp_path, monkeypatch, fill):
    from omnimedseg.benchmark import models
    from omnimedseg.benchmark.runner import _model

    monkeypatch.setitem(models.BUILTIN_MODELS, "probabilities", _Probabilities)
    _model.cache_clear()
    suite = _suite(model={"name": "probabilities", "params": {"fill": fill}})
    with pytest.raises(UsageError, match=r"benchmark session hc18 case \S+ class fetal_head user click_largest_center: "
                                         r"predict: expected values in \{0, 1\}"):
        run_benchmark(suite, tmp_path / "out", root=hc18["root"])
    _model.cache_clear()


class _FailsOnOneCase(OracleNoiseModel):
    name = "fails_on_one_case"

    def set_image(self, image, meta):
        super().set_image(image, meta)
        self.case = meta["case_id"]

    def predict(self, prompts, previous=None, reference=None):
        if self.case == "train_010_2HC":
            import time

            time.sleep(1.0)  # the other sessions finish first
            raise RuntimeError("boom")
        return super().predict(prompts, previous, reference)


def test_a_failing_session_under_workers_keeps_the_finished_ones_and_names_itself(hc18, tmp_path, monkeypatch):
    from omnimedseg.benchmark import models
    from omnimedseg.errors import OmnimedsegError

    monkeypatch.setitem(models.BUILTIN_MODELS, "fails_on_one_case", _FailsOnOneCase)  # forked workers inherit it
    suite = _suite(model={"name": "fails_on_one_case", "params": {"noise": 0.4, "radius": 6}}, sheets=0)
    with pytest.raises(OmnimedsegError, match=r"benchmark session hc18 case train_010_2HC class fetal_head user "
                                              r"\S+: RuntimeError: boom; finished sessions are kept"):
        run_benchmark(suite, tmp_path / "out", root=hc18["root"], workers=2)
    assert len(list((tmp_path / "out" / "records").glob("*.json"))) >= 2  # saved as they finished
