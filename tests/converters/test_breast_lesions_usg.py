import json

import numpy as np

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.testing import check_converter
from tests.converters.fake.breast_lesions_usg import OTHERS, TUMOR, box_mask, make_remote_files


def test_breast_lesions_tumor_other_findings_and_normal_scans(tmp_path):
    out = check_converter("breast_lesions_usg", make_remote_files, tmp_path, expected_splits={"train": 3})
    for case in TUMOR:
        assert np.array_equal(read_png_array(out / "masks" / case / "tumor.png"), box_mask(TUMOR[case])), case
        assert np.array_equal(read_png_array(out / "masks" / case / "other_findings.png"), box_mask(OTHERS[case]))
    cases = {c["case_id"]: c for c in json.loads((out / "dataset.json").read_text())["cases"]}
    assert cases["case003"]["meta"] == {"normal": True, "other_findings": 0}
    assert cases["case001"]["meta"] == {"normal": False, "other_findings": 2}
    provenance = json.loads((out / "provenance.json").read_text())["files"]
    assert [s["path"].rsplit("/", 1)[1] for s in provenance["masks/case001/other_findings.png"]["sources"]] == [
        "case001_other1.png", "case001_other2.png"]
    assert provenance["masks/case003/tumor.png"]["operation"].endswith("read_empty_mask")
