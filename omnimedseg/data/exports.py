"""Export a converted dataset to other tools' layouts (docs/data.md, "Exports").

=============  =================================================================
``nnunet``     nnU-Net v2 raw: ``Dataset<NNN>_<id>/{imagesTr,labelsTr,imagesTs}``,
               ``<case>_<channel:04d><ending>``, ``dataset.json``
``msd``        Medical Segmentation Decathlon layout whose ``dataset.json`` is a
               MONAI datalist (``load_decathlon_datalist``)
``croissant``  the dataset's files plus ``croissant.json`` (MLCommons Croissant 1.0)
``medsegdb``   MedSegDB npy slices (:func:`omnimedseg.data.medsegdb.export_medsegdb`)
=============  =================================================================

Every export is written to a staging folder beside the target, verified there, and
renamed into place, so a failed export leaves nothing behind; the converted data is
only read. Images are copied (``link=True`` hard-links them instead: no extra space,
but then editing an exported file edits the converted one).

**Overlapping classes.** nnU-Net and MSD store one label map per case (one class per
voxel), while our masks may overlap. ``overlap="error"`` (default) refuses a case whose
masks overlap and names it; ``overlap="last"`` gives an overlapping voxel the class
listed last in the card (highest label id), which suits nested structures listed
outer-first (kidney, then kidney_tumour). Overlap voxel counts are recorded in the
export's ``dataset.json`` under ``omnimedseg_export``.

**Classes a case does not annotate** (dataset.json ``unlabelled``, e.g. DSAD's single-organ
frames): a label map cannot say "unknown" with 0, which means background. nnU-Net gets its
ignore label (the highest value, left out of its loss) on every voxel of such a case that no
annotated class covers, so the unknown organs are never learnt as background; the MSD
datalist keeps 0 there and lists the classes under the item's ``unlabelled`` key, which a
MONAI pipeline reads like any other datalist field.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from omnimedseg import paths
from omnimedseg.converters.formats.outputs import read_output
from omnimedseg.errors import UsageError, ValidationError
from omnimedseg.files import dataset_lock, staged_folder, sweep_leftovers

FORMATS = ("nnunet", "msd", "croissant", "medsegdb")
OVERLAP_POLICIES = ("error", "last")
VALIDATION_SPLITS = ("val", "valid", "validation")
CROISSANT_CONFORMS_TO = "http://mlcommons.org/croissant/1.0"


@dataclass
class ExportResult:
    format: str
    folder: Path
    files: int
    notes: dict = field(default_factory=dict)


def default_out(fmt: str, dataset_id: str, root=None, nnunet_id: int = 500) -> Path:
    """``<root>/exports/<format>/<id>``; nnU-Net: ``<root>/exports/nnunet/Dataset<NNN>_<id>`` (an nnUNet_raw)."""
    base = paths.data_root(root) / "exports" / fmt
    return base / (f"Dataset{nnunet_id:03d}_{dataset_id}" if fmt == "nnunet" else dataset_id)


def export_dataset(dataset_id: str, fmt: str, out: str | os.PathLike | None = None, *, root=None,
                   registry_dirs: Sequence[str] = (), force: bool = False, overlap: str = "error",
                   link: bool = False, nnunet_id: int = 500, axis: int = 2) -> ExportResult:
    """Export converted ``dataset_id`` as ``fmt`` into ``out`` (default: :func:`default_out`)."""
    from omnimedseg.data.datasets import ConvertedDataset

    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if overlap not in OVERLAP_POLICIES:
        raise UsageError(f"unknown overlap policy {overlap!r}; expected one of {', '.join(OVERLAP_POLICIES)}")
    if fmt == "nnunet" and not 1 <= nnunet_id <= 999:
        raise UsageError(f"nnU-Net dataset ids are 1..999, found {nnunet_id}")
    dataset = ConvertedDataset(dataset_id, root=root, registry_dirs=registry_dirs, labelled_only=False)
    out = Path(out) if out is not None else default_out(fmt, dataset.dataset_id, root, nnunet_id)
    _check_outside(out, dataset.folder, paths.data_root(root))
    if fmt == "nnunet":
        _check_nnunet_id(out, nnunet_id, dataset_id)
    # the dataset's lock: no convert swaps the folder while it is read, and staging leftovers are ours to sweep
    with dataset_lock(dataset.dataset_id, root), staged(out, force, f"omnimedseg export {dataset_id} --format {fmt}") \
            as staging:
        if fmt in ("nnunet", "msd"):
            result = _export_label_maps(dataset, staging, fmt, overlap, link)
        elif fmt == "croissant":
            result = _export_croissant(dataset, staging, dataset_id, root, registry_dirs, link)
        else:
            result = _export_medsegdb(dataset_id, dataset, staging, root, registry_dirs, axis)
    result.folder = out
    return result


def _check_outside(out: Path, converted: Path, data_root: Path) -> None:
    """An export folder never holds or replaces data: ``--force`` replaces ``out`` whole, so an ``out`` that is the
    converted folder, inside it, or above it (the data root) had deleted the converted data, or everything."""
    target, source = Path(os.path.abspath(out)), Path(os.path.abspath(converted))
    data = Path(os.path.abspath(data_root))
    for kept in (source, *(data / sub for sub in ("converted", "raw", "downloads"))):
        if target == kept or kept in target.parents or target in kept.parents:
            raise UsageError(f"{out}: an export folder must lie outside {kept} and must not contain it (--force "
                             f"replaces the whole folder); choose another --out, e.g. the default under "
                             f"{data / 'exports'}")


def _check_nnunet_id(out: Path, nnunet_id: int, dataset_id: str) -> None:
    """nnU-Net finds a dataset by its id alone: a second ``Dataset<NNN>_*`` beside ``out`` makes every lookup fail."""
    others = [p.name for p in out.parent.glob(f"Dataset{nnunet_id:03d}_*") if p.is_dir() and p.name != out.name]
    if others:
        raise UsageError(f"{out.parent} already holds {others[0]} with nnU-Net id {nnunet_id}; nnU-Net needs one "
                         f"dataset per id: rerun with --nnunet-id <another id> (export {dataset_id})")


@contextlib.contextmanager
def staged(out: Path, force: bool, command: str) -> Iterator[Path]:
    """Write into ``.<name>.staging`` and rename it to ``out`` only if the body (incl. verify) succeeds."""
    if out.exists() and not force:
        raise UsageError(f"{out} already exists; expected a new folder; run: {command} --force to replace it")
    sweep_leftovers(out)  # staging folders of killed exports (the caller holds the dataset's lock)
    with staged_folder(out) as staging:
        yield staging


def _place(source: Path, target: Path, link: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(source, target)
            return
        except OSError:  # other file system: fall back to a copy
            pass
    shutil.copyfile(source, target)


# --- nnU-Net v2 and MSD -------------------------------------------------------------------------------------------


def label_map(masks: np.ndarray, overlap: str, where: str, class_names: Sequence[str]) -> tuple[np.ndarray, int]:
    """(uint8/uint16 label map with class i at value i + 1, overlapping voxel count) under ``overlap``."""
    count = masks.sum(axis=0, dtype=np.uint16) if len(masks) else np.zeros(masks.shape[1:], np.uint16)
    overlapping = int((count > 1).sum())
    if overlapping and overlap == "error":
        both = [c for i, c in enumerate(class_names) if (masks[i] & (count > 1)).any()]
        raise UsageError(f"{where}: classes {both} overlap in {overlapping} pixels/voxels; a label map holds one class "
                         f"per voxel; rerun with --overlap last (the class listed last wins)")
    labels = np.zeros(masks.shape[1:], np.uint8 if len(class_names) < 255 else np.uint16)  # + the ignore value
    for i, mask in enumerate(masks):
        labels[mask] = i + 1
    return labels, overlapping


def _channel_names(dataset, first_image: np.ndarray) -> dict[str, str]:
    named = dataset.info.get("channel_names", {})
    if len(named) > 1:  # the card's named channels (multi-sequence images), one file each
        return dict(named)
    channels_last = first_image.ndim == dataset.dimensionality + 1
    if not channels_last:
        return {"0": dataset.modality}
    n = first_image.shape[-1]
    if dataset.dimensionality == 2 and n in (3, 4):
        return {str(i): c for i, c in enumerate("RGBA"[:n])}
    return {str(i): f"{dataset.modality}_{i}" for i in range(n)}


def _write_label(labels: np.ndarray, target: Path, mask_file: Path) -> None:
    """Write a label map on the grid (and NIfTI header) of one of the case's masks."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.name.endswith(".png"):
        from PIL import Image

        Image.fromarray(labels).save(target)
        return
    import nibabel as nib

    ref = nib.load(mask_file)
    image = nib.Nifti1Image(labels, ref.affine, ref.header)
    image.set_data_dtype(labels.dtype)
    image.header.set_slope_inter(1, 0)
    nib.save(image, target)


def _export_label_maps(dataset, staging: Path, fmt: str, overlap: str, link: bool) -> ExportResult:
    ending = dataset.info["file_ending"]
    folder = dataset.folder
    names = list(dataset.class_names)
    # nnU-Net's ignore label (the highest value, excluded from its loss) carries the ignore masks.
    # It also covers what a case with unlabelled classes leaves unknown (see the module docstring).
    ignore_value = len(names) + 1 if fmt == "nnunet" and any(c.get("ignore") or c.get("unlabelled")
                                                            for c in dataset.cases) else None
    channels, training, test, overlaps = None, [], [], {}
    for index, case in enumerate(dataset.cases):
        cid = case["case_id"]
        sub = "Tr" if case["masks"] else "Ts"
        image_path = folder / case["image"]
        named = list(case.get("channels", {}).items()) if len(case.get("channels", {})) > 1 else []
        if channels is None or case["masks"]:
            image, masks, _ = dataset.load_case(index)
        if channels is None:
            channels = _channel_names(dataset, image)
        if named:  # one file per named channel: nnU-Net <case>_0000, _0001 ...; MSD a list of files
            written = [f"images{sub}/{cid}_{c:04d}{ending}" if fmt == "nnunet" else f"images{sub}/{cid}_{name}{ending}"
                       for c, (name, _) in enumerate(named)]
            for rel, (_, source) in zip(written, named):
                _place(folder / source, staging / rel, link)
        elif fmt == "nnunet":
            written = _nnunet_image(image_path, image, dataset, staging / f"images{sub}", cid, ending, link)
        else:
            written = [f"images{sub}/{cid}{ending}"]
            _place(image_path, staging / written[0], link)
        image_entry = written if fmt == "msd" and named else written[0]
        if not case["masks"]:
            test.append(image_entry)
            continue
        labels, n = label_map(masks, overlap, f"{dataset.dataset_id} case {cid}", names)
        if n:
            overlaps[cid] = n
        if ignore_value is not None and case.get("ignore"):
            labels[read_output(folder / case["ignore"])[0].astype(bool)] = ignore_value
        if ignore_value is not None and case.get("unlabelled"):
            labels[labels == 0] = ignore_value  # background is unknown where classes are not annotated
        label_rel = f"labels{sub}/{cid}{ending}"
        _write_label(labels, staging / label_rel, folder / next(iter(case["masks"].values())))
        training.append({"image": image_entry, "label": label_rel, "case_id": cid, "split": case["split"],
                         **({"unlabelled": case["unlabelled"]} if case.get("unlabelled") else {})})
    info = dataset.info
    export_note = {"dataset_id": dataset.dataset_id, "converter_version": info["omnimedseg"].get("converter_version"),
                   "source": str(folder), "overlap_policy": overlap, "overlapping_voxels": overlaps}
    if fmt == "nnunet":
        labels = {"background": 0, **{c: i for i, c in enumerate(names, 1)}}
        if ignore_value is not None:
            labels["ignore"] = ignore_value
        meta = {"channel_names": channels, "labels": labels, "numTraining": len(training), "file_ending": ending}
    else:
        is_val = lambda e: e["split"] in VALIDATION_SPLITS  # noqa: E731
        rel = lambda v: [f"./{x}" for x in v] if isinstance(v, list) else f"./{v}"  # noqa: E731
        meta = {"tensorImageSize": info.get("tensorImageSize"), "modality": channels,
                "labels": {"0": "background", **{str(i): c for i, c in enumerate(names, 1)}},
                "numTraining": len(training), "numTest": len(test),
                "training": [{k: (rel(v) if k in ("image", "label") else v) for k, v in e.items()}
                             for e in training if not is_val(e)],
                "validation": [{k: (rel(v) if k in ("image", "label") else v) for k, v in e.items()}
                               for e in training if is_val(e)],
                "test": [rel(t) for t in test]}
        if not meta["validation"]:
            del meta["validation"]
    descriptive = {k: info[k] for k in ("name", "description", "reference", "licence", "release") if k in info}
    document = {**descriptive, **meta, "omnimedseg_export": export_note}
    (staging / "dataset.json").write_text(json.dumps(document, indent=2) + "\n")
    verify_label_export(staging, fmt)
    return ExportResult(fmt, staging, sum(1 for p in staging.rglob("*") if p.is_file()),
                        {"training": len(training), "test": len(test), "overlapping_cases": len(overlaps)})


def _nnunet_image(source: Path, image: np.ndarray, dataset, folder: Path, cid: str, ending: str,
                  link: bool) -> list[str]:
    """nnU-Net wants one file per channel for NIfTI (RGB PNGs stay one file): ``<case>_<cccc><ending>``."""
    sub = folder.name
    if dataset.dimensionality == 3 and image.ndim == 4:
        import nibabel as nib

        ref = nib.load(source)
        written = []
        for c in range(image.shape[-1]):
            rel = f"{sub}/{cid}_{c:04d}{ending}"
            folder.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(np.asarray(image[..., c]), ref.affine), folder / Path(rel).name)
            written.append(rel)
        return written
    rel = f"{sub}/{cid}_0000{ending}"
    _place(source, folder / Path(rel).name, link)
    return [rel]


def _read_geometry(path: Path) -> tuple[tuple[int, ...], np.ndarray | None]:
    if path.name.endswith(".png"):
        from PIL import Image

        with Image.open(path) as im:
            return (im.height, im.width), None
    import nibabel as nib

    image = nib.load(path)
    return tuple(image.shape[:3]), image.affine


def verify_label_export(folder: Path, fmt: str) -> None:
    """Re-read an nnU-Net/MSD export: every training case has an image and a label on the same grid whose
    values are declared labels, and the counts match dataset.json. Raises ValidationError listing problems."""
    info = json.loads((folder / "dataset.json").read_text())
    problems = []
    if fmt == "nnunet":
        ending = info["file_ending"]
        names = list(info["channel_names"].values())
        colour = ending == ".png" and names == list("RGBA"[:len(names)])  # RGB(A) PNGs stay one file
        n_files = 1 if colour else len(names)
        pairs = []
        for label in sorted((folder / "labelsTr").glob(f"*{ending}")):
            cid = label.name[: -len(ending)]
            images = [folder / "imagesTr" / f"{cid}_{c:04d}{ending}" for c in range(n_files)]
            pairs.append((images, label))
        expected = info["numTraining"]
        allowed = set(info["labels"].values())
        orphans = {p.name[: -len(ending) - 5] for p in (folder / "imagesTr").glob(f"*{ending}")} - {
            p.name[: -len(ending)] for p in (folder / "labelsTr").glob(f"*{ending}")}
        if orphans:
            problems.append(f"imagesTr: cases without a label in labelsTr: {sorted(orphans)[:5]}")
    else:
        entries = info["training"] + info.get("validation", [])
        pairs = [([folder / i for i in (e["image"] if isinstance(e["image"], list) else [e["image"]])],
                  folder / e["label"]) for e in entries]
        expected = info["numTraining"]
        allowed = {int(k) for k in info["labels"]}
    if len(pairs) != expected:
        problems.append(f"dataset.json: numTraining is {expected} but {len(pairs)} labelled cases were written")
    for images, label in pairs:
        missing = [str(p) for p in (*images, label) if not p.is_file()]
        if missing:
            problems.append(f"missing file(s) {missing}")
            continue
        label_shape, label_affine = _read_geometry(label)
        for image in images:
            shape, affine = _read_geometry(image)
            if shape != label_shape or (affine is not None and not np.allclose(affine, label_affine, atol=1e-4)):
                problems.append(f"{label}: grid {label_shape} does not match image {image} {shape}")
        values = set(np.unique(read_output(label)[0]).tolist())
        if not values <= allowed:
            problems.append(f"{label}: label values {sorted(values - allowed)} are not declared in dataset.json")
    for test in (t for entry in info.get("test", []) for t in (entry if isinstance(entry, list) else [entry])):
        if not (folder / test).is_file():
            problems.append(f"missing test image {test}")
    if problems:
        raise ValidationError(f"{fmt} export in {folder} failed its check ({len(problems)} problem(s)): "
                              + "; ".join(problems[:5]) + "; this is a bug, please report it")


# --- Croissant -----------------------------------------------------------------------------------------------------


def croissant_metadata(dataset, card, files: dict[str, str]) -> dict:
    """Croissant 1.0 JSON-LD for a dataset folder; ``files`` maps the fixed files to their sha256."""
    ending = dataset.info["file_ending"]
    png = ending == ".png"
    fmt = "image/png" if png else "application/gzip"
    context = {
        "@language": "en", "@vocab": "https://schema.org/", "citeAs": "cr:citeAs", "column": "cr:column",
        "conformsTo": "dct:conformsTo", "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
        "data": {"@id": "cr:data", "@type": "@json"}, "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
        "dct": "http://purl.org/dc/terms/", "examples": {"@id": "cr:examples", "@type": "@json"},
        "extract": "cr:extract", "field": "cr:field", "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject",
        "fileSet": "cr:fileSet", "format": "cr:format", "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset",
        "jsonPath": "cr:jsonPath", "key": "cr:key", "md5": "cr:md5", "parentField": "cr:parentField", "path": "cr:path",
        "recordSet": "cr:recordSet", "references": "cr:references", "regex": "cr:regex", "repeated": "cr:repeated",
        "replace": "cr:replace", "samplingRate": "cr:samplingRate",
        "equivalentProperty": "cr:equivalentProperty", "sc": "https://schema.org/", "separator": "cr:separator", "source": "cr:source",
        "subField": "cr:subField", "transform": "cr:transform",
    }

    def file_object(name: str, encoding: str) -> dict:
        return {"@type": "cr:FileObject", "@id": name, "name": name, "contentUrl": name,
                "encodingFormat": encoding, "sha256": files[name]}

    def from_json(record: str, name: str, path: str, kind: str = "sc:Text") -> dict:
        return {"@type": "cr:Field", "@id": f"{record}/{name}", "name": name, "dataType": kind,
                "source": {"fileObject": {"@id": "dataset.json"}, "extract": {"jsonPath": path}}}

    def from_files(record: str, name: str, file_set: str, prop: str, kind: str, regex: str | None = None) -> dict:
        source = {"fileSet": {"@id": file_set}, "extract": {"fileProperty": prop}}
        if regex:
            source["transform"] = {"regex": regex}
        return {"@type": "cr:Field", "@id": f"{record}/{name}", "name": name, "dataType": kind, "source": source}

    content = ("content", "sc:ImageObject") if png else ("fullpath", "sc:Text")
    stamp = (dataset.folder / ".complete").stat().st_mtime
    published = datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).date().isoformat()
    ext = ending.replace(".", r"\.")
    return {
        "@context": context,
        "@type": "sc:Dataset",
        "conformsTo": CROISSANT_CONFORMS_TO,
        "name": dataset.dataset_id,
        "description": card.description.strip() or card.title,
        "url": card.homepage,
        "license": card.license.url,
        "citeAs": card.citation.bibtex.strip(),
        "version": card.converter_version,
        "datePublished": published,  # of this converted version: when its folder was completed
        "keywords": [card.modality, f"{dataset.dimensionality}D", "medical image segmentation", *card.tags],
        "distribution": [
            file_object("dataset.json", "application/json"),
            file_object("splits.json", "application/json"),
            file_object("provenance.json", "application/json"),
            {"@type": "cr:FileSet", "@id": "image-files", "name": "image-files", "encodingFormat": fmt,
             "includes": f"images/*{ending}"},
            {"@type": "cr:FileSet", "@id": "mask-files", "name": "mask-files", "encodingFormat": fmt,
             "includes": f"masks/*/*{ending}"},
        ],
        "recordSet": [
            {"@type": "cr:RecordSet", "@id": "cases", "name": "cases",
             "description": "One record per case: id, the dataset's own split, image path (see dataset.json).",
             "field": [from_json("cases", "case_id", "$.cases[*].case_id"),
                       from_json("cases", "split", "$.cases[*].split"),
                       from_json("cases", "image", "$.cases[*].image")]},
            {"@type": "cr:RecordSet", "@id": "images", "name": "images",
             "field": [from_files("images", "case_id", "image-files", "filename", "sc:Text", f"^(.*){ext}$"),
                       from_files("images", "image", "image-files", *content)]},
            {"@type": "cr:RecordSet", "@id": "masks", "name": "masks",
             "description": f"One binary mask per labelled case and class ({', '.join(dataset.class_names)}).",
             "field": [from_files("masks", "case_id", "mask-files", "fullpath", "sc:Text", r"^masks/([^/]+)/.*$"),
                       from_files("masks", "class_name", "mask-files", "filename", "sc:Text", f"^(.*){ext}$"),
                       from_files("masks", "mask", "mask-files", *content)]},
        ],
    }


def _export_croissant(dataset, staging: Path, dataset_id: str, root, registry_dirs, link: bool) -> ExportResult:
    from omnimedseg.converters._validate import validate_converted
    from omnimedseg.registry import load_registry

    report = validate_converted(dataset.folder)  # only the dataset's own files (raw sources are not re-hashed)
    if not report.ok:
        raise ValidationError(f"{dataset_id}: the converted data fails validation ({report.problems[0]}); "
                              f"run: omnimedseg validate {dataset_id}")
    card = load_registry(registry_dirs).get(dataset_id)
    provenance = json.loads((dataset.folder / "provenance.json").read_text())
    for path in sorted(p for p in dataset.folder.rglob("*") if p.is_file()):
        _place(path, staging / path.relative_to(dataset.folder), link)
    from omnimedseg.files import file_hashes

    fixed = {n: file_hashes(staging / n)["sha256"] for n in ("dataset.json", "splits.json", "provenance.json")}
    document = croissant_metadata(dataset, card, fixed)
    (staging / "croissant.json").write_text(json.dumps(document, indent=2) + "\n")
    verify_croissant_export(staging, provenance["files"])
    return ExportResult("croissant", staging, sum(1 for p in staging.rglob("*") if p.is_file()),
                        {"cases": len(dataset.cases)})


def verify_croissant_export(folder: Path, provenance_files: dict) -> None:
    """Every FileObject matches its sha256, every FileSet matches files, and every data file matches provenance."""
    import fnmatch

    from omnimedseg.files import file_hashes

    document = json.loads((folder / "croissant.json").read_text())
    problems = []
    present = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    for item in document["distribution"]:
        if item["@type"] == "cr:FileObject":
            path = folder / item["contentUrl"]
            if not path.is_file() or file_hashes(path)["sha256"] != item["sha256"]:
                problems.append(f"{item['contentUrl']}: missing or sha256 differs")
        elif not fnmatch.filter(present, item["includes"]):
            problems.append(f"file set {item['@id']}: no file matches {item['includes']}")
    for rel, record in provenance_files.items():
        path = folder / rel
        if not path.is_file() or file_hashes(path)["sha256"] != record["sha256"]:
            problems.append(f"{rel}: missing or differs from provenance.json")
    if problems:
        raise ValidationError(f"croissant export in {folder} failed its check ({len(problems)} problem(s)): "
                              + "; ".join(problems[:5]) + "; this is a bug, please report it")


# --- MedSegDB ------------------------------------------------------------------------------------------------------


def _export_medsegdb(dataset_id: str, dataset, staging: Path, root, registry_dirs, axis: int) -> ExportResult:
    from omnimedseg.data.datasets import ConvertedDataset, SliceDataset
    from omnimedseg.data.medsegdb import export_medsegdb, scan_medsegdb

    kwargs = dict(root=root, registry_dirs=registry_dirs)
    source = SliceDataset(dataset_id, axis=axis, **kwargs) if dataset.dimensionality == 3 else \
        ConvertedDataset(dataset_id, **kwargs)
    written = export_medsegdb(source, staging)
    found = len(scan_medsegdb(staging)) if written else 0
    if found != written:
        raise ValidationError(f"medsegdb export in {staging}: wrote {written} image/label pairs but found {found}; "
                              f"this is a bug, please report it")
    if not written:
        raise UsageError(f"{dataset_id}: no labelled image has any class present; nothing to export to MedSegDB")
    return ExportResult("medsegdb", staging, 2 * written, {"pairs": written})
