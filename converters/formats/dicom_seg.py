"""DICOM-SEG -> one mask per segment on the referenced series geometry.

Each frame is put on its source slice by what it says about itself, never by its index:
the SOP Instance (and frame) it was derived from, and its ImagePositionPatient; when both
are present they must agree. So frames may be stored in any order, segments may be absent
from any slice (highdicom omits empty frames), segments may overlap (each has its own
mask), and BINARY, FRACTIONAL (probability/occupancy) and LABELMAP objects are all read.

Why not highdicom for reading: it is the reference the tests compare against, but it
returns (frames, rows, cols, segments) stacks in source-instance order and needs every
source instance listed; here the output must be on our volume layout and a frame that
lands off the series must be a one-line error naming the file. pydicom does the decoding
(bit-packed BINARY frames included).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Iterator

import numpy as np
from pydicom.multival import MultiValue

from omnimedseg.converters.formats.dicom import (
    ORIENTATION_TOL,
    POSITION_TOL_MM,
    POSITION_TOL_REL,
    DicomSeries,
    _functional,
    _item,
    _one_line,
    dataset_kind,
    read_dataset,
    scan,
    series_geometry,
)
from omnimedseg.converters.formats.imagedata import ImageData
from omnimedseg.converters.formats.rtstruct import masks_to_nifti, referenced_series, unique_file_stems
from omnimedseg.errors import ConversionError, UsageError

FRACTIONAL_MODES = ("threshold", "probability")


def _code_meaning(item, keyword: str) -> str:
    seq = item.get(keyword)
    return str(seq[0].get("CodeMeaning", "")) if seq else ""


def _frame_slices(path: Path, ds, geom, n_frames: int) -> list[int]:
    """Slice index k for every frame, from its source reference and/or plane position."""
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) != n_frames:
        raise ConversionError(f"{path}: {n_frames} frames but {len(per_frame)} per-frame functional groups; "
                              f"expected one per frame (damaged SEG)")
    sop_to_k = geom.sop_index()
    tol = max(POSITION_TOL_MM, POSITION_TOL_REL * geom.slice_spacing)
    first = geom.slices[0]
    out = []
    for f, per in enumerate(per_frame):
        ori = _functional(per, shared, "PlaneOrientationSequence")
        if ori is not None and "ImageOrientationPatient" in ori:
            iop = np.asarray([float(v) for v in ori.ImageOrientationPatient])
            if np.max(np.abs(iop - first.orientation)) > ORIENTATION_TOL:
                raise ConversionError(f"{path}: frame {f + 1} orientation {iop.round(4).tolist()} differs from series "
                                      f"{first.orientation.round(4).tolist()}; expected frames on the source slices")
        k_ref = None
        for deriv in per.get("DerivationImageSequence", []):
            for src in deriv.get("SourceImageSequence", []):
                sop = str(src.get("ReferencedSOPInstanceUID", ""))
                frames = src.get("ReferencedFrameNumber")
                if frames in (None, ""):
                    numbers = [None]
                elif isinstance(frames, (MultiValue, list, tuple)):
                    numbers = [int(v) for v in frames]
                else:
                    numbers = [int(frames)]
                for fn in numbers:
                    # a single-frame source is keyed (sop, None); "frame 1" of it is the same image
                    k = sop_to_k.get((sop, fn))
                    if k is None and fn in (None, 1):
                        k = sop_to_k.get((sop, None))
                    if k is not None and k_ref is None:
                        k_ref = k
        k_pos = None
        pos = _functional(per, shared, "PlanePositionSequence")
        if pos is not None and "ImagePositionPatient" in pos:
            ipp = np.asarray([float(v) for v in pos.ImagePositionPatient])
            k_pos = geom.index_of_position(ipp, tol)
            if k_pos is None:
                raise ConversionError(f"{path}: frame {f + 1} at {ipp.round(3).tolist()} mm is on no slice of series "
                                      f"{_series_name(geom)}; expected the SEG's source series")
            d = ipp - geom.slices[k_pos].position
            off = (abs(d @ geom.row_dir), abs(d @ geom.col_dir))
            if max(off) > tol:
                raise ConversionError(f"{path}: frame {f + 1} is shifted {max(off):.3f} mm in plane from its slice; "
                                      f"expected SEG frames on the source pixel grid (cropped SEGs are not supported)")
        if k_ref is not None and k_pos is not None and k_ref != k_pos:
            raise ConversionError(f"{path}: frame {f + 1} references slice {k_ref} but its position is slice {k_pos}; "
                                  f"expected the reference and the position to agree")
        k = k_ref if k_ref is not None else k_pos
        if k is None:
            raise ConversionError(f"{path}: frame {f + 1} has no source reference or position in series "
                                  f"{_series_name(geom)}; expected SourceImageSequence or PlanePositionSequence")
        out.append(k)
    return out


def _series_name(geom) -> str:
    return str(geom.slices[0].path.parent)


def iter_seg(seg_path: str | os.PathLike, series_dir: str | os.PathLike | DicomSeries, series_uid: str | None = None,
             fractional: str = "threshold", threshold: float = 0.5, *,
             dataset=None) -> Iterator[tuple[str, ImageData]]:
    """Like :func:`read_seg`, one segment at a time; every frame is placed before the first yield.

    ``dataset``: the SEG already parsed from ``seg_path`` (pixel data included), not read again."""
    if fractional not in FRACTIONAL_MODES:
        raise UsageError(f"fractional={fractional!r}; expected one of {FRACTIONAL_MODES}")
    path = Path(seg_path)
    ds = dataset if dataset is not None else read_dataset(path, defer=False)
    if dataset_kind(ds) != "seg":
        raise ConversionError(f"{path}: is {ds.get('Modality', '?')} ({ds.get('SOPClassUID', '?')}); "
                              f"expected a DICOM Segmentation (Modality SEG)")
    seg_type = str(ds.get("SegmentationType", "")).upper()
    if seg_type not in ("BINARY", "FRACTIONAL", "LABELMAP"):
        raise ConversionError(f"{path}: SegmentationType {seg_type!r}; expected BINARY, FRACTIONAL or LABELMAP")
    segments = list(ds.get("SegmentSequence", []))
    if seg_type == "LABELMAP":
        # LABELMAP segment 0 is the background (highdicom writes it): the complement, not a structure.
        segments = [s for s in segments if int(s.get("SegmentNumber", 0)) != 0]
    if not segments:
        raise ConversionError(f"{path}: SEG has no SegmentSequence; expected at least one segment")
    uids = {str(s.SeriesInstanceUID) for s in ds.get("ReferencedSeriesSequence", []) if s.get("SeriesInstanceUID")}
    # a DicomSeries (e.g. one acquisition chosen by dicom_refs.match_referenced_series) is used as is
    target = series_dir if isinstance(series_dir, DicomSeries) else \
        referenced_series(path, scan(series_dir).series, series_dir, uids, series_uid, "SEG")
    geom = series_geometry(target, "error")
    rows, cols = int(ds.Rows), int(ds.Columns)
    first = target.slices[0]
    if (rows, cols) != (first.rows, first.cols):
        raise ConversionError(f"{path}: frames are {rows}x{cols}; series {target.uid} slices are "
                              f"{first.rows}x{first.cols}; expected the source grid")
    meas = _item(_item(ds, "SharedFunctionalGroupsSequence"), "PixelMeasuresSequence")
    if meas is not None and "PixelSpacing" in meas and \
            np.max(np.abs(np.array([float(v) for v in meas.PixelSpacing]) - first.pixel_spacing)) > 1e-3:
        raise ConversionError(f"{path}: pixel spacing {list(meas.PixelSpacing)} differs from the series "
                              f"{list(first.pixel_spacing)}; expected the source grid")
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    try:
        pixels = ds.pixel_array.reshape(n_frames, rows, cols)
    except Exception as exc:
        raise ConversionError(f"{path}: cannot decode SEG pixel data ({_one_line(exc)}); expected "
                              f"{n_frames} frames of {rows}x{cols}; re-download the file") from None
    ks = _frame_slices(path, ds, geom, n_frames)
    per_frame = ds.PerFrameFunctionalGroupsSequence
    numbers = [int(s.SegmentNumber) for s in segments]
    frames_of: dict[int, list[int]] = {n: [] for n in numbers}
    if seg_type == "LABELMAP":
        for f in range(n_frames):
            for n in numbers:
                frames_of[n].append(f)
    else:
        shared = _item(ds, "SharedFunctionalGroupsSequence")
        for f, per in enumerate(per_frame):
            ident = _functional(per, shared, "SegmentIdentificationSequence")  # shared when one segment
            n = int(ident.ReferencedSegmentNumber) if ident is not None else None
            if n not in frames_of:
                raise ConversionError(f"{path}: frame {f + 1} refers to segment {n}; segments are {numbers}; "
                                      f"expected one of them")
            frames_of[n].append(f)
        for n, frames in frames_of.items():
            seen = [ks[f] for f in frames]
            if len(set(seen)) != len(seen):
                dup = next(k for k in seen if seen.count(k) > 1)
                raise ConversionError(f"{path}: segment {n} has two frames on slice {dup}; expected at most one")
    max_value = int(ds.get("MaximumFractionalValue", 255) or 255)
    fractional_type = str(ds.get("SegmentationFractionalType", "")) if seg_type == "FRACTIONAL" else ""
    labels = [str(s.get("SegmentLabel", "") or "") for s in segments]
    stems = unique_file_stems(labels, [f"segment_{n}" for n in numbers])
    keys: set[str] = set()
    for seg, label, stem, n in zip(segments, labels, stems, numbers):
        as_float = seg_type == "FRACTIONAL" and fractional == "probability"
        planes = np.zeros((len(geom.slices), rows, cols), dtype=np.float32 if as_float else bool)
        for f in frames_of[n]:
            frame = pixels[f]
            if seg_type == "BINARY":
                planes[ks[f]] = frame != 0
            elif seg_type == "LABELMAP":
                planes[ks[f]] |= frame == n
            elif as_float:
                planes[ks[f]] = frame.astype(np.float32) / max_value
            else:
                planes[ks[f]] = frame.astype(np.float32) / max_value >= threshold
        meta = {"name": label, "number": n, "file_stem": stem, "source": str(path), "series_uid": target.uid,
                "segmentation_type": seg_type, "fractional_type": fractional_type,
                "category": _code_meaning(seg, "SegmentedPropertyCategoryCodeSequence"),
                "type": _code_meaning(seg, "SegmentedPropertyTypeCodeSequence"),
                "algorithm_type": str(seg.get("SegmentAlgorithmType", "")),
                "frames": len(frames_of[n]), "slices": sorted(int(k) for k in np.flatnonzero(planes.any(axis=(1, 2)))),
                "empty": not planes.any()}
        if seg_type == "FRACTIONAL":
            meta["fractional_output"] = "probability" if as_float else f"fraction >= {threshold}"
        key = label if label not in keys else f"{label} (segment {n})"
        keys.add(key)
        yield key, ImageData(np.asfortranarray(geom.rowcol_to_volume(planes)), geom.affine.copy(), meta=meta)


def read_seg(seg_path: str | os.PathLike, series_dir: str | os.PathLike | DicomSeries, series_uid: str | None = None,
             fractional: str = "threshold", threshold: float = 0.5, *, dataset=None) -> dict[str, ImageData]:
    """Read a DICOM-SEG as segment label -> mask on the referenced series (dcm2niix layout).

    BINARY and LABELMAP segments give bool masks. FRACTIONAL segments give bool masks of
    ``value / MaximumFractionalValue >= threshold`` (``fractional='threshold'``) or float32
    fractions in [0, 1] (``fractional='probability'``). Slices without a frame are empty.
    """
    return dict(iter_seg(seg_path, series_dir, series_uid, fractional, threshold, dataset=dataset))


def seg_to_masks(seg_path: str | os.PathLike, series_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 series_uid: str | None = None, fractional: str = "threshold", threshold: float = 0.5,
                 compression_level: int | None = None) -> dict:
    """DICOM-SEG -> ``<out_dir>/<segment label>.nii.gz`` for every segment + ``summary.json``."""
    masks = iter_seg(seg_path, series_dir, series_uid, fractional, threshold)
    key, first = next(masks)
    summary = {"source": str(seg_path), "kind": "SEG", "segmentation_type": first.meta["segmentation_type"],
               "series_uid": first.meta["series_uid"], "series_dir": str(series_dir)}
    return masks_to_nifti(itertools.chain([(key, first)], masks), out_dir, summary, compression_level)


__all__ = ["iter_seg", "read_seg", "seg_to_masks"]
