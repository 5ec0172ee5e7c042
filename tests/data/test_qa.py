"""omnimedseg qa: deterministic stratified sample, orientation of 3D planes, sheets + HTML + validate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from omnimedseg.data.display import display_plane, to_ras
from omnimedseg.data.qa import TILE_GAP, focus_slice, run_qa, stratified_sample
from tests.helpers import run_cli


def test_stratified_sample_meets_quotas_and_is_seeded():
    rare = {3, 17, 40, 41, 90, 99}  # 6 of 100 cases contain "tumour"
    presence = lambda i: {"organ", "tumour"} if i in rare else {"organ"}  # noqa: E731
    chosen, seen = stratified_sample(100, ["organ", "tumour"], presence, n_images=20, per_class=5, seed=1)
    assert len(chosen) >= 20 and sum(i in rare for i in chosen) >= 5
    assert chosen == stratified_sample(100, ["organ", "tumour"], presence, 20, 5, seed=1)[0]
    assert chosen != stratified_sample(100, ["organ", "tumour"], presence, 20, 5, seed=2)[0]
    assert len(seen) < 100 or sum(i in rare for i in chosen) == 6  # stops once quotas are met


@pytest.mark.parametrize("flip", [(1, 1, 1), (-1, -1, 1)])  # stored RAS, and LPS like the real TotalSegmentator MR
def test_planes_are_shown_radiologically_whatever_the_storage(flip):
    # a marker at the patient's right, anterior, superior corner region, placed in RAS then stored as `flip`
    ras = np.zeros((8, 6, 4), np.uint8)
    ras[6:, 4:, 3] = 1  # i (towards R) high, j (towards A) high, k (towards S) high
    stored = ras[:: flip[0], :: flip[1], :: flip[2]]
    affine = np.diag([2.0 * flip[0], 2.0 * flip[1], 3.0, 1.0])
    back, spacing = to_ras(stored, affine)
    assert np.array_equal(back, ras) and spacing == (2.0, 2.0, 3.0)
    axial = display_plane(back, "axial", 3)  # rows anterior -> posterior, columns patient right -> left
    assert axial.shape == (6, 8) and axial[:2, :2].all() and axial.sum() == 4
    coronal = display_plane(back, "coronal", 5)  # rows superior -> inferior, columns right -> left
    assert coronal.shape == (4, 8) and coronal[0, :2].all() and coronal.sum() == 2
    sagittal = display_plane(back, "sagittal", 7)  # rows superior -> inferior, columns anterior -> posterior
    assert sagittal.shape == (4, 6) and sagittal[0, :2].all() and sagittal.sum() == 2


def test_qa_writes_sheets_html_and_checks(organs, tmp_path):
    report = run_qa("organs3d", tmp_path / "qa", seed=3, **organs)
    names = sorted(p.name for p in (tmp_path / "qa").iterdir())
    assert names == ["class_001_liver_01.png", "class_002_spleen_01.png", "index.html", "overview_01.png", "qa.json"]
    assert report.validation_ok and {s["case_id"] for s in report.sample} == {"organs_001", "organs_002"}
    assert report.sample[0]["classes"] == ["liver", "spleen"]
    sheet = np.asarray(Image.open(tmp_path / "qa" / "class_002_spleen_01.png"))
    assert sheet.shape[1] == 3 * (256 + TILE_GAP) + TILE_GAP and (sheet == (60, 180, 75)).all(-1).any()  # spleen outline in its colour
    page = (tmp_path / "qa" / "index.html").read_text()
    assert "Automated checks (validate): OK" in page and 'src="overview_01.png"' in page and "seed 3" in page
    assert "fewer than 20" in " ".join(report.findings)
    assert "radiological view" in page
    again = run_qa("organs3d", tmp_path / "qa2", seed=3, **organs)
    assert [s["case_id"] for s in again.sample] == [s["case_id"] for s in report.sample]
    assert (tmp_path / "qa2" / "overview_01.png").read_bytes() == (tmp_path / "qa" / "overview_01.png").read_bytes()


def test_qa_of_a_small_2d_dataset_with_one_class(hc18, tmp_path):
    """Sorted sample, one sheet for the one class, as wide as its tiles with gaps between them, a 2D note."""
    report = run_qa("hc18", tmp_path / "qa", seed=0, root=hc18["root"])
    assert [s["case_id"] for s in report.sample] == sorted(s["case_id"] for s in report.sample)
    assert [p.name for p in report.sheets] == ["overview_01.png"]
    sheet = np.asarray(Image.open(report.sheets[0]).convert("RGB"))
    assert sheet.shape[1] == 3 * (256 + TILE_GAP) + TILE_GAP  # 3 cases: 3 columns, no empty half page
    tiles_top = sheet.shape[0] - 256 * 54 // 80 - 14 - TILE_GAP  # one row of tiles as tall as the 54x80 images
    gap_column = sheet[tiles_top:, 256 + TILE_GAP: 256 + 2 * TILE_GAP]
    assert (gap_column == (40, 40, 40)).all()  # background between tiles 1 and 2
    page = (tmp_path / "qa" / "index.html").read_text()
    assert "RAS" not in page and "radiological" not in page and "shown as stored" in page


def test_cli_qa_reports_validation_failure(hc18):
    root = hc18["root"]
    result = run_cli("--root", root, "-q", "qa", "hc18", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["validation_ok"] and report["cases"] == 3 and report["index"].endswith("qa/hc18/1.0.0/index.html")
    mask = next((root / "converted" / "hc18" / "1.0.0" / "masks").rglob("*.png"))
    Image.fromarray(np.zeros((54, 80), bool)).save(mask)  # an emptied mask: provenance no longer matches
    result = run_cli("--root", root, "qa", "hc18")
    assert result.exit_code == 1 and "FAIL" in result.output and "validation problem(s)" in result.output
    assert "[no mask]" not in result.output  # titles are drawn, not printed


def test_overview_slice_shows_a_class_nested_in_a_wider_one():
    """A tumour inside its organ: the organ's area ties on every slice, and the slice with the tumour must win."""
    masks = np.zeros((2, 8, 8, 6), bool)
    masks[0, 1:7, 1:7, 1:5] = True  # organ, same area on slices 1-4
    masks[1, 3:5, 3:5, 3:4] = True  # tumour on slice 3 only, inside the organ
    assert focus_slice(masks, 2) == 3
    masks[0, 0:8, 0:8, 4] = True  # a wider organ slice without the tumour still loses: fewer classes
    assert focus_slice(masks, 2) == 3
    assert focus_slice(masks[:1], 2) == 4  # one class: its largest cross-section
    assert focus_slice(np.zeros((1, 8, 8, 6), bool), 2) == 3  # nothing drawn: the middle slice


@pytest.mark.parametrize("n_classes", [21, 26, 117, 256])
def test_class_colours_stay_distinct_and_visible_for_many_classes(n_classes):
    """VerSe (26) and TotalSegmentator (117) classes: no two class colours alike, none grey or dark."""
    from omnimedseg.data.qa import _redmean, colour

    colours = np.array([colour(i, n_classes) for i in range(n_classes)], float)
    assert _redmean(colours[:, None], colours[None])[~np.eye(n_classes, dtype=bool)].min() >= 50  # was 17 at 117
    assert (colours.max(1) - colours.min(1)).min() >= 128
