"""RTSTRUCT -> one binary mask per ROI on the referenced series geometry.

Rasterization convention (the part tools disagree on, so it is fixed and tested here):
a pixel belongs to an ROI on a slice when its **centre** lies inside the ROI's contours on
that slice by the **even-odd rule** over all of them, so a contour nested in another is a
hole (and CLOSEDPLANAR_XOR needs nothing special). A centre exactly on an edge counts as
inside on left/top edges and outside on right/bottom edges (the top-left rule), so two
contours sharing an edge never both claim a pixel. Contours are placed on slices by their
position along the slice normal (checked against ContourImageSequence when it points into
the series), not by trusting the reference alone.

Why our own scanline fill: rt-utils (OpenCV ``fillPoly``) and Pillow's ``ImageDraw`` round
vertices to whole pixels and paint every pixel the outline touches, which grows each ROI by
about half a pixel all round; skimage is not a dependency. The fill below is vectorized numpy.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from omnimedseg.converters.formats.dicom import (
    POSITION_TOL_MM,
    POSITION_TOL_REL,
    DicomSeries,
    dataset_kind,
    read_dataset,
    scan,
    series_geometry,
)
from omnimedseg.converters.formats.imagedata import ImageData
from omnimedseg.errors import ConversionError

# CLOSEDPLANAR_XOR is the standard spelling (CS is at most 16 characters); the long one is tolerated.
AREA_TYPES = ("CLOSED_PLANAR", "CLOSEDPLANAR_XOR", "CLOSED_PLANAR_XOR")


def rasterize_polygons(polygons: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Fill polygons given as (N, 2) arrays of (x=column, y=row) pixel coordinates.

    Returns a (rows, cols) bool mask: pixel (r, c) is True when the point (c, r), its centre,
    is inside by the even-odd rule over all polygons (top-left rule on edges).
    """
    rows, cols = shape
    acc = np.zeros(rows * (cols + 1), dtype=np.int32)
    for poly in polygons:
        poly = np.asarray(poly, dtype=np.float64)
        if len(poly) < 3:
            continue
        x0, y0 = poly[:, 0], poly[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        # Each edge crosses the rows r with min(y0, y1) <= r < max(y0, y1) (half-open: a vertex on a
        # row is counted once when the outline passes through it, 0 or 2 times at a tip).
        start = np.clip(np.ceil(np.minimum(y0, y1)), 0, rows).astype(np.int64)
        stop = np.clip(np.ceil(np.maximum(y0, y1)), 0, rows).astype(np.int64)
        counts = np.maximum(stop - start, 0)
        total = int(counts.sum())
        if total == 0:
            continue
        edge = np.repeat(np.arange(len(poly)), counts)
        r = start[edge] + np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        x = x0[edge] + (r - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
        # A crossing at x flips inside/outside for every pixel centre c >= x.
        c = np.clip(np.ceil(x), 0, cols).astype(np.int64)
        acc += np.bincount(r * (cols + 1) + c, minlength=acc.size).astype(np.int32)
    parity = np.cumsum(acc.reshape(rows, cols + 1), axis=1)[:, :cols]
    return (parity & 1).astype(bool)


def _safe_name(name: str, fallback: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("_.")
    return stem or fallback


def unique_file_stems(names: list[str], fallbacks: list[str]) -> list[str]:
    """File-safe, case-insensitively unique stems for mask files named after ROIs/segments."""
    used, out = set(), []
    for name, fb in zip(names, fallbacks):
        stem, base, i = _safe_name(name, fb), _safe_name(name, fb), 1
        while stem.lower() in used:
            i += 1
            stem = f"{base}_{i}"
        used.add(stem.lower())
        out.append(stem)
    return out


def referenced_series(path: Path, series: list[DicomSeries], series_dir, uids: set[str],
                      series_uid: str | None, kind: str) -> DicomSeries:
    """The series a SEG/RTSTRUCT points to, among those found in ``series_dir``."""
    found = "; ".join(s.label() for s in series) or "no image series"
    wanted = {series_uid} if series_uid else uids
    matches = [s for s in series if s.uid in wanted]
    if len(matches) == 1:
        return matches[0]
    if not wanted and len(series) == 1:
        return series[0]
    if not wanted:
        raise ConversionError(f"{path}: {kind} names no referenced series and {series_dir} holds {len(series)} "
                              f"series ({found}); pass --series UID")
    raise ConversionError(f"{path}: {kind} references series {', '.join(sorted(wanted))}; {series_dir} holds "
                          f"{found}; expected the referenced series (copy it next to the {kind} or point to its folder)")


def _referenced_series_uids(ds) -> set[str]:
    uids = set()
    for fr in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in fr.get("RTReferencedStudySequence", []):
            for ser in study.get("RTReferencedSeriesSequence", []):
                if ser.get("SeriesInstanceUID"):
                    uids.add(str(ser.SeriesInstanceUID))
    return uids


def read_rtstruct(rtstruct_path: str | os.PathLike, series_dir: str | os.PathLike | DicomSeries, series_uid: str | None = None,
                  slice_tolerance_mm: float | None = None, *, dataset=None) -> dict[str, ImageData]:
    """Rasterize every ROI of an RTSTRUCT on its referenced series; ROI name -> bool mask.

    Masks share the series' (i, j, k) layout and affine (see ``dicom.read_series``); ROIs
    without contours give empty masks (``meta['empty']``). A contour must lie on a slice plane
    within ``slice_tolerance_mm`` (default max(0.05 mm, 2 % of the slice spacing)); anything
    else is an error, never a silent move to the nearest slice. Duplicate ROI names get
    `` (ROI <number>)`` appended to the key.
    """
    return dict(iter_rtstruct(rtstruct_path, series_dir, series_uid, slice_tolerance_mm, dataset=dataset))


def iter_rtstruct(rtstruct_path: str | os.PathLike, series_dir: str | os.PathLike | DicomSeries, series_uid: str | None = None,
                  slice_tolerance_mm: float | None = None, *, dataset=None) -> Iterator[tuple[str, ImageData]]:
    """Like :func:`read_rtstruct`, one ROI at a time (memory for one mask, not all of them).

    ``dataset``: the RTSTRUCT already parsed from ``rtstruct_path``, not read again.

    Every contour is checked before the first mask is yielded, so an error never comes
    after some masks were already written.
    """
    path = Path(rtstruct_path)
    ds = dataset if dataset is not None else read_dataset(path, defer=False)
    if dataset_kind(ds) != "rtstruct":
        raise ConversionError(f"{path}: is {ds.get('Modality', '?')} ({ds.get('SOPClassUID', '?')}); "
                              f"expected an RT Structure Set (Modality RTSTRUCT)")
    roi_seq = list(ds.get("StructureSetROISequence", []))
    contours_by_roi = {int(item.ReferencedROINumber): item for item in ds.get("ROIContourSequence", [])
                       if "ReferencedROINumber" in item}
    n_contours = sum(len(item.get("ContourSequence", [])) for item in contours_by_roi.values())
    if not roi_seq or n_contours == 0:
        raise ConversionError(f"{path}: RTSTRUCT has {len(roi_seq)} ROIs and {n_contours} contours; expected at "
                              f"least one contour; nothing to rasterize")
    # a DicomSeries (e.g. chosen by dicom_refs.match_referenced_series) is used as is
    target = series_dir if isinstance(series_dir, DicomSeries) else \
        referenced_series(path, scan(series_dir).series, series_dir, _referenced_series_uids(ds), series_uid,
                          "RTSTRUCT")
    geom = series_geometry(target, "error")
    tol = slice_tolerance_mm if slice_tolerance_mm is not None else \
        max(POSITION_TOL_MM, POSITION_TOL_REL * geom.slice_spacing)
    sop_to_k = {sop: k for (sop, frame), k in geom.sop_index().items()}
    interpreted = {int(o.ReferencedROINumber): str(o.get("RTROIInterpretedType", "") or "")
                   for o in ds.get("RTROIObservationsSequence", []) if "ReferencedROINumber" in o}
    rows, cols = target.slices[0].rows, target.slices[0].cols
    names = [str(r.get("ROIName", "") or "") for r in roi_seq]
    stems = unique_file_stems(names, [f"roi_{r.ROINumber}" for r in roi_seq])
    plans = []
    for roi, name, stem in zip(roi_seq, names, stems):
        number = int(roi.ROINumber)
        fr = str(roi.get("ReferencedFrameOfReferenceUID", "") or "")
        if fr and target.frame_of_reference and fr != target.frame_of_reference:
            raise ConversionError(f"{path}: ROI {number} {name!r} is in frame of reference {fr}; series "
                                  f"{target.uid} is in {target.frame_of_reference}; expected the same")
        item = contours_by_roi.get(number)
        per_slice: dict[int, list[np.ndarray]] = {}
        skipped: dict[str, int] = {}
        for c_i, contour in enumerate(item.get("ContourSequence", []) if item is not None else []):
            ctype = str(contour.get("ContourGeometricType", "CLOSED_PLANAR")).upper()
            if ctype not in AREA_TYPES:
                skipped[ctype] = skipped.get(ctype, 0) + 1
                continue
            data = np.asarray(contour.get("ContourData", []), dtype=np.float64)
            if data.size < 9 or data.size % 3:
                raise ConversionError(f"{path}: ROI {number} {name!r} contour {c_i + 1} has {data.size} coordinates; "
                                      f"expected x,y,z triplets of at least 3 points")
            pts = data.reshape(-1, 3)
            level = float(np.mean(pts @ geom.normal))
            k = int(np.argmin(np.abs(geom.positions - level)))
            dist = abs(geom.positions[k] - level)
            spread = float(np.ptp(pts @ geom.normal))
            if spread > tol:
                raise ConversionError(f"{path}: ROI {number} {name!r} contour {c_i + 1} spans {spread:.3f} mm along the "
                                      f"slice normal; expected a planar contour parallel to the image slices")
            if dist > tol:
                raise ConversionError(f"{path}: ROI {number} {name!r} contour {c_i + 1} lies {dist:.3f} mm from the "
                                      f"nearest slice of series {target.uid} (tolerance {tol:.3f} mm); expected "
                                      f"contours on the slices of the referenced series")
            for ref in contour.get("ContourImageSequence", []):
                k_ref = sop_to_k.get(str(ref.get("ReferencedSOPInstanceUID", "")))
                if k_ref is not None and k_ref != k:
                    raise ConversionError(f"{path}: ROI {number} {name!r} contour {c_i + 1} references slice "
                                          f"{k_ref} by SOP UID but lies on slice {k}; expected the two to agree")
            pix = geom.lps_to_pixel(pts, k)
            per_slice.setdefault(k, []).append(pix[:, :2])
        color = item.get("ROIDisplayColor") if item is not None else None
        meta = {"name": name, "number": number, "file_stem": stem, "source": str(path),
                "series_uid": target.uid, "color": [int(v) for v in color] if color else None,
                "interpreted_type": interpreted.get(number, ""), "contour_slices": sorted(per_slice),
                "n_contours": sum(len(v) for v in per_slice.values()), "skipped_contours": skipped,
                "empty": not per_slice}
        plans.append((name, per_slice, meta))
    keys: set[str] = set()
    for name, per_slice, meta in plans:
        key = name if name not in keys else f"{name} (ROI {meta['number']})"
        keys.add(key)
        planes = np.zeros((len(geom.slices), rows, cols), dtype=bool)
        for k, polys in per_slice.items():
            planes[k] = rasterize_polygons(polys, (rows, cols))
        yield key, ImageData(np.asfortranarray(geom.rowcol_to_volume(planes)), geom.affine.copy(), meta=meta)


def masks_to_nifti(masks: Iterable[tuple[str, ImageData]], out_dir: str | os.PathLike, summary: dict,
                   compression_level: int | None = None, dtype=np.uint8) -> dict:
    """Write each (key, mask) as ``<out_dir>/<file_stem>.nii.gz`` plus ``summary.json``; return the summary.

    Bool masks are stored as uint8 0/1, float masks (fractional SEG) as float32.
    """
    from omnimedseg.converters.formats.nifti import DEFAULT_COMPRESSION_LEVEL, write_nifti

    level = DEFAULT_COMPRESSION_LEVEL if compression_level is None else compression_level
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    first = None
    for key, image in masks:
        first = first or image
        target = out_dir / f"{image.meta['file_stem']}.nii.gz"
        array = image.array if image.array.dtype.kind == "f" else image.array.astype(dtype)
        write_nifti(ImageData(array, image.affine, meta=image.meta), target, level)
        entry = {k: v for k, v in image.meta.items() if k not in ("file_stem", "source", "series_uid")}
        entry.update({"key": key, "file": target.name, "voxels": int(np.count_nonzero(image.array))})
        entries.append(entry)
    summary = dict(summary)
    if first is not None:
        summary.update({"shape": list(first.array.shape), "affine": np.round(first.affine, 6).tolist()})
    summary["masks"] = entries
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def rtstruct_to_masks(rtstruct_path: str | os.PathLike, series_dir: str | os.PathLike, out_dir: str | os.PathLike,
                      series_uid: str | None = None, compression_level: int | None = None) -> dict:
    """RTSTRUCT -> ``<out_dir>/<ROI name>.nii.gz`` (uint8 0/1) for every ROI + ``summary.json``."""
    masks = iter_rtstruct(rtstruct_path, series_dir, series_uid)
    key, first = next(masks)
    summary = {"source": str(rtstruct_path), "kind": "RTSTRUCT", "series_uid": first.meta["series_uid"],
               "series_dir": str(series_dir)}
    return masks_to_nifti(itertools.chain([(key, first)], masks), out_dir, summary, compression_level)


__all__ = ["iter_rtstruct", "masks_to_nifti", "rasterize_polygons", "read_rtstruct", "rtstruct_to_masks"]
