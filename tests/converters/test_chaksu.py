import json
from pathlib import Path

import numpy as np
import pytest

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.testing import check_converter
from tests.converters.fake.chaksu import MISSING, PHOTOS, RATERS, disc_cup, make_remote_files


SPLITS = {"train": 4, "test": 3}


@pytest.mark.slow  # ~5.5 s: the figshare emulator serves three files at the downloader's polite rate (1 request/s)
def test_chaksu_through_the_figshare_emulator(tmp_path):
    check_converter("chaksu", make_remote_files, tmp_path, expected_splits=SPLITS)


def test_chaksu_fusion_reference_five_raters_and_quirks(tmp_path):
    # the same pipeline from a local copy of the release (download --from), without the emulator's rate limit
    out = check_converter("chaksu", make_remote_files, tmp_path, expected_splits=SPLITS, via="local")
    cases = {c["case_id"]: c for c in json.loads((out / "dataset.json").read_text())["cases"]}
    for split, devices in PHOTOS.items():
        for index, (device, photos) in enumerate(devices.items()):
            for photo in photos:
                stem = Path(photo).stem
                case = f"{split.lower()}_{device.lower()}_{stem}"
                outer, inner = disc_cup("STAPLE", index)
                assert np.array_equal(read_png_array(out / "masks" / case / "optic_disc.png"), outer), case
                assert np.array_equal(read_png_array(out / "masks" / case / "optic_cup.png"), inner), case
                expected = [r for r in RATERS if (r, split, device, stem) != MISSING]
                assert sorted(cases[case]["raters"]) == expected, case
                for rater in expected:
                    outer, inner = disc_cup(rater, index)
                    disc_file = out / cases[case]["raters"][rater]["optic_disc"]
                    assert np.array_equal(read_png_array(disc_file), outer), (case, rater)
                    assert np.array_equal(read_png_array(disc_file.with_name("optic_cup.png")), inner)
                assert cases[case]["meta"] == {"device": device}
    provenance = json.loads((out / "provenance.json").read_text())["files"]
    sources = {k: v["sources"][0]["path"] for k, v in provenance.items()}
    assert sources["masks/test_remidio_p28_image1/optic_cup.png"] == \
        "Test/4.0_OD_CO_Fusion_Images/Remedio/STAPLE/p28_image1.png"
    assert sources["raters/expert4/train_forus_22/optic_disc.png"] == \
        "Train/4.0_OD_CO_Fusion_Images/Expert 4/Forus/22glsusp.png"
    assert sources["raters/expert5/test_forus_7/optic_disc.png"] == "Test/4.0_OD_CO_Fusion_Images/expert 5/Forus/7.png"
