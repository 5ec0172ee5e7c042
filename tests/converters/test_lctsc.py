"""LCTSC: IDC download of the fake release, RTSTRUCT matched to its CT, ROI names -> classes."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from tests.converters.fake._idc import assert_masks_on_their_structures, download_and_convert, expected_volume
from tests.converters.fake.lctsc import CLASSES, HU, ROIS, Z, expected_planes, make_remote_files, polygon

pytestmark = [pytest.mark.filterwarnings("ignore:The string .* is unlikely to represent:UserWarning")]


def test_lctsc_end_to_end(tmp_path):
    truth, raw, out = download_and_convert("lctsc", make_remote_files, tmp_path)
    assert json.loads((out / "splits.json").read_text()) == {"test": ["LCTSC-Test-S1-101"],
                                                             "train": ["LCTSC-Train-S1-001"]}
    cases = {c["case_id"]: c for c in json.loads((out / "dataset.json").read_text())["cases"]}
    for case_id, t in truth.items():
        case = cases[case_id]
        assert np.asarray(nib.load(out / case["image"]).dataobj).shape == (24, 20, 5)
        for name, roi in zip(CLASSES, ROIS):
            mask = np.asarray(nib.load(out / case["masks"][name]).dataobj).astype(bool)
            assert np.array_equal(mask, expected_volume(expected_planes(roi, t["grid"]))), (case_id, name)
        # in plane: each mask lies on the HU painted for its structure, in the right place in patient space
        assert_masks_on_their_structures(out / case["image"], {name: out / case["masks"][name] for name in CLASSES},
                                         list(HU), lambda name, k: HU[name], polygon, Z)
    assert "CC-BY-3.0" in (out / "LICENSE.txt").read_text()
    assert "10.1002/mp.13141" in (out / "CITATION.bib").read_text()


def test_convert_raw_idc_copy(tmp_path):
    """``convert --raw`` on the bucket layout; an RTSTRUCT with an unknown PatientID scheme fails loudly."""
    import pydicom

    from tests.helpers import run_cli

    raw = tmp_path / "idc-copy"
    raw.mkdir()
    make_remote_files(raw)
    result = run_cli("--root", tmp_path / "root", "convert", "lctsc", "--raw", raw)
    assert result.exit_code == 0, result.output
    out = tmp_path / "root" / "converted" / "lctsc" / "1.0.0"
    assert sorted(json.loads((out / "splits.json").read_text())) == ["test", "train"]
    rts = next(p for p in raw.rglob("*.dcm") if pydicom.dcmread(p, stop_before_pixels=True).Modality == "RTSTRUCT")
    ds = pydicom.dcmread(rts)
    ds.PatientID = "LCTSC-Val-S1-001"
    ds.save_as(rts)
    result = run_cli("--root", tmp_path / "root2", "convert", "lctsc", "--raw", raw)
    assert result.exit_code != 0 and "expected LCTSC-Train-* or LCTSC-Test-*" in result.output
