"""The licence gate: download/convert of a dataset not verified-open needs --accept-licence (CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.converters.fake.hc18 import make_remote_files
from tests.helpers import run_cli, write_pinned_card

NC_URL = "https://creativecommons.org/licenses/by-nc-sa/4.0/"
NC_SOURCE = "https://example.org/records/42#licence"


def _variant(tmp_path: Path, new_id: str, status: str, redistribution: bool) -> tuple[Path, Path]:
    """HC18 fake release plus a card for it with the given licence status."""
    files = tmp_path / "release"
    if not files.is_dir():
        files.mkdir()
        make_remote_files(files)
    cards = tmp_path / "cards"
    path = write_pinned_card("hc18", new_id, files, cards)
    text = path.read_text()
    for old, new in (('spdx = "CC-BY-4.0"', 'spdx = "CC-BY-NC-SA-4.0"'),
                     ('url = "https://creativecommons.org/licenses/by/4.0/"', f'url = "{NC_URL}"'),
                     ('redistribution = true', f'redistribution = {str(redistribution).lower()}'),
                     ('status = "verified-open"', f'status = "{status}"'),
                     ('source = "https://zenodo.org/records/1327317"', f'source = "{NC_SOURCE}"')):
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)
    return files, cards


@pytest.mark.parametrize("status", ["restricted", "unverified"])
def test_download_and_convert_refuse_without_accept_licence(tmp_path, status):
    files, cards = _variant(tmp_path, "hc18_gated", status, redistribution=status != "restricted")
    common = ["--root", tmp_path / "root", "--registry", cards, "-q"]
    for command in (["download", "hc18_gated", "--from", files], ["convert", "hc18_gated"]):
        result = run_cli(*common, *command)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        assert "CC-BY-NC-SA-4.0" in result.output and NC_URL in result.output
        assert f"status:         {status}" in result.output and NC_SOURCE in result.output
        assert f"omnimedseg {command[0]} hc18_gated --accept-licence" in result.output
    assert not (tmp_path / "root" / "downloads" / "hc18_gated").exists()  # nothing fetched before the gate


def test_restricted_output_is_marked_not_redistributable(tmp_path):
    files, cards = _variant(tmp_path, "hc18_nc", "restricted", redistribution=True)
    common = ["--root", tmp_path / "root", "--registry", cards, "-q"]
    assert run_cli(*common, "download", "hc18_nc", "--from", files, "--accept-licence").exit_code == 0
    result = run_cli(*common, "convert", "hc18_nc", "--accept-licence", "--json")
    assert result.exit_code == 0, result.output
    out = Path(json.loads(result.output)["output"])
    meta = json.loads((out / "dataset.json").read_text())["omnimedseg"]
    # the card says redistribution = true, but a restricted licence is never shared further
    assert meta["redistribution"] is False and meta["license_status"] == "restricted"
    assert meta["license_source"] == NC_SOURCE
    assert "Redistribution of converted data allowed: NO" in (out / "LICENSE.txt").read_text()

    listed = {d["id"]: d for d in json.loads(run_cli(*common, "list", "--json").output)}
    assert listed["hc18_nc"]["redistribution"] is False and listed["hc18_nc"]["license_status"] == "restricted"
    assert listed["hc18"]["redistribution"] is True and listed["hc18"]["license_status"] == "verified-open"
    table = run_cli(*common[:-1], "list").output  # without -q: the footnotes show
    row = next(line for line in table.splitlines() if line.startswith("hc18_nc "))
    assert "CC-BY-NC-SA-4.0*" in row and "restricted" in row
    assert "* redistribution of converted data not allowed" in table


def test_verified_open_needs_no_flag(tmp_path):
    files = tmp_path / "release"
    files.mkdir()
    make_remote_files(files)
    cards = tmp_path / "cards"
    write_pinned_card("hc18", "hc18_open", files, cards)
    common = ["--root", tmp_path / "root", "--registry", cards, "-q"]
    assert run_cli(*common, "download", "hc18_open", "--from", files).exit_code == 0
    assert run_cli(*common, "convert", "hc18_open").exit_code == 0
