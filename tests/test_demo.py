"""``omnimedseg demo``: the real pipeline on the bundled sample, offline, and a rerun that reuses it."""

from __future__ import annotations

import csv
import json

from omnimedseg.demo import CARDS, DATASETS, FILES, HERE
from omnimedseg.registry import load_registry
from omnimedseg.registry.card import lint_card
from tests.helpers import run_cli


def test_demo_runs_the_pipeline_end_to_end_and_a_rerun_reuses_it(tmp_path):
    root = tmp_path / "demo root"
    result = run_cli("demo", "--root", root)
    assert result.exit_code == 0, result.output
    out = result.output
    # the summary table: AUC and Final per metric, one row per dataset x user
    header = next(line for line in out.splitlines() if line.startswith("| dataset"))
    assert [h.strip() for h in header.strip("|").split("|")][3:] == [
        "dice AUC", "dice Final", "nsd_2mm AUC", "nsd_2mm Final"]
    for dataset in DATASETS:
        for user in ("click_largest_center", "box_careful", "scribble_centerline_largest"):
            assert f"| {dataset} | {user} |" in out
    for shown in ("results.csv", "plots", "sheets", "index.html", "ATTRIBUTION.md"):
        assert shown in out

    # downloaded through the Zenodo downloader (not --from), every file pinned by the demo card
    lock = json.loads((root / "downloads" / "demo_totalsegmentator" / "manifest.lock.json").read_text())
    assert lock["platform"] == "zenodo" and lock["files"][0]["url"].startswith("http://127.0.0.1:")
    # converted by the real converters, in the standard format, with provenance back to the raw zip members
    ct = json.loads((root / "converted" / "demo_totalsegmentator" / "1.0.0" / "dataset.json").read_text())
    assert [c["case_id"] for c in ct["cases"]] == ["example_ct"]
    assert sorted(ct["cases"][0]["masks"]) == ["kidney_left", "kidney_right", "liver", "spleen"]
    us = json.loads((root / "converted" / "demo_hc18" / "1.0.0" / "dataset.json").read_text())
    assert [c["case_id"] for c in us["cases"]] == ["train_000_HC", "train_001_HC", "train_002_HC"]
    assert (root / "qa" / "demo_hc18" / "1.0.0" / "index.html").is_file()
    assert list((root / "qa" / "demo_totalsegmentator" / "1.0.0").glob("*.png"))

    bench = root / "benchmarks" / "demo"
    with open(bench / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    sessions = {(r["dataset"], r["case_id"], r["class_name"], r["robot_user"]) for r in rows}
    assert len(sessions) == 3 * 3 + 1 * 4 * 3  # 2D: 3 images; 3D: 1 volume x 4 structures; 3 users each
    assert {r["step"] for r in rows} == {"0", "1", "2", "3"}
    assert all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)
    assert any(float(r["dice"]) > 0.5 for r in rows if r["dataset"] == "demo_totalsegmentator")
    assert list((bench / "plots").glob("*.png")) and list((bench / "sheets").glob("*.png"))

    converted = root / "converted" / "demo_hc18" / "1.0.0" / "dataset.json"
    records = sorted((bench / "records").glob("*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in [converted, *records]}
    again = run_cli("demo", "--root", root, "--json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert report["reused"] == ["convert demo_hc18", "convert demo_totalsegmentator",
                                f"{len(records)} benchmark sessions"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing redone


def test_demo_cards_are_pinned_lint_clean_and_not_in_the_registry():
    registry = load_registry([CARDS])
    for dataset_id in DATASETS:
        card = registry.get(dataset_id)
        assert lint_card(card) == []
        assert card.license.status == "verified-open"
        assert {f.name for f in card.source.files} == {p.name for p in (FILES / dataset_id).iterdir()}
    listed = run_cli("list", "--json")
    assert listed.exit_code == 0
    assert not {c["id"] for c in json.loads(listed.output)} & set(DATASETS)


def test_demo_package_data_is_small_and_attributed():
    files = [p for p in HERE.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert sum(p.stat().st_size for p in files) < 2_000_000
    attribution = (HERE / "ATTRIBUTION.md").read_text()
    for needed in ("CC BY 4.0", "Apache-2.0", "predictions", "cropped", "doi:10.1371/journal.pone.0200412"):
        assert needed in attribution


def test_demo_default_root_is_a_demo_folder_of_the_data_root(tmp_path, monkeypatch):
    from omnimedseg.demo import default_root

    monkeypatch.setenv("OMNIMEDSEG_HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / "demo"
    assert default_root(tmp_path / "elsewhere") == tmp_path / "elsewhere" / "demo"
