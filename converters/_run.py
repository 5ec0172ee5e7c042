"""Run a converter: read every case, check it, write the standard output atomically.

Output contract: docs/format.md. Everything is written into a staging folder beside
the final one; ``.complete`` is written last and the folder is renamed into place,
so a reader never sees a half-written dataset and an interrupted run is simply run
again.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omnimedseg import __version__, paths
from omnimedseg.converters._base import CASE_ID_PATTERN, SPLIT_PATTERN, Case, Converter
from omnimedseg.converters.formats.geometry import conform_to_grid
from omnimedseg.converters.formats.image2d import write_png
from omnimedseg.converters.formats.imagedata import ImageData
from omnimedseg.errors import ConversionError, DatasetNotFoundError
from omnimedseg.files import atomic_write_text, file_hashes, staged_folder
from omnimedseg.plugins import load_plugin
from omnimedseg.progress import SILENT, Progress
from omnimedseg.registry import Card

COMPLETE_MARKER = ".complete"


@dataclass(frozen=True)
class Layout:
    """File names inside one converted dataset folder (relative, POSIX)."""

    suffix: str

    def image(self, case_id: str) -> str:
        return f"images/{case_id}{self.suffix}"

    def mask(self, case_id: str, class_name: str) -> str:
        return f"masks/{case_id}/{class_name}{self.suffix}"

    @classmethod
    def for_card(cls, card: Card) -> "Layout":
        return cls(".png" if card.dimensionality == 2 else ".nii.gz")


def converter_for(card: Card) -> Converter:
    return load_plugin("converters", card.converter, Converter)(card)


def collect_cases(card: Card, raw: Path, converter: Converter | None = None) -> list[Case]:
    """All cases of ``card`` under ``raw``, checked for ids, splits and class names."""
    cases = list((converter or converter_for(card)).cases(raw))
    if not cases:
        raise ConversionError(f"{card.id}: the converter found no cases under {raw}; expected the layout in "
                              f"docs/datasets/{card.id}.md; re-run: omnimedseg download {card.id}")
    seen: set[str] = set()
    classes = set(card.class_names)
    for case in cases:
        if not CASE_ID_PATTERN.match(case.case_id):
            raise ConversionError(f"{card.id}: case id {case.case_id!r} must be letters, digits, '.', '_' or '-'")
        if case.case_id in seen:
            raise ConversionError(f"{card.id}: case id {case.case_id!r} occurs twice; case ids must be unique")
        seen.add(case.case_id)
        if not SPLIT_PATTERN.match(case.split):
            raise ConversionError(f"{card.id}: case {case.case_id}: split {case.split!r} is not snake_case")
        unknown = set(case.masks) - classes
        if unknown:
            raise ConversionError(f"{card.id}: case {case.case_id}: mask class(es) {sorted(unknown)} are not in "
                                  f"the card's classes {sorted(classes)} ({card.path})")
        if case.masks and case.label is not None:
            raise ConversionError(f"{card.id}: case {case.case_id}: give either masks or label, not both")
    return cases


def convert_dataset(card: Card, root: str | os.PathLike | None = None, force: bool = False, workers: int = 1,
                    progress: Progress = SILENT) -> Path:
    """Convert ``card``'s raw data to the standard output; returns the output folder.

    A complete output is not redone unless ``force``.
    """
    out = paths.converted_dir(card.id, card.converter_version, root)
    if (out / COMPLETE_MARKER).is_file() and not force:
        return out
    raw = paths.raw_dir(card.id, root)
    if not raw.is_dir():
        raise DatasetNotFoundError(f"{card.id}: raw data not found in {raw}; run: omnimedseg download {card.id}")
    converter = converter_for(card)
    cases = collect_cases(card, raw, converter)
    label_values = dict(converter.label_values or card.classes)
    if not set(label_values.values()) <= set(card.class_names):
        raise ConversionError(f"{card.id}: label_values name classes {sorted(set(label_values.values()))} "
                              f"but the card ({card.path}) defines {card.class_names}")
    with staged_folder(out) as staging:
        records = _write_cases(card, cases, label_values, raw, staging, workers, progress)
        _write_dataset_files(card, cases, records, raw, staging)
        atomic_write_text(staging / COMPLETE_MARKER, json.dumps({"tool_version": __version__}) + "\n")
    return out


def _write_cases(card: Card, cases: list[Case], label_values: dict[int, str], raw: Path, staging: Path,
                 workers: int, progress: Progress) -> list[dict]:
    layout = Layout.for_card(card)
    jobs = [(card, case, label_values, raw, staging, layout) for case in cases]
    with progress.task(f"convert {card.id}", len(cases), unit="case") as advance:
        if workers <= 1:
            records = []
            for job in jobs:
                records.append(_write_case(*job))
                advance(1)
            return records
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_write_case, *job) for job in jobs]
            records = []
            for future in futures:
                records.append(future.result())
                advance(1)
            return records


def _write_case(card: Card, case: Case, label_values: dict[int, str], raw: Path, staging: Path,
                layout: Layout) -> dict:
    """Read, check and write one case; returns its dataset.json and provenance records."""
    image = case.image.load()
    _check_image(card, case, image)
    masks = _case_masks(card, case, image, label_values)
    written = {layout.image(case.case_id): (image, case.image)}
    for name, (mask, source) in masks.items():
        written[layout.mask(case.case_id, name)] = (ImageData(mask.array.astype(bool), image.affine, meta=mask.meta),
                                                    source)
    provenance = {}
    for rel, (data, source) in written.items():
        path = staging / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_array(data, path)
        provenance[rel] = {
            "sha256": file_hashes(path)["sha256"],
            "operation": source.operation,
            "sources": [_raw_record(p, raw) for p in source.paths],
            **({"reoriented": data.meta["reoriented"]} if data.meta.get("reoriented") else {}),
        }
    spacing = case.spacing if case.spacing is not None else image.spacing
    entry = {
        "case_id": case.case_id,
        "split": case.split,
        "image": layout.image(case.case_id),
        "masks": {name: layout.mask(case.case_id, name) for name in masks},
        "shape": list(image.array.shape),
        "spacing": [float(s) for s in spacing] if spacing is not None else None,
        "meta": dict(case.meta),
    }
    return {"entry": entry, "provenance": provenance}


def _check_image(card: Card, case: Case, image: ImageData) -> None:
    where = case.image.paths[0]
    if card.dimensionality == 2:
        if image.is_3d or image.array.ndim not in (2, 3) or (image.array.ndim == 3 and image.array.shape[2] > 4):
            raise ConversionError(f"{where}: expected a 2D image (rows, cols[, channels<=4]) for {card.id}, "
                                  f"found shape {image.array.shape}")
        if case.spacing is not None and len(case.spacing) != 2:
            raise ConversionError(f"{where}: 2D spacing must be (row, col) in mm, found {case.spacing}")
    elif not image.is_3d or image.array.ndim not in (3, 4):
        raise ConversionError(f"{where}: expected a 3D volume with an affine for {card.id}, "
                              f"found shape {image.array.shape}" + ("" if image.is_3d else " without affine"))


def _case_masks(card: Card, case: Case, image: ImageData,
                label_values: dict[int, str]) -> dict[str, tuple[np.ndarray, object]]:
    """class name -> (bool mask on the image grid, its source), every class present when labelled."""
    if not case.labelled:
        return {}
    spatial = image.array.shape[:2] if card.dimensionality == 2 else image.array.shape[:3]
    loaded: dict[str, tuple[ImageData, object]] = {}
    if case.label is not None:
        label = _check_geometry(case.label.load(), image, spatial, case.label.paths[0], case.image.paths[0])
        values = label_values
        present = np.unique(label.array)
        unknown = sorted(set(present.tolist()) - set(values) - {0})
        if unknown:
            raise ConversionError(f"{case.label.paths[0]}: label values {unknown} are not among the expected "
                                  f"{sorted(values)} (0 = background); map them in the card's classes "
                                  f"or the converter's label_values")
        for value, name in values.items():
            loaded[name] = (ImageData(label.array == value, label.affine, meta=label.meta), case.label)
    else:
        for name, source in case.masks.items():
            mask = _check_geometry(source.load(), image, spatial, source.paths[0], case.image.paths[0])
            if mask.array.dtype != bool:
                raise ConversionError(f"{source.paths[0]}: reader {source.operation} returned {mask.array.dtype}; "
                                      f"mask readers must return a bool array")
            loaded[name] = (mask, source)
    missing = [n for n in card.class_names if n not in loaded]
    if missing:
        raise ConversionError(f"{card.id}: case {case.case_id} has no mask for class(es) {missing}; every labelled "
                              f"case needs one source per class in {card.class_names}")
    return {name: (loaded[name][0], loaded[name][1]) for name in card.class_names}


def _check_geometry(mask: ImageData, image: ImageData, spatial: tuple[int, ...], mask_path: Path,
                    image_path: Path) -> ImageData:
    """The mask on the image's grid: as read, or reoriented losslessly when it is the same grid in
    another axis order (``meta["reoriented"]``, copied into provenance); otherwise an error."""
    if not image.is_3d:
        mask = ImageData(mask.array, None, meta=mask.meta)
    return conform_to_grid(mask, mask_path, spatial, image.affine, image_path)


def _write_array(data: ImageData, path: Path) -> None:
    if path.name.endswith(".png"):
        write_png(data.array, path)
    else:
        from omnimedseg.converters.formats.nifti import write_nifti

        array = data.array.astype(np.uint8) if data.array.dtype == bool else data.array
        write_nifti(ImageData(array, data.affine), path)


def _raw_record(path: Path, raw: Path) -> dict:
    path = Path(path)
    try:
        rel = path.resolve().relative_to(raw.resolve()).as_posix()
    except ValueError:
        raise ConversionError(f"{path}: source file is outside the raw folder {raw}; converters must only "
                              f"read files under the raw folder") from None
    return {"path": rel, "sha256": file_hashes(path)["sha256"]}


def _write_dataset_files(card: Card, cases: list[Case], records: list[dict], raw: Path, staging: Path) -> None:
    entries = [r["entry"] for r in records]
    provenance = {"dataset_id": card.id, "platform": card.source.platform, "record": card.source.record,
                  "version": card.source.version, "converter": card.converter,
                  "converter_version": card.converter_version, "tool_version": __version__,
                  "card_sha256": card.sha256, "files": {}, "metadata_sources": {}}
    for r in records:
        provenance["files"].update(r["provenance"])
    for case in cases:
        for p in case.metadata_sources:
            rec = _raw_record(p, raw)
            provenance["metadata_sources"][rec["path"]] = rec["sha256"]
    splits: dict[str, list[str]] = {}
    for e in entries:
        splits.setdefault(e["split"], []).append(e["case_id"])
    layout = Layout.for_card(card)
    dataset = {
        "name": card.title,
        "description": card.description.strip(),
        "reference": card.homepage,
        "licence": card.license.spdx,
        "release": card.source.version,
        "tensorImageSize": f"{card.dimensionality}D",
        "modality": {"0": card.modality},
        "channel_names": {"0": card.modality},
        "labels": {"background": 0, **{name: i for i, name in sorted(card.classes.items())}},
        "file_ending": layout.suffix,
        "numTraining": sum(1 for e in entries if e["masks"]),
        "numTest": sum(1 for e in entries if not e["masks"]),
        "training": [{"image": e["image"], "masks": e["masks"]} for e in entries if e["masks"]],
        "test": [e["image"] for e in entries if not e["masks"]],
        "cases": entries,
        "omnimedseg": {
            "dataset_id": card.id, "modality": card.modality, "dimensionality": card.dimensionality,
            "classes": card.class_names, "converter": card.converter, "converter_version": card.converter_version,
            "tool_version": __version__, "card_sha256": card.sha256, "license": card.license.spdx,
            "redistribution": card.license.redistribution, "mask_format": "one binary mask per class per image",
        },
    }
    _write_json(staging / "dataset.json", dataset)
    _write_json(staging / "splits.json", splits)
    _write_json(staging / "provenance.json", provenance)
    (staging / "LICENSE.txt").write_text(license_text(card), encoding="utf-8")
    (staging / "CITATION.bib").write_text(card.citation.bibtex, encoding="utf-8")


def license_text(card: Card) -> str:
    lic = card.license
    lines = [f"{card.title}", "", f"Licence: {lic.spdx}", f"Licence text: {lic.url}",
             f"Redistribution of converted data allowed: {'yes' if lic.redistribution else 'NO'}"]
    if lic.attribution:
        lines += ["", f"Attribution: {lic.attribution}"]
    if lic.text:
        lines += ["", lic.text.strip()]
    lines += ["", f"Source: {card.homepage}", f"Cite: doi:{card.citation.doi} (see CITATION.bib)"]
    return "\n".join(lines) + "\n"


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
