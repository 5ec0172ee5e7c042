"""``omnimedseg demo``: the whole pipeline, offline, on a small bundled sample of real raw data.

The sample (``files/``, described in ``ATTRIBUTION.md``) is served by the project's Zenodo emulator on
loopback exactly as the platform serves a release, so every step is the real one: the Zenodo downloader and
transfer engine (sizes and hashes checked against the demo cards in ``cards/``), the real ``hc18`` and
``totalsegmentator`` converters, validation, QA contact sheets and the benchmark runner (``demo_suite.toml``:
a weight-free baseline with click, box and scribble users, 2D and 3D). The demo cards are read only here,
so ``omnimedseg list`` never shows them. Every step skips what a previous run finished.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from omnimedseg.progress import SILENT, Progress

HERE = Path(__file__).resolve().parent
CARDS = HERE / "cards"
FILES = HERE / "files"
SUITE = HERE / "demo_suite.toml"
ATTRIBUTION = HERE / "ATTRIBUTION.md"
DATASETS = ("demo_hc18", "demo_totalsegmentator")


def default_root(data_root: str | Path | None = None) -> Path:
    """Where the demo keeps its data unless told otherwise: a ``demo`` folder of the data root
    (``--root``, else ``$OMNIMEDSEG_HOME``, else the user cache), apart from real datasets."""
    from omnimedseg import paths

    return paths.data_root(data_root) / "demo"


@dataclass
class DemoResult:
    root: Path
    converted: dict[str, Path] = field(default_factory=dict)
    qa_sheets: dict[str, list[Path]] = field(default_factory=dict)
    qa_index: dict[str, Path] = field(default_factory=dict)
    benchmark: Path | None = None
    reused: list[str] = field(default_factory=list)  # steps skipped because a previous run finished them


def run_demo(root: Path, echo: Callable[[str], None] = print, progress: Progress = SILENT,
             workers: int = 1) -> DemoResult:
    """Download, convert, validate, QA and benchmark the demo datasets into ``root``."""
    from omnimedseg import paths
    from omnimedseg.benchmark import Suite, run_benchmark
    from omnimedseg.converters._run import convert_dataset, is_complete
    from omnimedseg.converters._validate import validate_converted
    from omnimedseg.data.qa import run_qa
    from omnimedseg.downloaders import download_dataset
    from omnimedseg.downloaders.emulators import ZenodoEmulator
    from omnimedseg.errors import ValidationError
    from omnimedseg.registry import load_registry
    from omnimedseg.testing import environment

    root = Path(root).expanduser().resolve()
    result = DemoResult(root)
    registry_dirs = (str(CARDS),)
    registry = load_registry(registry_dirs)
    cards = [registry.get(dataset_id) for dataset_id in DATASETS]
    root.mkdir(parents=True, exist_ok=True)
    if not (root / ATTRIBUTION.name).is_file():
        shutil.copyfile(ATTRIBUTION, root / ATTRIBUTION.name)

    echo("1/4 download: a Zenodo emulator on loopback serves the bundled sample; the real downloader fetches it")
    with ZenodoEmulator() as emulator, environment(emulator.env):
        for card in cards:
            emulator.add_record(card.source.record, {f.name: FILES / card.id / f.name for f in card.source.files})
        for card in cards:
            raw = download_dataset(card, root, progress=progress)
            echo(f"    {card.id}: {len(card.source.files)} file(s) verified (size, md5, sha256), raw files in {raw}")

    echo("2/4 convert and validate with the real converters")
    for card in cards:
        out = paths.converted_dir(card.id, card.converter_version, root)
        if is_complete(out, None):
            result.reused.append(f"convert {card.id}")
        out = convert_dataset(card, root, workers=workers, progress=progress)
        report = validate_converted(out, paths.raw_dir(card.id, root))
        if not report.ok:
            raise ValidationError(f"{card.id}: {len(report.problems)} validation problem(s) in {out}: "
                                  f"{report.problems[0]}; run: omnimedseg --root {root} --registry {CARDS} "
                                  f"validate {card.id}")
        result.converted[card.id] = out
        echo(f"    {card.id}: converted into {out}; valid ({report.checked_files} files match their provenance)")

    echo("3/4 QA contact sheets")
    for card in cards:
        qa = run_qa(card.id, root=root, registry_dirs=registry_dirs)
        result.qa_sheets[card.id] = list(qa.sheets)
        result.qa_index[card.id] = qa.index_html
        echo(f"    {card.id}: {len(qa.sheets)} sheet(s), {qa.index_html}")

    suite = Suite.from_toml(SUITE)
    out = root / "benchmarks" / suite.name
    echo(f"4/4 benchmark: {suite.model} with {', '.join(suite.robot_users)}, {suite.steps + 1} interactions each")
    done = len(list((out / "records").glob("*.json"))) if (out / "records").is_dir() else 0
    if done:
        result.reused.append(f"{done} benchmark sessions")
    result.benchmark = run_benchmark(suite, out, root=str(root), registry_dirs=registry_dirs, workers=workers,
                                     progress=progress)
    return result


__all__ = ["run_demo", "default_root", "DemoResult", "CARDS", "FILES", "SUITE", "ATTRIBUTION", "DATASETS"]
