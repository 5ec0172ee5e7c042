"""The README's commands cannot rot: they exist, the first screen installs and runs the demo, CI runs its tests."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest

from tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
FIRST_SCREEN_LINES = 40


def bash_blocks(text: str) -> list[list[str]]:
    """Command lines of every ```bash block (comments and blank lines dropped)."""
    blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)
    return [[line.split(" #")[0].strip() for line in block.splitlines() if line.strip()] for block in blocks]


def test_first_screen_installs_runs_the_demo_and_names_the_test_command():
    first_screen = "\n".join(README.splitlines()[:FIRST_SCREEN_LINES])
    install_and_demo, test = bash_blocks(first_screen)[:2]
    assert install_and_demo == ['pip install -e ".[test]"', "omnimedseg demo"]
    assert test == ["python -m pytest"]
    ci = (REPO / ".ci" / "run").read_text()
    for command in ('pip install -q -e ".[test]"', "python -m pytest 2>&1"):  # CI runs exactly these
        assert command in ci
    assert "https://download.pytorch.org/whl/cpu" in README


def _help(path: tuple[str, ...]) -> str:
    result = run_cli(*path, "--help")
    assert result.exit_code == 0, f"README command 'omnimedseg {' '.join(path)}' does not exist: {result.output}"
    return result.output


def test_every_readme_omnimedseg_command_and_option_exists():
    lines = [line for block in bash_blocks(README) for line in block if line.startswith("omnimedseg ")]
    assert len(lines) >= 15
    top = _help(())
    for line in lines:
        for part in line.split("&&"):
            words = shlex.split(part.strip())[1:]
            path = tuple(w for w in words[:2] if re.fullmatch(r"[a-z]+", w))
            path = path if len(path) == 2 and "Commands:" in _help(path[:1]) else path[:1]
            text = _help(path) + top
            for option in (w.split("=")[0] for w in words if w.startswith("--")):
                assert option in text, f"README line {line!r}: 'omnimedseg {' '.join(path)}' has no {option}"


def test_readme_datasets_table_is_generated_from_the_registry(tmp_path):
    result = run_cli("registry", "docs", "--check", "--output", REPO / "docs" / "datasets.md", "--readme",
                     REPO / "README.md")
    assert result.exit_code == 0, "README.md's datasets table is stale: run omnimedseg registry docs"
    stale = tmp_path / "README.md"
    stale.write_text(README.replace("| `hc18` |", "| `hc18_old` |"))
    shutil.copy(REPO / "docs" / "datasets.md", tmp_path / "datasets.md")
    result = run_cli("registry", "docs", "--check", "--output", tmp_path / "datasets.md", "--readme", stale)
    assert result.exit_code == 1 and "README.md is not current" in result.output
    assert run_cli("registry", "docs", "--output", tmp_path / "datasets.md", "--readme", stale).exit_code == 0
    assert stale.read_text() == README
    stale.write_text("# no markers\n")
    result = run_cli("registry", "docs", "--output", tmp_path / "datasets.md", "--readme", stale)
    assert result.exit_code == 1 and "expected the lines" in result.output


# slow (opt-in): 25-30 s on a loaded 2-core machine, and tests/test_demo.py already runs the demo by default
@pytest.mark.slow
def test_readme_first_screen_in_a_fresh_venv(tmp_path):
    """The install command (offline: --no-deps, dependencies from this environment) then `omnimedseg demo`."""
    from tests.test_packaging import _source_copy

    source = _source_copy(tmp_path / "checkout")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=True).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OMNIMEDSEG_REGISTRY_PATH")}
    env["OMNIMEDSEG_HOME"] = str(tmp_path / "home")
    install, demo = bash_blocks(README)[0]
    words = shlex.split(install)
    assert words[:2] == ["pip", "install"]
    started = time.monotonic()
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                                "--no-build-isolation", *words[2:]], cwd=source, capture_output=True, text=True,
                               timeout=600, env=env)
    assert installed.returncode == 0, installed.stderr
    ran = subprocess.run([str(env_dir / "bin" / demo.split()[0]), *demo.split()[1:], "--root", str(tmp_path / "d")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    print(f"install + demo in a fresh venv: {time.monotonic() - started:.1f} s")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "| demo_totalsegmentator | box_careful |" in ran.stdout
    where = subprocess.run([str(python), "-c", "import omnimedseg.demo as d; print(d.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path).stdout
    assert where.startswith(str(source)), where  # the checkout's copy ran, not this environment's
