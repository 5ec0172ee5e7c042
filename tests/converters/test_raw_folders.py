"""``omnimedseg convert <id> --raw DIR`` on folders laid out as the official archives extract (issue #14).

Each fake release is unpacked as a user would unpack it; the real CLI converts it and validates.
CT-ORG is converted from a partial copy: the cases it lacks are listed as absent, not errors.
"""

import json

import pytest

from tests.converters.fake import (
    amos22,
    ct_org,
    figshare_brain_tumour,
    msd,
    promise12,
    spider,
    totalsegmentator,
    verse20,
)
from tests.converters.fake._common import extract_release
from tests.helpers import run_cli

RELEASES = {
    "amos22_mr": (amos22.make_remote_files, 3),
    "spider": (spider.make_remote_files, 3),
    "promise12": (promise12.make_remote_files, 4),
    "figshare_brain_tumour": (figshare_brain_tumour.make_remote_files, 6),
    "verse20": (verse20.make_remote_files, 4),
    "totalsegmentator_v3": (totalsegmentator.make_remote_files_v3, 2),
    "msd_task05_prostate": (msd.remote_files("Task05_Prostate"), 3),
}


def _convert(tmp_path, dataset_id, raw):
    root = tmp_path / "root"
    result = run_cli("--root", root, "convert", dataset_id, "--raw", raw, "--json", "--accept-licence")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    validated = run_cli("--root", root, "validate", dataset_id)
    assert validated.exit_code == 0, validated.output
    return summary


@pytest.mark.parametrize("dataset_id", sorted(RELEASES))
def test_convert_raw_folder_as_extracted(tmp_path, dataset_id):
    make, count = RELEASES[dataset_id]
    remote = tmp_path / "remote"
    remote.mkdir()
    make(remote)
    summary = _convert(tmp_path, dataset_id, extract_release(remote, tmp_path / "extracted"))
    assert summary["cases"] == count and summary["absent"] == [] and summary["failed"] == []


def test_ct_org_partial_copy_lists_the_missing_cases_as_absent(tmp_path):
    raw = tmp_path / "partial"
    raw.mkdir()
    ct_org.make_remote_files(raw, cases=(0, 2, 30))
    summary = _convert(tmp_path, "ct_org", raw)
    assert summary["cases"] == 3 and len(summary["absent"]) == 137
    assert "ct_org_001" in summary["absent"] and "ct_org_002" not in summary["absent"]
