"""download --from -> convert -> validate through the real CLI, on the real HC18 files."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.converters.fake.hc18 import make_remote_files
from tests.helpers import run_cli, write_pinned_card


def make_real_hc18_release(realdata, folder: Path) -> Path:
    """A miniature HC18 release built from the three real image/annotation pairs."""
    real = realdata("hc18_ellipse") / "training_set"
    folder.mkdir()
    with zipfile.ZipFile(folder / "training_set.zip", "w") as zf:
        for path in sorted(real.glob("*.png")):
            zf.write(path, f"training_set/{path.name}")
    with zipfile.ZipFile(folder / "test_set.zip", "w") as zf:
        zf.write(real / "002_HC.png", "test_set/000_HC.png")
    # Pixel sizes are not in the real sample (SOURCE.md); these follow the real CSV format.
    (folder / "training_set_pixel_size_and_HC.csv").write_text(
        "filename,pixel size(mm),head circumference (mm)\n"
        "000_HC.png,0.0691358041432,44.3\n001_HC.png,0.0891862285137,56.81\n002_HC.png,0.0926237475872,68.75\n")
    (folder / "test_set_pixel_size.csv").write_text("filename,pixel size(mm)\n000_HC.png,0.0926237475872\n")
    return folder


@pytest.fixture
def real_release(realdata, tmp_path):
    files = make_real_hc18_release(realdata, tmp_path / "release")
    registry = tmp_path / "cards"
    write_pinned_card("hc18", "hc18_sample", files, registry)
    return files, registry, tmp_path / "root"


def test_real_hc18_download_convert_validate(real_release, realdata):
    files, registry, root = real_release
    before = {p.name: p.read_bytes() for p in files.iterdir()}
    common = ["--root", root, "--registry", registry, "-q"]
    assert run_cli(*common, "download", "hc18_sample", "--from", files).exit_code == 0
    assert {p.name: p.read_bytes() for p in files.iterdir()} == before  # the source is never modified
    result = run_cli(*common, "convert", "hc18_sample", "--json")
    assert result.exit_code == 0, result.output
    out = Path(json.loads(result.output)["output"])
    assert out == root / "converted" / "hc18_sample" / "1.0.0"
    result = run_cli(*common, "validate", "hc18_sample", "--json")
    report = json.loads(result.output)
    assert result.exit_code == 0 and report["ok"] and report["raw_sources_checked"], result.output

    real = realdata("hc18_ellipse") / "training_set"
    dataset = json.loads((out / "dataset.json").read_text())
    cases = {c["case_id"]: c for c in dataset["cases"]}
    assert sorted(cases) == ["test_000_HC", "train_000_HC", "train_001_HC", "train_002_HC"]
    assert cases["train_001_HC"]["spacing"] == [0.0891862285137, 0.0891862285137]
    assert cases["train_001_HC"]["meta"] == {"head_circumference_mm": 56.81}
    assert cases["test_000_HC"]["masks"] == {}
    for stem in ("000_HC", "001_HC", "002_HC"):
        image = np.asarray(Image.open(out / "images" / f"train_{stem}.png"))
        assert np.array_equal(image, np.asarray(Image.open(real / f"{stem}.png")))  # exact pixels
        outline = np.asarray(Image.open(real / f"{stem}_Annotation.png")) > 0
        mask = np.asarray(Image.open(out / "masks" / f"train_{stem}" / "fetal_head.png"))
        assert mask.dtype == bool and mask.shape == outline.shape
        assert mask[outline].all()  # the outline itself belongs to the head
        # the filled region is the inside: the centre of the outline's bounding box is in,
        # every border pixel is out, and the mask is one solid blob far larger than the outline.
        rows, cols = np.nonzero(outline)
        assert mask[(rows.min() + rows.max()) // 2, (cols.min() + cols.max()) // 2]
        assert not mask[0].any() and not mask[-1].any() and not mask[:, 0].any() and not mask[:, -1].any()
        assert mask.sum() > 10 * outline.sum()
        assert mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1].sum() == mask.sum()
    provenance = json.loads((out / "provenance.json").read_text())
    record = provenance["files"]["masks/train_000_HC/fetal_head.png"]
    assert record["sources"][0]["path"] == "training_set/000_HC_Annotation.png"
    assert record["operation"].endswith("image2d.fill_outline")
    assert "training_set_pixel_size_and_HC.csv" in provenance["metadata_sources"]
    assert "CC-BY-4.0" in (out / "LICENSE.txt").read_text()
    assert "10.1371/journal.pone.0200412" in (out / "CITATION.bib").read_text()
    assert json.loads((out / "splits.json").read_text()) == {
        "train": ["train_000_HC", "train_001_HC", "train_002_HC"], "test": ["test_000_HC"]}


def test_convert_is_skipped_when_complete_and_redone_with_force(real_release):
    files, registry, root = real_release
    common = ["--root", root, "--registry", registry, "-q"]
    run_cli(*common, "download", "hc18_sample", "--from", files)
    first = json.loads(run_cli(*common, "convert", "hc18_sample", "--json").output)
    again = json.loads(run_cli(*common, "convert", "hc18_sample", "--json").output)
    forced = json.loads(run_cli(*common, "convert", "hc18_sample", "--force", "--json").output)
    assert (first["skipped"], again["skipped"], forced["skipped"]) == (False, True, False)


def test_validate_reports_tampering_and_exits_1(real_release):
    files, registry, root = real_release
    common = ["--root", root, "--registry", registry, "-q"]
    run_cli(*common, "download", "hc18_sample", "--from", files)
    out = Path(json.loads(run_cli(*common, "convert", "hc18_sample", "--json").output)["output"])
    mask_path = out / "masks" / "train_000_HC" / "fetal_head.png"
    Image.fromarray((np.asarray(Image.open(mask_path)).astype(np.uint8) * 7)).save(mask_path)  # values {0, 7}
    (out / "images" / "stray.png").write_bytes(b"")
    (out / "masks" / "train_001_HC" / "fetal_head.png").unlink()
    result = run_cli(*common, "validate", "hc18_sample")
    assert result.exit_code == 1
    assert "not binary" in result.output and "sha256" in result.output
    assert "stray.png: not listed" in result.output
    assert "missing mask 'fetal_head' of case train_001_HC" in result.output


def test_download_refuses_files_that_differ_from_the_card(tmp_path):
    files = tmp_path / "remote"
    files.mkdir()
    make_remote_files(files)
    result = run_cli("--root", tmp_path / "root", "-q", "download", "hc18", "--from", files)
    assert result.exit_code == 1
    line = result.output.strip()
    assert "\n" not in line and line.startswith("Error: ") and "training_set.zip" in line
    assert "132926838" in line  # what the card pins
    assert not (tmp_path / "root" / "downloads" / "hc18" / "training_set.zip").exists()
    assert not (tmp_path / "root" / "raw" / "hc18").exists()


def test_fake_release_through_cli_with_registry_env(tmp_path, monkeypatch):
    files = tmp_path / "remote"
    files.mkdir()
    make_remote_files(files)
    cards = tmp_path / "cards"
    write_pinned_card("hc18", "hc18_fake", files, cards)
    monkeypatch.setenv("OMNIMEDSEG_REGISTRY_PATH", str(cards))
    monkeypatch.setenv("OMNIMEDSEG_HOME", str(tmp_path / "home"))
    assert run_cli("-q", "download", "hc18_fake", "--from", files).exit_code == 0
    assert run_cli("-q", "convert", "hc18_fake", "-j", "2").exit_code == 0
    result = run_cli("validate", "hc18_fake")
    assert result.exit_code == 0, result.output
    shutil.rmtree(tmp_path / "home" / "raw")
    result = run_cli("validate", "hc18_fake")  # outputs alone still validate; raw not re-hashed
    assert result.exit_code == 0 and "raw sources not present" in result.output
