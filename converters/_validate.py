"""Check a converted dataset against the output contract (docs/format.md).

Every problem is collected (not just the first) so one run tells the whole story;
each names the file, what was expected and what was found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from omnimedseg.converters._run import COMPLETE_MARKER
from omnimedseg.converters.formats.geometry import AFFINE_TOLERANCE_MM
from omnimedseg.converters.formats.outputs import read_output
from omnimedseg.files import file_hashes

FIXED_FILES = ("dataset.json", "splits.json", "provenance.json", "LICENSE.txt", "CITATION.bib", COMPLETE_MARKER)


@dataclass
class ValidationReport:
    folder: Path
    problems: list[str] = field(default_factory=list)
    checked_files: int = 0
    raw_sources_checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, message: str) -> None:
        self.problems.append(message)


def validate_converted(folder: Path, raw: Path | None = None) -> ValidationReport:
    """Validate ``folder``; raw source hashes are re-checked when ``raw`` exists."""
    report = ValidationReport(folder)
    for name in FIXED_FILES:
        path = folder / name
        if not path.is_file():
            report.add(f"{path}: missing; expected by the output contract")
        elif name in ("LICENSE.txt", "CITATION.bib") and not path.read_text(encoding="utf-8").strip():
            report.add(f"{path}: empty; expected the dataset's licence/citation")
    if not report.ok and not (folder / "dataset.json").is_file():
        return report
    try:
        dataset = json.loads((folder / "dataset.json").read_text())
        provenance = json.loads((folder / "provenance.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        report.add(f"{folder}: dataset.json/provenance.json unreadable ({exc})")
        return report
    classes = dataset["omnimedseg"]["classes"]
    listed: set[str] = set()
    for case in dataset["cases"]:
        listed.add(case["image"])
        _check_case(folder, case, classes, report)
        listed.update(case["masks"].values())
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - set(FIXED_FILES)
    for extra in sorted(on_disk - listed):
        report.add(f"{folder / extra}: not listed in dataset.json (unexpected extra file)")
    files = provenance.get("files", {})
    for rel in sorted(listed - set(files)):
        report.add(f"{folder / rel}: no provenance record in provenance.json")
    report.raw_sources_checked = raw is not None and raw.is_dir()
    raw_hashes: dict[str, str] = {}
    for rel, record in sorted(files.items()):
        path = folder / rel
        if not path.is_file():
            if rel in listed:
                continue  # reported as missing by the case check
            report.add(f"{path}: listed in provenance.json but missing")
            continue
        report.checked_files += 1
        actual = file_hashes(path)["sha256"]
        if actual != record["sha256"]:
            report.add(f"{path}: sha256 {actual} differs from provenance {record['sha256']} (file changed)")
        if report.raw_sources_checked:
            for source in record["sources"]:
                _check_raw(raw, source["path"], source["sha256"], raw_hashes, report)
    if report.raw_sources_checked:
        for rel, digest in provenance.get("metadata_sources", {}).items():
            _check_raw(raw, rel, digest, raw_hashes, report)
    splits_path = folder / "splits.json"
    if splits_path.is_file():
        splits = json.loads(splits_path.read_text())
        in_splits = sorted(c for ids in splits.values() for c in ids)
        if in_splits != sorted(c["case_id"] for c in dataset["cases"]):
            report.add(f"{splits_path}: case ids differ from dataset.json cases")
    return report


def _check_raw(raw: Path, rel: str, expected: str, cache: dict[str, str], report: ValidationReport) -> None:
    path = raw / rel
    if not path.is_file():
        report.add(f"{path}: raw source recorded in provenance.json is missing")
        return
    if rel not in cache:
        cache[rel] = file_hashes(path)["sha256"]
    if cache[rel] != expected:
        report.add(f"{path}: raw source sha256 {cache[rel]} differs from provenance {expected}")


def _check_case(folder: Path, case: dict, classes: list[str], report: ValidationReport) -> None:
    image_path = folder / case["image"]
    if not image_path.is_file():
        report.add(f"{image_path}: missing image of case {case['case_id']}")
        return
    image, affine = read_output(image_path)
    if list(image.shape) != case["shape"]:
        report.add(f"{image_path}: shape {list(image.shape)} differs from dataset.json {case['shape']}")
    if not case["masks"]:
        return  # unlabelled case (e.g. a test split without annotations)
    missing = [c for c in classes if c not in case["masks"]]
    if missing:
        report.add(f"case {case['case_id']}: no mask for class(es) {missing}; expected one per class {classes}")
    spatial = image.shape[:2] if affine is None else image.shape[:3]
    for name, rel in case["masks"].items():
        path = folder / rel
        if not path.is_file():
            report.add(f"{path}: missing mask '{name}' of case {case['case_id']}")
            continue
        mask, mask_affine = read_output(path)
        if mask.shape != spatial:
            report.add(f"{path}: shape {mask.shape} differs from image {spatial}")
        if affine is not None and (mask_affine is None or not np.allclose(mask_affine, affine,
                                                                          atol=AFFINE_TOLERANCE_MM)):
            report.add(f"{path}: affine differs from image {image_path.name}")
        values = np.unique(mask)
        if not set(values.tolist()) <= {0, 1, False, True}:
            report.add(f"{path}: not binary; found values {values[:10].tolist()}")
