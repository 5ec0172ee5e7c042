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
from omnimedseg.progress import SILENT, Progress

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


def validate_converted(folder: Path, raw: Path | None = None, progress: Progress = SILENT) -> ValidationReport:
    """Validate ``folder``; raw source hashes are re-checked when ``raw`` exists; ``progress`` counts files hashed."""
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
        listed.update(_check_case(folder, case, classes, dataset.get("raters", []), report))
        channels = list(dataset.get("channel_names", {}).values())
        if len(channels) > 1 and list(case.get("channels", {})) != channels:
            report.add(f"case {case['case_id']}: channels {list(case.get('channels', {}))} differ from dataset.json "
                       f"channel_names {channels}")
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - set(FIXED_FILES)
    for extra in sorted(on_disk - listed):
        report.add(f"{folder / extra}: not listed in dataset.json (unexpected extra file)")
    files = provenance.get("files", {})
    for rel in sorted(listed - set(files)):
        report.add(f"{folder / rel}: no provenance record in provenance.json")
    report.raw_sources_checked = raw is not None and raw.is_dir()
    raw_hashes: dict[str, str] = {}
    with progress.task(f"validate {folder.parent.name} {folder.name}", len(files), unit="file") as advance:
        for rel, record in sorted(files.items()):
            advance(1)
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
    for key in ("absent", "failed"):
        clash = {c["case_id"] for c in dataset.get(key, [])} & {c["case_id"] for c in dataset["cases"]}
        if clash:
            report.add(f"{folder / 'dataset.json'}: case(s) {sorted(clash)} are both converted and {key}")
    splits_path = folder / "splits.json"
    if splits_path.is_file():
        splits = json.loads(splits_path.read_text())
        in_splits = sorted(c for ids in splits.values() for c in ids)
        if in_splits != sorted(c["case_id"] for c in dataset["cases"]):
            report.add(f"{splits_path}: case ids differ from dataset.json cases")
    return report


def recorded_raw(folder: Path, downloaded_raw: Path) -> Path | None:
    """The raw folder to re-hash sources in: the downloaded one, or None when the data came from ``convert --raw``.

    A ``--raw`` conversion records ``raw_verified: false``; its sources live in the user's
    folder, so ``raw/<id>`` (if any) is not the tree they were read from.
    """
    try:
        provenance = json.loads((folder / "provenance.json").read_text())
    except (OSError, ValueError):
        return downloaded_raw
    return None if provenance.get("raw_verified") is False else downloaded_raw


def _check_raw(raw: Path, rel: str, expected: str, cache: dict[str, str], report: ValidationReport) -> None:
    path = raw / rel
    if not path.is_file():
        report.add(f"{path}: raw source recorded in provenance.json is missing")
        return
    if rel not in cache:
        cache[rel] = file_hashes(path)["sha256"]
    if cache[rel] != expected:
        report.add(f"{path}: raw source sha256 {cache[rel]} differs from provenance {expected}")


def case_files(case: dict) -> list[str]:
    """Every file a dataset.json case entry lists (channels, masks, raters, instances, ignore)."""
    files = list((case.get("channels") or {"image": case["image"]}).values()) + list(case["masks"].values())
    files += [p for by_class in case.get("raters", {}).values() for p in by_class.values()]
    files += list(case.get("instances", {}).values()) + ([case["ignore"]] if case.get("ignore") else [])
    return list(dict.fromkeys(files))


def _check_case(folder: Path, case: dict, classes: list[str], raters: list[str], report: ValidationReport) -> list[str]:
    """Check one case entry's files; returns the files it lists."""
    files = case_files(case)
    channels = case.get("channels") or {"image": case["image"]}
    first = folder / next(iter(channels.values()))
    if not first.is_file():
        report.add(f"{first}: missing image of case {case['case_id']}")
        return files
    image, affine = read_output(first)
    if list(image.shape) != case["shape"]:
        report.add(f"{first}: shape {list(image.shape)} differs from dataset.json {case['shape']}")
    spatial = image.shape[:2] if affine is None else image.shape[:3]
    del image

    def on_grid(path: Path, what: str, exact: bool) -> np.ndarray | None:
        """The file's pixels when it exists and lies on the image grid (``exact``: same shape)."""
        if not path.is_file():
            report.add(f"{path}: missing {what} of case {case['case_id']}")
            return None
        array, file_affine = read_output(path)
        shape = array.shape if exact else (array.shape[:2] if affine is None else array.shape[:3])
        if shape != spatial:
            report.add(f"{path}: shape {shape} differs from image {spatial}")
        if affine is not None and (file_affine is None or not np.allclose(file_affine, affine,
                                                                          atol=AFFINE_TOLERANCE_MM)):
            report.add(f"{path}: affine differs from image {first.name}")
        return array

    def binary(path: Path, what: str) -> None:
        array = on_grid(path, what, exact=True)
        if array is not None:
            values = np.unique(array)
            if not set(values.tolist()) <= {0, 1, False, True}:
                report.add(f"{path}: not binary; found values {values[:10].tolist()}")

    for name, rel in list(channels.items())[1:]:
        on_grid(folder / rel, f"channel '{name}'", exact=False)
    unlabelled = case.get("unlabelled", [])
    strangers = [c for c in unlabelled if c not in classes]
    if strangers:
        report.add(f"case {case['case_id']}: unlabelled class(es) {strangers} are not among the classes {classes}")
    annotated = [c for c in classes if c not in unlabelled]
    both = [c for c in unlabelled if c in case["masks"] or any(c in m for m in case.get("raters", {}).values())]
    if both:
        report.add(f"case {case['case_id']}: class(es) {both} are listed as unlabelled but have a mask file")
    if case["masks"]:
        missing = [c for c in annotated if c not in case["masks"]]
        if missing:
            report.add(f"case {case['case_id']}: no mask for class(es) {missing}; expected one per class {classes} "
                       f"not listed in the case's unlabelled {unlabelled}")
    elif unlabelled:
        report.add(f"case {case['case_id']}: lists unlabelled classes but has no masks; a case without "
                   f"annotations lists none")
    for name, rel in case["masks"].items():
        binary(folder / rel, f"mask '{name}'")
    for rater, by_class in case.get("raters", {}).items():
        if rater not in raters:
            report.add(f"case {case['case_id']}: rater {rater!r} is not among dataset.json raters {raters}")
        missing = [c for c in annotated if c not in by_class]
        if missing:
            report.add(f"case {case['case_id']}: rater {rater!r} has no mask for class(es) {missing}")
        for name, rel in by_class.items():
            if rel not in case["masks"].values():  # the reference rater's masks are the masks
                binary(folder / rel, f"rater {rater!r} mask '{name}'")
    for name, rel in case.get("instances", {}).items():
        array = on_grid(folder / rel, f"instance map '{name}'", exact=True)
        if array is not None and array.dtype.kind not in "iu":
            report.add(f"{folder / rel}: instance map of type {array.dtype}; expected unsigned integer ids")
    if case.get("ignore"):
        binary(folder / case["ignore"], "ignore mask")
    return files
