"""LCTSC: IDC download of the fake release, RTSTRUCT matched to its CT, ROI names -> classes."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from tests.converters.fake._idc import download_and_convert, expected_volume
from tests.converters.fake.lctsc import CLASSES, ROIS, expected_planes, make_remote_files

pytestmark = [pytest.mark.filterwarnings("ignore:The string .* is unlikely to represent:UserWarning")]


def test_lctsc_end_to_end(tmp_path):
    truth, raw, out = download_and_convert("lctsc", make_remote_files, tmp_path)
    assert json.loads((out / "splits.json").read_text()) == {"test": ["LCTSC-Test-S1-101"],
                                                             "train": ["LCTSC-Train-S1-001"]}
    cases = {c["case_id"]: c for c in json.loads((out / "dataset.json").read_text())["cases"]}
    for case_id in truth:
        case = cases[case_id]
        assert np.asarray(nib.load(out / case["image"]).dataobj).shape == (16, 16, 5)
        for name, roi in zip(CLASSES, ROIS):
            mask = np.asarray(nib.load(out / case["masks"][name]).dataobj).astype(bool)
            assert np.array_equal(mask, expected_volume(expected_planes(roi))), (case_id, name)
    assert "CC-BY-3.0" in (out / "LICENSE.txt").read_text()
    assert "10.1002/mp.13141" in (out / "CITATION.bib").read_text()
