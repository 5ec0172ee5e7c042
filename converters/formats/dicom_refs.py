"""Which image a DICOM-SEG or RTSTRUCT belongs to, decided by what it references, never by folder.

A segmentation names the image instances it was drawn on (SEG: ``SourceImageSequence`` per
frame and ``ReferencedSeriesSequence``; RTSTRUCT: ``ContourImageSequence``) and its Frame of
Reference. The image is the candidate series holding those SOP instances in that frame of
reference. Multi-phase series (TCIA HCC-TACE-Seg "LIVER 3 PHASE": 1-3 contrast acquisitions
at identical slice positions in one SeriesInstanceUID) are first cut into one 3D series per
``AcquisitionNumber``, so the match picks the acquisition, not the mixed series.

Also here: the header-only look at a bucket-style folder tree (``<series folder>/<file>.dcm``,
as IDC serves it) that converters use to list cases without reading pixel data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import pydicom

from omnimedseg.converters.formats.dicom import DicomSeries, dataset_kind, read_dataset, read_series, scan
from omnimedseg.converters.formats.imagedata import ImageData
from omnimedseg.errors import ConversionError
from omnimedseg.files import file_stamp

# --------------------------------------------------------------------------- acquisitions


def split_acquisitions(series: DicomSeries) -> list[DicomSeries]:
    """One series per ``AcquisitionNumber`` (ascending); the series itself when it has one.

    Slices without the tag in a series where others have it are an error: they cannot be put
    in a phase, and guessing would mix phases.
    """
    numbers: dict[int | None, list] = {}
    for ref in series.slices:
        value = series.datasets[ref.path].get("AcquisitionNumber")
        numbers.setdefault(int(value) if value not in (None, "") else None, []).append(ref)
    if len(numbers) == 1:
        return [series]
    if None in numbers:
        raise ConversionError(f"{numbers[None][0].path}: no AcquisitionNumber while other slices of series "
                              f"{series.uid} have {sorted(k for k in numbers if k is not None)}; expected one "
                              f"acquisition number on every slice of a multi-phase series")
    parts = []
    for number in sorted(numbers):
        slices = numbers[number]
        part = replace(series, slices=slices, description=f"{series.description} [acquisition {number}]",
                       datasets={s.path: series.datasets[s.path] for s in slices})
        parts.append(part)
    return parts


def acquisition_number(series: DicomSeries) -> int | None:
    value = series.datasets[series.slices[0].path].get("AcquisitionNumber")
    return int(value) if value not in (None, "") else None


# --------------------------------------------------------------------------- references


def referenced_sops(ds) -> set[str]:
    """SOP Instance UIDs a SEG or RTSTRUCT says it was drawn on."""
    out = set()
    for per in ds.get("PerFrameFunctionalGroupsSequence", []) or []:
        for deriv in per.get("DerivationImageSequence", []) or []:
            for src in deriv.get("SourceImageSequence", []) or []:
                out.add(str(src.get("ReferencedSOPInstanceUID", "")))
    for ser in ds.get("ReferencedSeriesSequence", []) or []:
        for inst in ser.get("ReferencedInstanceSequence", []) or []:
            out.add(str(inst.get("ReferencedSOPInstanceUID", "")))
    for fr in ds.get("ReferencedFrameOfReferenceSequence", []) or []:
        for study in fr.get("RTReferencedStudySequence", []) or []:
            for ser in study.get("RTReferencedSeriesSequence", []) or []:
                for img in ser.get("ContourImageSequence", []) or []:
                    out.add(str(img.get("ReferencedSOPInstanceUID", "")))
    for roi in ds.get("ROIContourSequence", []) or []:
        for contour in roi.get("ContourSequence", []) or []:
            for img in contour.get("ContourImageSequence", []) or []:
                out.add(str(img.get("ReferencedSOPInstanceUID", "")))
    out.discard("")
    return out


def referenced_series_uids(ds) -> set[str]:
    """Series Instance UIDs a SEG (``ReferencedSeriesSequence``) or RTSTRUCT references."""
    uids = {str(s.SeriesInstanceUID) for s in ds.get("ReferencedSeriesSequence", []) or []
            if s.get("SeriesInstanceUID")}
    for fr in ds.get("ReferencedFrameOfReferenceSequence", []) or []:
        for study in fr.get("RTReferencedStudySequence", []) or []:
            for ser in study.get("RTReferencedSeriesSequence", []) or []:
                if ser.get("SeriesInstanceUID"):
                    uids.add(str(ser.SeriesInstanceUID))
    return uids


def frames_of_reference(ds) -> set[str]:
    """Frame of Reference UIDs of a SEG (its own) or RTSTRUCT (referenced and per ROI)."""
    uids = {str(ds.get("FrameOfReferenceUID", "") or "")}
    uids |= {str(fr.get("FrameOfReferenceUID", "") or "") for fr in ds.get("ReferencedFrameOfReferenceSequence", []) or []}
    uids |= {str(r.get("ReferencedFrameOfReferenceUID", "") or "") for r in ds.get("StructureSetROISequence", []) or []}
    uids.discard("")
    return uids


def match_referenced_series(path: Path, ds, candidates: Iterable[DicomSeries]) -> DicomSeries:
    """The candidate (acquisition) holding most of the instances ``ds`` references, in its frame of reference.

    Candidates in another Frame of Reference are never chosen. A tie between acquisitions is an
    error (the reference cannot tell them apart), as is a reference to no candidate at all.
    """
    kind = str(ds.get("Modality", "") or "object")
    refs = referenced_sops(ds)
    fors = frames_of_reference(ds)
    parts = [part for series in candidates for part in split_acquisitions(series)]
    if not parts:
        raise ConversionError(f"{path}: no image series to match the {kind} to; expected the CT/MR series it "
                              f"references next to it")
    scored = []
    for part in parts:
        if fors and part.frame_of_reference and part.frame_of_reference not in fors:
            continue
        hits = len(refs & {s.sop_uid for s in part.slices})
        scored.append((hits, part))
    scored.sort(key=lambda item: -item[0])
    found = "; ".join(p.label() for p in parts)
    if not refs:
        uids = referenced_series_uids(ds)
        same = [p for _, p in scored if p.uid in uids or not uids]
        if len(same) == 1:
            return same[0]
        raise ConversionError(f"{path}: {kind} references no SOP instances and {len(same)} candidate series "
                              f"({found}); expected image references to tell them apart")
    if not scored or scored[0][0] == 0:
        raise ConversionError(f"{path}: {kind} references {len(refs)} SOP instances (frame of reference "
                              f"{', '.join(sorted(fors)) or 'none'}) that are in none of {found}; expected the "
                              f"referenced image series")
    if len(scored) > 1 and scored[1][0] == scored[0][0]:
        raise ConversionError(f"{path}: {kind} references {scored[0][0]} instances of both {scored[0][1].label()} and "
                              f"{scored[1][1].label()}; expected one image series (acquisition) to hold most of them")
    return scored[0][1]


# A case reads its image and every class mask from the same SEG/RTSTRUCT and image files (one
# Source per class). These per-process caches, keyed on each file's path + size + mtime (a
# rewritten file is read again), make a case parse each file once instead of once per class.


def _stamps(paths: Iterable) -> tuple[tuple[str, int, int], ...]:
    try:
        return tuple(file_stamp(p) for p in paths)
    except FileNotFoundError as exc:
        raise ConversionError(f"{exc.filename}: file not found; expected the DICOM files of this case; "
                              f"re-download them") from None


@lru_cache(maxsize=4)
def _referenced(ref: tuple[str, int, int], images: tuple[tuple[str, int, int], ...]) -> tuple[object, DicomSeries]:
    path = Path(ref[0])
    ds = read_dataset(path, defer=False)
    series = scan([Path(p) for p, _, _ in images]).series
    return ds, match_referenced_series(path, ds, series)


def _image_series(path: Path, image_paths: Iterable) -> tuple[object, DicomSeries]:
    """The parsed SEG/RTSTRUCT and the image series (acquisition) it references (cached per process)."""
    return _referenced(*_stamps([path]), _stamps(image_paths))


@lru_cache(maxsize=2)
def _decoded(kind: str, ref: tuple[str, int, int], images: tuple[tuple[str, int, int], ...]) -> dict[str, ImageData]:
    """Every segment (SEG) or ROI (RTSTRUCT) on the referenced series, read-only (shared between classes)."""
    from omnimedseg.converters.formats.dicom_seg import read_seg
    from omnimedseg.converters.formats.rtstruct import read_rtstruct

    ds, target = _referenced(ref, images)
    masks = (read_seg if kind == "seg" else read_rtstruct)(Path(ref[0]), target, dataset=ds)
    for mask in masks.values():
        mask.array.setflags(write=False)
    return masks


def read_referenced_image(ref_path: str | os.PathLike, *image_paths: str | os.PathLike) -> ImageData:
    """The image (one acquisition) that the SEG/RTSTRUCT ``ref_path`` references, among ``image_paths``."""
    _, target = _image_series(Path(ref_path), image_paths)
    image = read_series(target)
    image.meta["acquisition_number"] = acquisition_number(target)
    return image


def _pick(path: Path, masks: dict[str, ImageData], names: tuple[str, ...], what: str,
          fallback_field: str | None = None, known: tuple[str, ...] | None = None) -> ImageData:
    """Union of the masks whose name is one of ``names`` (case-insensitive); an error when none is.

    With ``fallback_field`` (SEG: ``"type"``, the SegmentedPropertyType CodeMeaning) a mask also
    matches on that field: a coded type is the SEG's own semantics, a free-text label may differ
    between annotators, and a class that is the union of several segments must not lose one whose
    label differs. ``known``: every name the caller's table knows; a mask matching none is an error
    (a segment the table does not name would otherwise vanish from every class).
    """
    def keys(key: str, mask: ImageData) -> set[str]:
        found = {str(mask.meta.get("name", key)).casefold()}
        return found | {str(mask.meta.get(fallback_field, "")).casefold()} if fallback_field else found

    if known is not None:
        table = {n.casefold() for n in known}
        unknown = sorted(key for key, m in masks.items() if not keys(key, m) & table)
        if unknown:
            raise ConversionError(f"{path}: {what}s {unknown} are not in the card's name table ({', '.join(known)}); "
                                  f"expected only those (add the new {what} to the table, naming its class)")
    wanted = {n.casefold() for n in names}
    chosen = [m for key, m in masks.items() if keys(key, m) & wanted]
    if not chosen:
        coded = f" (coded types {sorted({str(m.meta.get(fallback_field, '')) for m in masks.values()})})" \
            if fallback_field else ""
        raise ConversionError(f"{path}: no {what} named {' / '.join(names)}; found {sorted(masks)}{coded}; expected "
                              f"one of them (update the card's name table if the release renamed it)")
    out = chosen[0]
    for extra in chosen[1:]:
        out = ImageData(out.array | extra.array, out.affine, meta=out.meta)
    return out


def read_seg_mask(seg_path: str | os.PathLike, *image_paths: str | os.PathLike,
                  segments: tuple[str, ...], known: tuple[str, ...] | None = None) -> ImageData:
    """The bool mask of the SEG segment(s) labelled one of ``segments`` or of that coded property
    type, on the referenced acquisition; ``known`` (see :func:`_pick`) refuses segments no class names."""
    path = Path(seg_path)
    return _pick(path, _decoded("seg", *_stamps([path]), _stamps(image_paths)), segments, "segment",
                 fallback_field="type", known=known)


def read_rtstruct_mask(rtstruct_path: str | os.PathLike, *image_paths: str | os.PathLike,
                       rois: tuple[str, ...]) -> ImageData:
    """The bool mask of the ROI(s) named one of ``rois``, rasterised on the referenced series."""
    path = Path(rtstruct_path)
    return _pick(path, _decoded("rtstruct", *_stamps([path]), _stamps(image_paths)), rois, "ROI")


# --------------------------------------------------------------------------- bucket layout


@dataclass(frozen=True)
class SeriesFolder:
    """One folder of a bucket-style tree, described by the header of its first DICOM file."""

    path: Path
    files: tuple[Path, ...]
    patient_id: str
    modality: str
    series_uid: str
    description: str
    kind: str  # dataset_kind: "image", "seg", "rtstruct", "other"

    def referenced_series(self) -> set[str]:
        """Series UIDs a SEG/RTSTRUCT folder's first object references (header only)."""
        try:
            header = pydicom.dcmread(self.files[0], stop_before_pixels=True)
        except Exception as exc:  # pydicom raises many types for damaged files
            raise ConversionError(f"{self.files[0]}: not readable as DICOM ({' '.join(str(exc).split())}); "
                                  f"re-download it") from None
        return referenced_series_uids(header)


def series_folders(root: str | os.PathLike) -> list[SeriesFolder]:
    """Every ``<folder>/*.dcm`` under ``root`` (one series per folder, as IDC serves it), header only."""
    out = []
    root = Path(root)
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        files = tuple(sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".dcm"
                             and not p.name.startswith(".")))
        if not files:
            continue
        try:
            ds = pydicom.dcmread(files[0], stop_before_pixels=True,
                                 specific_tags=["SOPClassUID", "Modality", "PatientID", "SeriesInstanceUID",
                                                "SeriesDescription"])
        except Exception as exc:
            raise ConversionError(f"{files[0]}: not readable as DICOM ({' '.join(str(exc).split())}); "
                                  f"re-download it") from None
        out.append(SeriesFolder(folder, files, str(ds.get("PatientID", "") or ""), str(ds.get("Modality", "") or ""),
                                str(ds.get("SeriesInstanceUID", "") or ""), str(ds.get("SeriesDescription", "") or ""),
                                dataset_kind(ds)))
    return out


def referenced_image_files(ref: SeriesFolder, folders: list[SeriesFolder]) -> tuple[Path, ...]:
    """Files of the image series ``ref`` names (by Series Instance UID), else of all its patient's images.

    The SOP-level match happens when the case is read (:func:`match_referenced_series`); this
    only narrows what is read and recorded in provenance.
    """
    images = [f for f in folders if f.kind == "image" and f.patient_id == ref.patient_id]
    uids = ref.referenced_series()
    named = [f for f in images if f.series_uid in uids]
    return tuple(p for f in (named or images) for p in f.files)


__all__ = ["SeriesFolder", "acquisition_number", "frames_of_reference", "match_referenced_series",
           "read_referenced_image", "read_rtstruct_mask", "read_seg_mask", "referenced_image_files",
           "referenced_series_uids", "referenced_sops", "series_folders", "split_acquisitions"]
