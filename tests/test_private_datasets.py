"""Private datasets: ``new --plugin`` packages, ``registry lock --from``, scaffold cards kept out of ``list``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from omnimedseg.registry import Card
from omnimedseg.registry.card import lint_card
from tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[1]


def _venv_seeing_this_checkout(folder: Path) -> Path:
    """A fresh venv (system site-packages for the dependencies) that imports omnimedseg from this checkout."""
    venv.EnvBuilder(with_pip=False, system_site_packages=True).create(folder)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # the editable install of this checkout (its .pth and finder), so this checkout is the omnimedseg imported
    import shutil
    import site

    hooks = [p for d in site.getsitepackages() for p in Path(d).glob("__editable__*omnimedseg*")]
    if not hooks:
        pytest.skip("omnimedseg is not installed in editable mode here (pip install -e .), so a fresh venv "
                    "cannot import this checkout without reinstalling it")
    for hook in hooks:
        shutil.copy2(hook, Path(purelib) / hook.name)
    return python


def test_new_plugin_installs_with_pip_and_its_own_test_passes(tmp_path):
    plugin = tmp_path / "my_private"
    result = run_cli("new", "my_private", "--plugin", plugin)
    assert result.exit_code == 0, result.output
    python = _venv_seeing_this_checkout(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OMNIMEDSEG_REGISTRY_PATH")}
    env["OMNIMEDSEG_HOME"] = str(tmp_path / "home")
    run = lambda *args, cwd=tmp_path: subprocess.run([str(python), *args], capture_output=True, text=True,
                                                     timeout=300, cwd=cwd, env=env)
    before = run("-m", "omnimedseg", "info", "my_private")
    assert before.returncode == 1 and "unknown dataset 'my_private'" in before.stderr
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                                "--no-build-isolation", "-e", str(plugin)], capture_output=True, text=True,
                               timeout=300, env=env)
    assert installed.returncode == 0, installed.stderr
    info = run("-m", "omnimedseg", "info", "my_private")
    assert info.returncode == 0 and info.stdout.startswith("my_private: TODO(my_private)"), info
    plugins = run("-m", "omnimedseg", "list", "--plugins")
    assert "my_private" in plugins.stdout and "omnimedseg_my_private.converter:MyPrivate" in plugins.stdout
    listed = run("-m", "omnimedseg", "list", "--json")
    assert listed.returncode == 0 and "my_private" not in {c["id"] for c in json.loads(listed.stdout)}  # TODOs left
    # the scaffold's own test runs where it was written: fake raw data -> Zenodo emulator -> download ->
    # convert -> validate, through the installed entry points
    tested = run("-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=plugin)
    assert tested.returncode == 0 and "1 passed" in tested.stdout, tested.stdout + tested.stderr
    again = run("-m", "omnimedseg", "new", "my_private", "--plugin", tmp_path / "other")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_new_refuses_existing_ids_and_converter_names(tmp_path):
    result = run_cli("new", "hc18", "--plugin", tmp_path / "p")
    assert result.exit_code == 2 and "dataset 'hc18' already exists" in result.output
    assert not (tmp_path / "p").exists()
    result = run_cli("new", "msd", "--dir", tmp_path)  # no card is called msd, but the MSD converter is
    assert result.exit_code == 2 and "converter named 'msd' already exists" in result.output


def test_scaffold_cards_load_but_are_never_listed(tmp_path):
    assert run_cli("new", "my_scans", "--dir", tmp_path).exit_code == 0
    cards = tmp_path / "registry"
    listed = run_cli("--registry", cards, "list", "--json")
    assert listed.exit_code == 0 and "my_scans" not in {c["id"] for c in json.loads(listed.stdout)}
    assert "my_scans" not in run_cli("--registry", cards, "list").output
    info = run_cli("--registry", cards, "info", "my_scans")
    assert info.exit_code == 0 and "my_scans" in info.output  # its author can still work on it
    # a finished card in the same folder is listed
    finished = (REPO / "registry" / "hc18.toml").read_text().replace('id = "hc18"', 'id = "my_finished"')
    (cards / "my_finished.toml").write_text(finished)
    listed = run_cli("--registry", cards, "list", "--json")
    assert {"my_finished", "hc18"} <= {c["id"] for c in json.loads(listed.stdout)}
    assert "my_scans" not in {c["id"] for c in json.loads(listed.stdout)}


def test_registry_lock_from_a_local_copy_pins_sizes_and_hashes(tmp_path):
    import importlib.util

    from omnimedseg.files import file_hashes

    assert run_cli("new", "my_scans", "--dir", tmp_path).exit_code == 0
    spec = importlib.util.spec_from_file_location("my_scans_fake", tmp_path / "tests/converters/fake/my_scans.py")
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)
    copy = tmp_path / "my copy" / "nested"
    copy.mkdir(parents=True)
    fake.make_remote_files(copy)
    cards = tmp_path / "registry"
    card_path = cards / "my_scans.toml"
    assert any("lacks size or hash" in p for p in lint_card(Card.from_toml(card_path)))
    printed = run_cli("--registry", cards, "registry", "lock", "my_scans", "--from", tmp_path / "my copy")
    assert printed.exit_code == 0, printed.output
    zip_path = copy / "TODO(my_scans).zip"
    digests = file_hashes(zip_path, ("md5", "sha256"))
    assert f"size = {zip_path.stat().st_size}" in printed.output and digests["sha256"] in printed.output
    assert "lacks size or hash" in " ".join(lint_card(Card.from_toml(card_path)))  # printing writes nothing
    assert run_cli("--registry", cards, "registry", "lock", "my_scans", "--from", tmp_path / "my copy",
                   "--write").exit_code == 0
    pinned = Card.from_toml(card_path).source.files[0]
    assert (pinned.size, pinned.hashes) == (zip_path.stat().st_size, digests) and pinned.extract
    assert not any("lacks size or hash" in p for p in lint_card(Card.from_toml(card_path)))
    zip_path.unlink()
    missing = run_cli("--registry", cards, "registry", "lock", "my_scans", "--from", tmp_path / "my copy")
    assert missing.exit_code == 1 and "TODO(my_scans).zip not found" in missing.output
