"""The wheel maps downloaders/, converters/ and registry/ into the omnimedseg namespace."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _source_copy(folder: Path) -> Path:
    """The files git would ship (tracked + untracked, not ignored): no stale build/ leftovers."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in filter(None, listed):
        source = REPO / rel
        if source.is_file():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / rel)
    return folder


def test_wheel_installs_into_a_fresh_venv_and_runs(tmp_path):
    dist = tmp_path / "dist"
    source = _source_copy(tmp_path / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                    "-w", str(dist), "-q"], check=True, timeout=300, cwd=tmp_path)
    wheel = next(dist.glob("omnimedseg-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"omnimedseg"}, top_level  # nothing generic lands in site-packages
    for expected in ("omnimedseg/downloaders/__init__.py", "omnimedseg/converters/hc18.py",
                     "omnimedseg/converters/formats/image2d.py", "omnimedseg/registry/hc18.toml",
                     "omnimedseg/demo/cards/demo_hc18.toml", "omnimedseg/demo/demo_suite.toml",
                     "omnimedseg/demo/ATTRIBUTION.md", "omnimedseg/demo/files/demo_hc18/training_set.zip",
                     "omnimedseg/demo/files/demo_totalsegmentator/Totalsegmentator_dataset_v201.zip"):
        assert expected in names

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    target_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                      capture_output=True, text=True, check=True).stdout.strip())
    # The wheel itself is installed for real; its dependencies (torch, SimpleITK...) come from this
    # environment's site-packages by a .pth line, which (unlike site dirs) does not run our editable hook.
    (target_site / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                    str(wheel)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = lambda *args: subprocess.run([str(env_dir / "bin" / "omnimedseg"), *args], capture_output=True,
                                       text=True, timeout=120, cwd=tmp_path, env=env)
    help_result = run("--help")
    assert help_result.returncode == 0 and "download" in help_result.stdout, help_result.stderr
    list_result = run("list")
    assert list_result.returncode == 0 and "hc18" in list_result.stdout, list_result.stderr
    where = subprocess.run([str(python), "-c", "import omnimedseg.converters as c; print(c.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env).stdout
    assert where.startswith(str(target_site)), where


def test_every_package_folder_is_listed_in_pyproject():
    """Mapped folders are not auto-discovered, so a new subpackage must be listed explicitly."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    mapping = {"omnimedseg": "omnimedseg", "downloaders": "omnimedseg.downloaders",
               "converters": "omnimedseg.converters", "registry": "omnimedseg.registry"}
    found = set()
    for folder, name in mapping.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((name, *rel)))
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
