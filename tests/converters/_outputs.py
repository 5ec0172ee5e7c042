"""Read back what a converted dataset says about its cases (for the dataset tests)."""

from __future__ import annotations

import json
from pathlib import Path


def files_by_name(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative POSIX path -> bytes): two outputs compared whole."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def cases_by_id(out: Path) -> dict[str, dict]:
    """case id -> its entry in dataset.json (split, image, masks, meta ...)."""
    return {case["case_id"]: case for case in json.loads((out / "dataset.json").read_text())["cases"]}


def provenance_of(out: Path, written: str) -> tuple[str, list[str]]:
    """(reader operation, raw paths) recorded for one written file, e.g. ``masks/<id>/polyp.png``."""
    entry = json.loads((out / "provenance.json").read_text())["files"][written]
    return entry["operation"], [source["path"] for source in entry["sources"]]


def convert_extracted_release(dataset_id: str, make_remote_files, tmp_path: Path, edit=None) -> Path:
    """``omnimedseg convert <id> --raw DIR`` on the fake release unpacked as a user would (``unzip`` each
    archive into DIR, side files copied; ``edit(DIR)`` then changes it); returns the output folder. Nothing is
    downloaded or verified."""
    import shutil
    import zipfile

    from omnimedseg import paths
    from omnimedseg.registry import load_registry
    from tests.helpers import run_cli

    remote, raw, root = tmp_path / "release", tmp_path / "unpacked", tmp_path / "home"
    remote.mkdir(parents=True)
    raw.mkdir()
    make_remote_files(remote)
    for path in sorted(remote.iterdir()):
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                zf.extractall(raw)
        else:
            shutil.copy(path, raw / path.name)
    if edit is not None:
        edit(raw)
    result = run_cli("--root", root, "convert", dataset_id, "--raw", raw, "--accept-licence")
    assert result.exit_code == 0, result.output
    card = load_registry().get(dataset_id)
    return paths.converted_dir(card.id, card.converter_version, root)
