"""HCC-TACE-Seg: IDC download of the fake release, SEG matched to the acquisition it references."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from tests.converters.fake._idc import download_and_convert, expected_volume
from tests.converters.fake.hcc_tace_seg import CLASSES, make_remote_files

pytest.importorskip("highdicom", reason="the fake SEG files are written with highdicom (test extra)")
pytestmark = [pytest.mark.filterwarnings("ignore:The string .* is unlikely to represent:UserWarning")]


def test_hcc_tace_seg_end_to_end(tmp_path):
    truth, raw, out = download_and_convert("hcc_tace_seg", make_remote_files, tmp_path)
    for patient in truth.values():  # the AI SEG is left out by the card's index filter
        assert not (raw / patient["ai_uuid"]).exists()
    dataset = json.loads((out / "dataset.json").read_text())
    assert json.loads((out / "splits.json").read_text()) == {"all": ["HCC_001", "HCC_002"]}
    cases = {c["case_id"]: c for c in dataset["cases"]}
    for case_id, t in truth.items():
        case = cases[case_id]
        image = nib.load(out / case["image"])
        # the image is the acquisition the SEG references: 100 * acquisition + slice - 1024 HU
        values = np.asarray(image.dataobj)
        assert values.shape == (16, 16, 6)
        assert [int(values[0, 0, k]) for k in range(6)] == [100 * t["acquisition"] + k - 1024 for k in range(6)]
        for c, name in enumerate(CLASSES):
            mask = np.asarray(nib.load(out / case["masks"][name]).dataobj).astype(bool)
            assert np.array_equal(mask, expected_volume(t["mask"][..., c])), (case_id, name)
    provenance = json.loads((out / "provenance.json").read_text())
    text = json.dumps(provenance)
    assert truth["HCC_001"]["seg"].name in text and truth["HCC_001"]["ct_uuid"] in text
    assert "Moawad" in (out / "CITATION.bib").read_text() or "5FNA-0924" in (out / "CITATION.bib").read_text()
    assert "CC-BY-4.0" in (out / "LICENSE.txt").read_text()


def test_convert_raw_idc_copy_skips_the_ai_seg(tmp_path):
    """``convert --raw`` on a full copy of the collection as the bucket lays it out (``s5cmd sync
    s3://idc-open-data/<uuid>/*``), AI SEG series included: they are skipped by description."""
    from omnimedseg.converters._validate import validate_converted
    from tests.helpers import run_cli

    raw = tmp_path / "idc-copy"
    raw.mkdir()
    truth = make_remote_files(raw)
    (raw / "idc_index.csv").unlink()  # a bucket copy has no index next to it
    assert all((raw / t["ai_uuid"]).is_dir() for t in truth.values())
    result = run_cli("--root", tmp_path / "root", "convert", "hcc_tace_seg", "--raw", raw)
    assert result.exit_code == 0, result.output
    out = tmp_path / "root" / "converted" / "hcc_tace_seg" / "1.0.0"
    assert json.loads((out / "splits.json").read_text()) == {"all": ["HCC_001", "HCC_002"]}
    assert validate_converted(out, raw).ok
    provenance = json.dumps(json.loads((out / "provenance.json").read_text()))
    assert not any(t["ai_uuid"] in provenance for t in truth.values())
