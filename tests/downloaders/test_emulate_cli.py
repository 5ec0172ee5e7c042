"""``omnimedseg emulate``: a folder served as a fake platform in another process, locked and
downloaded with the unchanged commands, then stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from dl_helpers import downloads, payload

from omnimedseg.cli import cli
from omnimedseg.downloaders import download_dataset
from omnimedseg.registry import Card


def serve(args, env):
    proc = subprocess.Popen([sys.executable, "-m", "omnimedseg", "emulate", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    lines, deadline = [], time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("next:"):
            return proc, lines
    proc.kill()
    raise AssertionError(f"emulate did not start: {lines} {proc.stderr.read()}")


@pytest.mark.parametrize("platform", ["zenodo", "mendeley"])
def test_emulate_serves_a_folder_that_lock_and_download_then_use(platform, tmp_path, make_card, monkeypatch):
    folder = tmp_path / "data"
    (folder / "imgs").mkdir(parents=True)
    files = {"imgs/case1.bin": payload(70_000, 1), "labels.csv": b"id,label\n1,2\n"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    proc, lines = serve([platform, str(folder), "--port", "0", "--fault", "status:code=503,times=1"],
                        dict(os.environ))
    try:
        exports = dict(line[len("export "):].split("=", 1) for line in lines if line.startswith("export "))
        source = dict(line.split(" = ") for line in lines if " = " in line)
        assert f"OMNIMEDSEG_{platform.upper()}_URL" in exports
        for key, value in exports.items():
            monkeypatch.setenv(key, value)
        card = make_card(source["platform"].strip('"'), source["record"].strip('"'), None,
                         version=source["version"].strip('"'))
        result = CliRunner().invoke(cli, ["--registry", str(card.path.parent), "registry", "lock", "emu", "--write"])
        assert result.exit_code == 0, result.output
        assert {f.name for f in Card.from_toml(card.path).source.files} == set(files)
        download_dataset(Card.from_toml(card.path))
        for name, data in files.items():
            assert (downloads() / name).read_bytes() == data
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "emulator stopped after" in out


def test_emulate_rejects_unknown_fault(tmp_path):
    result = CliRunner().invoke(cli, ["emulate", "zenodo", str(tmp_path), "--fault", "meteor:after=1"])
    assert result.exit_code != 0 and "unknown kind 'meteor'" in str(result.exception)
