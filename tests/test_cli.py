"""CLI conventions: --help everywhere, --json, exit codes 0/1/2, one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from omnimedseg.cli import COMMANDS
from tests.helpers import run_cli


def _all_command_paths():
    """Every command and sub-command of the CLI, e.g. ("formats", "dicom-to-nifti")."""
    import click

    from omnimedseg.cli import cli

    paths = []
    for name in sorted(COMMANDS):
        command = cli.get_command(None, name)
        paths.append((name,))
        if isinstance(command, click.Group):
            paths.extend((name, sub) for sub in sorted(command.commands))
    return paths


@pytest.mark.parametrize("path", _all_command_paths(), ids=" ".join)
def test_help_everywhere(path):
    result = run_cli(*path, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output, result.output


def test_list_table_and_json_with_filters():
    table = run_cli("list")
    assert table.exit_code == 0 and "hc18" in table.output and "ultrasound" in table.output
    data = json.loads(run_cli("list", "--json", "--modality", "ultrasound", "--dimension", "2").output)
    assert "hc18" in [d["id"] for d in data] and {d["modality"] for d in data} == {"ultrasound"}
    hc18 = next(d for d in data if d["id"] == "hc18")
    assert hc18["license"] == "CC-BY-4.0" and hc18["redistribution"] is True
    assert json.loads(run_cli("list", "--json", "--platform", "zenodo", "--license", "no-such-licence").stdout) == {
        "error": "no such licence 'no-such-licence'; known licences: " + ", ".join(
            sorted({d["license"] for d in json.loads(run_cli("list", "--json").stdout)}, key=str.lower))
        + ". See them all with: omnimedseg list", "kind": "UsageError", "exit_code": 2}


def test_info_json_reports_files_and_local_state(tmp_path):
    data = json.loads(run_cli("--root", tmp_path, "info", "hc18", "--json").output)
    assert data["record"] == "1327317"
    assert data["files"][0] == {"name": "training_set.zip", "size": 132926838,
                                "hashes": {"md5": "00eb8198b9a505b2b3a6dfc740382497",
                                           "sha256": "fd20d7909df892cfbdc0850de18072dbdad4dc3bc0a57202d4cc818d4715de36"}}
    assert data["raw"] == str(tmp_path.resolve() / "raw" / "hc18")
    assert data["converted_complete"] is False


def test_failure_is_one_line_exit_1_without_traceback():
    result = run_cli("info", "no_such_dataset")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("Error: unknown dataset")
    assert "Traceback" not in result.output


def test_usage_error_exits_2():
    assert run_cli("list", "--dimension", "4").exit_code == 2
    assert run_cli("no-such-command").exit_code == 2


def test_debug_shows_the_traceback():
    result = run_cli("--debug", "info", "no_such_dataset")
    assert result.exit_code == 1 and result.exception is not None  # re-raised, not swallowed


def test_root_flag_beats_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OMNIMEDSEG_HOME", str(tmp_path / "env"))
    assert json.loads(run_cli("info", "hc18", "--json").output)["raw"].startswith(str(tmp_path / "env"))
    data = json.loads(run_cli("--root", tmp_path / "flag", "info", "hc18", "--json").output)
    assert data["raw"].startswith(str(tmp_path / "flag"))


def test_default_root_is_the_user_cache(monkeypatch):
    import platformdirs

    from omnimedseg.paths import data_root

    monkeypatch.delenv("OMNIMEDSEG_HOME")
    assert data_root() == __import__("pathlib").Path(platformdirs.user_cache_dir("omnimedseg")).resolve()


def test_progress_falls_back_to_plain_lines_when_not_a_terminal(tmp_path):
    """Run as a real subprocess (stderr is a pipe): progress comes as plain lines."""
    from tests.converters.fake.hc18 import make_remote_files
    from tests.helpers import write_pinned_card

    files = tmp_path / "remote"
    files.mkdir()
    make_remote_files(files)
    write_pinned_card("hc18", "hc18_fake", files, tmp_path / "cards")
    proc = subprocess.run([sys.executable, "-m", "omnimedseg", "--root", str(tmp_path / "root"), "--registry",
                           str(tmp_path / "cards"), "download", "hc18_fake", "--from", str(files)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert "prepare hc18_fake: started (4 files)" in lines and "\r" not in proc.stderr
    assert all(re.fullmatch(r"[^:]+: (started|done)( \(.*\))?|[^:]+: [0-9.]+ \w+( \(\d+%\))?", l) for l in lines), lines
    assert "next: omnimedseg convert hc18_fake" in proc.stdout
