"""DICOM image series -> ImageData / NIfTI, with geometry that is checked, not assumed.

pydicom parses and decodes (JPEG-2000, JPEG-LS, RLE ... through the plugins it finds:
pylibjpeg-openjpeg, pyjpegls, Pillow or GDCM). What is written here is what no library
does in the way a benchmark needs: group files into series, order slices by position
along the slice normal (never by InstanceNumber), and refuse, or resample on request,
series whose geometry one NIfTI affine cannot describe (gantry tilt, missing slices,
non-uniform spacing, duplicates). Silent wrong geometry is the failure this module exists
to prevent.

Voxel layout and affine follow dcm2niix exactly (tested against it on every real series):
i = column index, j = row index reversed (last DICOM row first), k = ascending position
along the normal ``cross(row direction, column direction)``; the affine maps (i, j, k) to
RAS+ mm. A label NIfTI made by dcm2niix-based tools (e.g. TotalSegmentator) therefore lies
on the same grid as our image, voxel for voxel.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array as decode_pixels
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from omnimedseg.converters.formats.imagedata import ImageData
from omnimedseg.errors import ConversionError, UsageError

# Values larger than this stay on disk until used: scanning a folder reads headers only once
# and pixel data only for the series actually converted.
_DEFER_SIZE = "2 KB"
# Slices whose normal positions differ by less than this are duplicates (mm).
DUPLICATE_TOL_MM = 0.01
# Largest deviation (mm) of any slice from a uniform grid, or of any in-plane origin from the
# stacking line, that is still written as a regular volume: max(abs, rel * slice spacing).
POSITION_TOL_MM = 0.05
POSITION_TOL_REL = 0.02
# Largest difference between two slices' direction cosines still counted as the same orientation.
ORIENTATION_TOL = 1e-3
ON_IRREGULAR = ("error", "resample")

# Objects that carry no image volume even when they have Rows/Columns (SEG has frames,
# RTDOSE a dose grid): left out of image series, handled by their own readers.
NON_IMAGE_MODALITIES = {"SEG", "RTSTRUCT", "RTPLAN", "RTRECORD", "RTDOSE", "SR", "KO", "PR", "REG",
                        "DOC", "FID", "RWV", "PLAN", "AU", "ECG", "HD"}
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# --------------------------------------------------------------------------- reading files

def read_dataset(path: str | os.PathLike, *, defer: bool = True) -> Dataset:
    """Parse one DICOM file; a one-line ConversionError names the file if it is not readable."""
    path = Path(path)
    try:
        return pydicom.dcmread(str(path), defer_size=_DEFER_SIZE if defer else None)
    except FileNotFoundError:
        raise ConversionError(f"{path}: file not found") from None
    except Exception as exc:  # pydicom raises many types for damaged files
        raise ConversionError(f"{path}: corrupt DICOM ({_one_line(exc)}); expected a readable DICOM file; "
                              f"re-download it or remove it from the folder") from None


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True when the file carries the DICOM Part 10 marker ('DICM' at byte 128)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _sop_name(ds: Dataset) -> str:
    uid = str(ds.get("SOPClassUID", "") or "")
    return UID(uid).name if uid else ""


def dataset_kind(ds: Dataset) -> str:
    """'image', 'seg', 'rtstruct', 'other' (another non-image object) or 'unknown'."""
    uid = str(ds.get("SOPClassUID", "") or "")
    modality = str(ds.get("Modality", "") or "").upper()
    if uid == SEG_SOP_CLASS or modality == "SEG":
        return "seg"
    if uid == RTSTRUCT_SOP_CLASS or modality == "RTSTRUCT":
        return "rtstruct"
    name = _sop_name(ds)
    if "Image Storage" in name and "RT Image" not in name:
        return "image"
    if modality in NON_IMAGE_MODALITIES or (name and name != uid):
        return "other"
    if modality or "PixelData" in ds:
        return "image"
    return "unknown"


# --------------------------------------------------------------------------- series model

@dataclass(frozen=True)
class SliceRef:
    """One 2D plane of a series: a single-frame file, or one frame of a multi-frame file."""

    path: Path
    frame: int | None  # 0-based frame in a multi-frame file, None for single-frame files
    sop_uid: str
    position: np.ndarray  # ImagePositionPatient (LPS mm): centre of the first transmitted pixel
    orientation: np.ndarray  # ImageOrientationPatient: row direction, column direction
    pixel_spacing: tuple[float, float]  # (between rows, between columns) mm
    rows: int
    cols: int
    slope: float
    intercept: float
    thickness: float | None
    instance: int | None


@dataclass
class DicomSeries:
    """Image files that belong to one series and one stack (same orientation and size)."""

    uid: str
    number: int | None
    description: str
    modality: str
    frame_of_reference: str
    study_uid: str
    slices: list[SliceRef]
    datasets: dict[Path, Dataset] = field(repr=False, default_factory=dict)
    uid_missing: bool = False

    @property
    def files(self) -> list[Path]:
        return list(dict.fromkeys(s.path for s in self.slices))

    @property
    def name(self) -> str:
        """File stem named by series number and description, like dcm2niix's ``%s_%d``."""
        desc = re.sub(r"[^A-Za-z0-9.+-]+", "_", self.description).strip("_.")
        number = self.number if self.number is not None else 0
        return f"{number}_{desc}" if desc else f"{number}_series"

    def label(self) -> str:
        return f"{self.uid} (#{self.number if self.number is not None else '-'} " \
               f"{self.description!r}, {len(self.slices)} slices)"


@dataclass
class ScanResult:
    series: list[DicomSeries]
    seg: list[Path]
    rtstruct: list[Path]
    skipped: list[tuple[Path, str]]


def _iter_files(src: str | os.PathLike | Iterable) -> list[Path]:
    if isinstance(src, (str, os.PathLike)):
        root = Path(src)
        if root.is_file():
            return [root]
        if not root.is_dir():
            raise ConversionError(f"{root}: not found; expected a DICOM file or a folder of DICOM files")
        return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [Path(p) for p in src]


def _float_list(value, path: Path, tag: str, count: int) -> np.ndarray:
    try:
        out = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        out = np.array([])
    if out.size != count or not np.all(np.isfinite(out)):
        raise ConversionError(f"{path}: {tag} is {value!r}; expected {count} numbers")
    return out


def _item(seq_owner: Dataset | None, keyword: str) -> Dataset | None:
    if seq_owner is None:
        return None
    seq = seq_owner.get(keyword)
    return seq[0] if seq else None


def _functional(per_frame: Dataset | None, shared: Dataset | None, keyword: str) -> Dataset | None:
    """First item of a functional group macro, per-frame first then shared."""
    return _item(per_frame, keyword) or _item(shared, keyword)


def _slices_of(ds: Dataset, path: Path) -> list[SliceRef]:
    """The planes of one image file, with geometry from the classic or the enhanced tags."""
    if "PixelData" not in ds or "Rows" not in ds or "Columns" not in ds:
        raise ConversionError(f"{path}: {ds.get('Modality', 'image')} file without pixel data "
                              f"(truncated or damaged); expected Rows, Columns and Pixel Data; re-download it")
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", Dataset()):
        raise ConversionError(f"{path}: corrupt DICOM (no Transfer Syntax UID in the file meta); re-download it")
    rows, cols = int(ds.Rows), int(ds.Columns)
    sop = str(ds.get("SOPInstanceUID", "") or "")
    instance = ds.get("InstanceNumber")
    instance = int(instance) if instance not in (None, "") else None
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    per_frame_seq = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame_seq is not None or n_frames > 1:
        shared = _item(ds, "SharedFunctionalGroupsSequence")
        if per_frame_seq is None or len(per_frame_seq) != n_frames:
            raise ConversionError(
                f"{path}: multi-frame object with {n_frames} frames but "
                f"{0 if per_frame_seq is None else len(per_frame_seq)} per-frame functional groups; "
                f"expected one plane position per frame (enhanced CT/MR/PET)")
        out = []
        for f, per in enumerate(per_frame_seq):
            pos = _functional(per, shared, "PlanePositionSequence")
            ori = _functional(per, shared, "PlaneOrientationSequence")
            meas = _functional(per, shared, "PixelMeasuresSequence")
            if pos is None or ori is None or meas is None or "PixelSpacing" not in meas:
                raise ConversionError(f"{path}: frame {f + 1} has no plane position/orientation/pixel spacing; "
                                      f"expected enhanced multi-frame functional groups")
            trans = _functional(per, shared, "PixelValueTransformationSequence")
            slope = float(trans.get("RescaleSlope", 1) if trans is not None else 1)
            inter = float(trans.get("RescaleIntercept", 0) if trans is not None else 0)
            thick = meas.get("SliceThickness")
            out.append(SliceRef(path, f, sop, _float_list(pos.ImagePositionPatient, path, "ImagePositionPatient", 3),
                                _float_list(ori.ImageOrientationPatient, path, "ImageOrientationPatient", 6),
                                tuple(_float_list(meas.PixelSpacing, path, "PixelSpacing", 2)), rows, cols,
                                slope, inter, float(thick) if thick not in (None, "") else None, instance))
        return out
    if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
        return []  # no geometry (screenshot, scout without position): not part of a volume
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    if spacing is None:
        raise ConversionError(f"{path}: no PixelSpacing; expected it in every slice of a 3D series")
    slope = ds.get("RescaleSlope", 1)
    inter = ds.get("RescaleIntercept", 0)
    thick = ds.get("SliceThickness")
    return [SliceRef(path, None, sop, _float_list(ds.ImagePositionPatient, path, "ImagePositionPatient", 3),
                     _float_list(ds.ImageOrientationPatient, path, "ImageOrientationPatient", 6),
                     tuple(_float_list(spacing, path, "PixelSpacing", 2)), rows, cols,
                     float(slope if slope not in (None, "") else 1), float(inter if inter not in (None, "") else 0),
                     float(thick) if thick not in (None, "") else None, instance)]


def _series_key(ds: Dataset) -> tuple[str, bool]:
    uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
    if uid:
        return uid, False
    # Anonymised files may blank the UID (the real TotalSegmentator example does): fall back to
    # what dcm2niix also uses to keep series apart.
    parts = [str(ds.get(k, "") or "") for k in ("StudyInstanceUID", "FrameOfReferenceUID", "SeriesNumber",
                                                "SeriesDescription", "Modality", "SeriesTime")]
    return "nouid-" + hashlib.sha1("|".join(parts).encode()).hexdigest()[:12], True


def scan(src: str | os.PathLike | Iterable) -> ScanResult:
    """Find every image series (and SEG / RTSTRUCT file) under a folder, a file or a list of files.

    Files without the DICM marker are skipped (listed in ``skipped``); a file that has it but
    cannot be parsed is an error, because a damaged slice must not silently vanish from a volume.
    """
    groups: dict[str, list[DicomSeries]] = {}
    photometric: dict[str, tuple[str, Path]] = {}  # series uid -> its first slice's PhotometricInterpretation
    seg, rts, skipped = [], [], []
    for path in _iter_files(src):
        if not is_dicom_file(path):
            skipped.append((path, "not DICOM (no DICM marker)"))
            continue
        ds = read_dataset(path)
        kind = dataset_kind(ds)
        if kind == "seg":
            seg.append(path)
            continue
        if kind == "rtstruct":
            rts.append(path)
            continue
        if kind == "other":
            skipped.append((path, f"non-image object ({_sop_name(ds) or ds.get('Modality')})"))
            continue
        if kind == "unknown":
            raise ConversionError(f"{path}: corrupt DICOM (no SOP Class, Modality or Pixel Data: truncated header?); "
                                  f"re-download it or remove it from the folder")
        slices = _slices_of(ds, path)
        if not slices:
            skipped.append((path, "image without ImagePositionPatient/ImageOrientationPatient"))
            continue
        if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
            raise ConversionError(f"{path}: {ds.SamplesPerPixel} samples per pixel; expected greyscale slices "
                                  f"(colour 3D series are not supported)")
        uid, missing = _series_key(ds)
        interpretation = str(ds.get("PhotometricInterpretation", "") or "").strip()
        if interpretation in ("MONOCHROME1", "MONOCHROME2"):  # MONOCHROME1 is kept as stored, as dcm2niix does:
            first, first_path = photometric.setdefault(uid, (interpretation, path))  # mixed, part would look inverted
            if interpretation != first:
                raise ConversionError(f"{path}: PhotometricInterpretation {interpretation} in a series whose slice "
                                      f"{first_path} is {first}; expected one interpretation per series; remove the "
                                      f"foreign slices from the folder")
        stacks = groups.setdefault(uid, [])
        for sl in slices:
            for stack in stacks:
                ref = stack.slices[0]
                if (ref.rows, ref.cols) == (sl.rows, sl.cols) and \
                        np.max(np.abs(ref.orientation - sl.orientation)) < ORIENTATION_TOL:
                    break
            else:
                number = ds.get("SeriesNumber")
                stack = DicomSeries(uid=uid, number=int(number) if number not in (None, "") else None,
                                    description=str(ds.get("SeriesDescription", "") or ""),
                                    modality=str(ds.get("Modality", "") or ""),
                                    frame_of_reference=str(ds.get("FrameOfReferenceUID", "") or ""),
                                    study_uid=str(ds.get("StudyInstanceUID", "") or ""), slices=[],
                                    uid_missing=missing)
                stacks.append(stack)
            stack.slices.append(sl)
            stack.datasets[path] = ds
    series = []
    for uid, stacks in groups.items():
        stacks.sort(key=lambda s: -len(s.slices))
        for i, stack in enumerate(stacks):
            if i:  # a second orientation/size inside one series (e.g. localizers): its own stack
                stack.uid = f"{uid}:{i + 1}"
            series.append(stack)
    series.sort(key=lambda s: (s.number if s.number is not None else -1, s.description, s.uid))
    return ScanResult(series, seg, rts, skipped)


def find_series(src: str | os.PathLike | Iterable) -> list[DicomSeries]:
    """The image series under ``src`` (see :func:`scan`)."""
    return scan(src).series


def select_series(series: Sequence[DicomSeries], uid: str | None, source: object = "") -> DicomSeries:
    """One series: the one whose UID is ``uid``, or the only one; a clear error otherwise."""
    if not series:
        raise ConversionError(f"{source}: no DICOM image series found; expected a folder of DICOM slices "
                              f"(files need the DICM marker)")
    if uid is None:
        if len(series) == 1:
            return series[0]
        listing = "; ".join(s.label() for s in series)
        raise UsageError(f"{source}: holds {len(series)} series ({listing}); pass --series UID to pick one")
    for s in series:
        if s.uid == uid:
            return s
    listing = "; ".join(s.label() for s in series)
    raise ConversionError(f"{source}: no series with UID {uid}; found {listing}")


# --------------------------------------------------------------------------- geometry

@dataclass
class SeriesGeometry:
    """Where every voxel of the output volume is, and how it is made from the slices."""

    slices: list[SliceRef]  # ordered along the normal
    positions: np.ndarray  # slice positions along the normal (mm), ascending
    row_dir: np.ndarray  # LPS unit vector along a row (column index grows)
    col_dir: np.ndarray  # LPS unit vector down a column (row index grows)
    normal: np.ndarray
    pixel_spacing: tuple[float, float]  # (between rows, between columns)
    slice_spacing: float
    shape: tuple[int, int, int]  # output (i, j, k)
    affine: np.ndarray  # 4x4 voxel (i, j, k) -> RAS mm
    resample: dict | None = None  # what was resampled and why, None for a regular series

    def index_of_position(self, position_lps, tol: float | None = None) -> int | None:
        """Slice index k whose plane holds ``position_lps`` (within ``tol`` mm along the normal)."""
        if self.resample:
            raise ConversionError("mapping onto a resampled series is not supported")
        p = float(np.dot(position_lps, self.normal))
        k = int(np.argmin(np.abs(self.positions - p)))
        tol = self.slice_spacing * 0.5 if tol is None else tol
        return k if abs(self.positions[k] - p) <= tol else None

    def sop_index(self) -> dict[tuple[str, int | None], int]:
        """(SOPInstanceUID, 1-based frame number or None) -> slice index k."""
        out = {}
        for k, s in enumerate(self.slices):
            if s.sop_uid:
                out[(s.sop_uid, None if s.frame is None else s.frame + 1)] = k
        return out

    def lps_to_pixel(self, points_lps: np.ndarray, k: int) -> np.ndarray:
        """(N, 3) LPS mm -> (N, 3) continuous (col, row, distance-from-plane mm) on slice k.

        Pixel centres are at integer (col, row): ImagePositionPatient is the centre of pixel (0, 0).
        """
        d = np.asarray(points_lps, dtype=np.float64) - self.slices[k].position
        return np.stack([d @ self.row_dir / self.pixel_spacing[1], d @ self.col_dir / self.pixel_spacing[0],
                         d @ self.normal], axis=-1)

    def rowcol_to_volume(self, planes: np.ndarray) -> np.ndarray:
        """(k, row, col) stack of planes -> the (i, j, k) output layout (a view, no copy)."""
        return np.asarray(planes)[:, ::-1, :].transpose(2, 1, 0)


def _tol(spacing: float) -> float:
    return max(POSITION_TOL_MM, POSITION_TOL_REL * abs(spacing))


def _where(series: DicomSeries) -> str:
    files = series.files
    return str(files[0].parent) if len(files) > 1 else str(files[0])


def series_geometry(series: DicomSeries, on_irregular: str = "error") -> SeriesGeometry:
    """Order the slices and check that one affine describes them all.

    ``on_irregular='error'`` (default) raises a one-line ConversionError for gantry tilt, missing
    slices and non-uniform spacing; ``'resample'`` builds a regular grid (rules in docs/formats.md):
    tilt is removed by shifting each slice in plane (dcm2niix's ``_Tilt`` grid); missing slices
    get one grid slot each, so every acquired slice is kept; other spacing is equalized to the
    smallest gap (dcm2niix's ``_Eq`` grid on most gap patterns); linear interpolation.
    """
    if on_irregular not in ON_IRREGULAR:
        raise UsageError(f"on_irregular={on_irregular!r}; expected one of {ON_IRREGULAR}")
    where = _where(series)
    first = series.slices[0]
    row = first.orientation[:3] / np.linalg.norm(first.orientation[:3])
    col = first.orientation[3:] / np.linalg.norm(first.orientation[3:])
    if abs(np.dot(row, col)) > 1e-3:
        raise ConversionError(f"{first.path}: ImageOrientationPatient {list(first.orientation)} is not orthogonal; "
                              f"expected two perpendicular unit vectors")
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    for s in series.slices:
        if (s.rows, s.cols) != (first.rows, first.cols) or \
                np.max(np.abs(np.subtract(s.pixel_spacing, first.pixel_spacing))) > 1e-4:
            raise ConversionError(f"{s.path}: {s.rows}x{s.cols} pixels of {s.pixel_spacing} mm; expected "
                                  f"{first.rows}x{first.cols} of {first.pixel_spacing} mm like {first.path.name}")
    pos = np.array([s.position @ normal for s in series.slices])
    order = np.argsort(pos, kind="stable")
    slices = [series.slices[i] for i in order]
    pos = pos[order]
    n = len(slices)
    ps_row, ps_col = first.pixel_spacing
    gaps = np.diff(pos)
    if n > 1 and gaps.min() < DUPLICATE_TOL_MM:
        k = int(np.argmin(gaps))
        a, b = slices[k], slices[k + 1]
        raise ConversionError(
            f"{where}: two slices at the same position {pos[k]:.3f} mm ({a.path.name}"
            f"{'' if a.frame is None else f' frame {a.frame + 1}'}, {b.path.name}"
            f"{'' if b.frame is None else f' frame {b.frame + 1}'}); expected one slice per position, or the "
            f"same number of slices at every position ordered by a temporal tag (a 4D series)")
    resample: dict = {}
    # In-plane offset of every slice origin from the line through the first one along the normal.
    d = np.array([s.position - slices[0].position for s in slices])
    du, dv = d @ row, d @ col
    shift = float(np.max(np.hypot(du, dv))) if n > 1 else 0.0
    if n > 1 and shift > POSITION_TOL_MM:
        span = pos[-1] - pos[0]
        angle = math.degrees(math.atan2(math.hypot(du[-1], dv[-1]), span))
        lin_u = du[0] + (du[-1] - du[0]) * (pos - pos[0]) / span
        lin_v = dv[0] + (dv[-1] - dv[0]) * (pos - pos[0]) / span
        if max(np.max(np.abs(du - lin_u)), np.max(np.abs(dv - lin_v))) > _tol(ps_row):
            raise ConversionError(f"{where}: slice origins move irregularly in plane (up to {shift:.2f} mm); "
                                  f"expected slices stacked along one straight line; not a single volume")
        if on_irregular == "error":
            raise ConversionError(
                f"{where}: gantry tilt of {angle:.2f} deg (slice origins shift {shift:.2f} mm in plane over "
                f"{span:.1f} mm); a NIfTI affine would be sheared; rerun with --resample (on_irregular='resample') "
                f"to remove the tilt by resampling")
        resample["tilt_deg"] = angle
    slice_spacing = (pos[-1] - pos[0]) / (n - 1) if n > 1 else float(first.thickness or 1.0)
    target = None
    if n > 2:
        dev = float(np.max(np.abs(pos - (pos[0] + slice_spacing * np.arange(n)))))
        if dev > _tol(slice_spacing):
            small = float(gaps.min())
            ratio = gaps / small
            k = int(np.argmax(gaps))
            missing_slices = bool(np.all(np.abs(ratio - np.round(ratio)) * small <= _tol(small)))
            if missing_slices:
                missing = int(np.sum(np.round(ratio) - 1))
                what = (f"{missing} missing slice(s): gap of {gaps[k]:.3f} mm between {slices[k].path.name} and "
                        f"{slices[k + 1].path.name} where the others are {small:.3f} mm")
            else:
                what = (f"non-uniform slice spacing ({small:.3f} to {gaps.max():.3f} mm, largest between "
                        f"{slices[k].path.name} and {slices[k + 1].path.name})")
            if on_irregular == "error":
                raise ConversionError(f"{where}: {what}; expected equally spaced slices; rerun with --resample "
                                      f"(on_irregular='resample') to interpolate onto a regular grid")
            if missing_slices:
                # Every gap a whole multiple of the smallest: one grid slot per acquired or missing
                # slice, so every acquired slice lies on the grid (within the tolerance) and is kept
                # as acquired; only the missing ones are interpolated.
                n_out = int(np.sum(np.round(ratio))) + 1
            else:  # the smallest gap, stretched to divide the span (dcm2niix's _Eq grid in most cases)
                n_out = int(math.ceil((pos[-1] - pos[0]) / small - 1e-3)) + 1
            slice_spacing = (pos[-1] - pos[0]) / (n_out - 1)
            target = pos[0] + slice_spacing * np.arange(n_out)
            resample["spacing"] = {"reason": what, "from_slices": n, "to_slices": n_out,
                                   "slice_spacing_mm": slice_spacing}
    # Output grid in plane: the first slice's grid, extended towards the tilt shift (as dcm2niix does).
    pu, pv = du / ps_col, dv / ps_row
    lo_u, hi_u = (math.ceil(max(0.0, -pu.min()) - 1e-6), math.ceil(max(0.0, pu.max()) - 1e-6)) if "tilt_deg" in resample else (0, 0)
    lo_v, hi_v = (math.ceil(max(0.0, -pv.min()) - 1e-6), math.ceil(max(0.0, pv.max()) - 1e-6)) if "tilt_deg" in resample else (0, 0)
    cols_out, rows_out = first.cols + lo_u + hi_u, first.rows + lo_v + hi_v
    if "tilt_deg" in resample:
        resample["inplane"] = {"pad_cols": (lo_u, hi_u), "pad_rows": (lo_v, hi_v),
                               "shift_cols": (pu + 0.0).tolist(), "shift_rows": (pv + 0.0).tolist()}
    if target is not None:
        resample["target_positions"] = target
    origin = slices[0].position - lo_u * ps_col * row - lo_v * ps_row * col
    lps = np.eye(4)
    lps[:3, 0] = row * ps_col
    lps[:3, 1] = -col * ps_row
    lps[:3, 2] = normal * slice_spacing
    lps[:3, 3] = origin + (rows_out - 1) * ps_row * col
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    n_out = n if target is None else len(target)
    return SeriesGeometry(slices, pos, row, col, normal, (ps_row, ps_col), float(slice_spacing),
                          (cols_out, rows_out, n_out), affine, resample or None)


# --------------------------------------------------------------------------- pixels

def _decode_plane(path: Path, frame: int | None, deflated: bool) -> np.ndarray:
    """Stored values of one plane read from its file (only that frame of a multi-frame file).

    Decoding from the path, not from the scanned dataset, leaves nothing cached on the dataset
    (pydicom keeps a deferred Pixel Data element once read: the whole series again in memory).
    A deflated file is parsed first: decoding from the path does not inflate it (pydicom 3).
    """
    return decode_pixels(pydicom.dcmread(path) if deflated else path, index=frame)


def _decode_chunk(items: list[tuple[int, Path, int | None, bool]]) -> list[tuple[int, np.ndarray | str]]:
    """Worker task: decode a few planes; a failure comes back as its message (re-raised with context)."""
    out = []
    for k, path, frame, deflated in items:
        try:
            out.append((k, _decode_plane(path, frame, deflated)))
        except Exception as exc:  # decoder plugins raise many types
            out.append((k, _one_line(exc)))
    return out


# Planes per task when decoding in worker processes (small: results wait in memory until copied).
_DECODE_CHUNK = 8


def _planes(series: DicomSeries, geom: SeriesGeometry, workers: int):
    """``(k, plane or error message)`` for every slice, in geometry order; decoded in ``workers``
    processes when the transfer syntax is compressed (JPEG-2000 decoding holds the GIL, threads
    would not help), with at most ``2 * workers`` tasks of decoded planes waiting in memory."""
    syntaxes = [str(series.datasets[s.path].file_meta.get("TransferSyntaxUID", "")) for s in geom.slices]
    items = [(k, s.path, s.frame, syntax == DeflatedExplicitVRLittleEndian)
             for k, (s, syntax) in enumerate(zip(geom.slices, syntaxes))]
    syntax = UID(syntaxes[0])
    if workers > 1 and len(items) > _DECODE_CHUNK and syntax.is_compressed:
        from collections import deque
        from concurrent.futures import ProcessPoolExecutor

        chunks = deque(items[i:i + _DECODE_CHUNK] for i in range(0, len(items), _DECODE_CHUNK))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            running: deque = deque()
            while chunks or running:
                while chunks and len(running) < 2 * workers:
                    running.append(pool.submit(_decode_chunk, chunks.popleft()))
                yield from running.popleft().result()
        return
    for item in items:  # one plane at a time
        yield from _decode_chunk([item])


def _checked_planes(series: DicomSeries, geom: SeriesGeometry, workers: int):
    """:func:`_planes` with decoding failures and wrong sizes turned into one-line errors."""
    for k, plane in _planes(series, geom, workers):
        s = geom.slices[k]
        if isinstance(plane, str):
            ds = series.datasets[s.path]
            raise ConversionError(f"{s.path}: cannot decode pixel data ({plane}) [transfer syntax "
                                  f"{ds.file_meta.get('TransferSyntaxUID', '?')}]; re-download the file, or install the "
                                  f"decoder pydicom names (pip install pylibjpeg pylibjpeg-openjpeg pyjpegls)")
        if plane.shape != (s.rows, s.cols):
            raise ConversionError(f"{s.path}: decoded {plane.shape} pixels; expected {(s.rows, s.cols)}")
        yield k, plane


def _decode_all(series: DicomSeries, geom: SeriesGeometry, workers: int = 1) -> np.ndarray:
    """Stored values as a (k, reversed row, col) stack in geometry order, decoded plane by plane
    into one preallocated array (the only volume-sized allocation; see :func:`_rescaled`).

    Rows are reversed while copying so that ``out.transpose(2, 1, 0)`` is already the
    F-contiguous (i, j, k) volume NIfTI stores: no extra pass over the data.
    """
    out = None
    for k, plane in _checked_planes(series, geom, workers):
        s = geom.slices[k]
        if out is None:
            out = np.empty((len(geom.slices), s.rows, s.cols), dtype=plane.dtype)
        elif plane.dtype != out.dtype:  # result_type is order-free: parallel decoding gives the same dtype
            out = out.astype(np.result_type(out.dtype, plane.dtype))
        out[k] = plane[::-1]
    return out


def _range_decides_dtype(slices: list[SliceRef], stored) -> bool:
    """Whether the output dtype depends on the stored values' range (integral rescale of integers)."""
    slopes = np.array([s.slope for s in slices])
    inters = np.array([s.intercept for s in slices])
    rescaled = not (np.all(slopes == 1) and np.all(inters == 0))
    integral = np.all(slopes == np.round(slopes)) and np.all(inters == np.round(inters))
    return bool(rescaled and integral and np.dtype(stored).kind in "iu")


def _rescale_plan(slices: list[SliceRef], stored, value_range: tuple[int, int] | None):
    """``(output dtype or None when there is no rescale, rescale info)`` for stored values of
    dtype ``stored`` within ``value_range`` (needed when :func:`_range_decides_dtype`)."""
    slopes = np.array([s.slope for s in slices])
    inters = np.array([s.intercept for s in slices])
    if np.all(slopes == 1) and np.all(inters == 0):
        return None, {"slope": 1.0, "intercept": 0.0}
    info = {"slope": float(slopes[0]), "intercept": float(inters[0])} if \
        np.all(slopes == slopes[0]) and np.all(inters == inters[0]) else \
        {"slope": slopes.tolist(), "intercept": inters.tolist()}
    if not _range_decides_dtype(slices, stored):
        return np.dtype(np.float32), info
    lo, hi = value_range
    ends = [lo * a + b for a in (slopes.min(), slopes.max()) for b in (inters.min(), inters.max())] + \
           [hi * a + b for a in (slopes.min(), slopes.max()) for b in (inters.min(), inters.max())]
    for dtype in (np.int16, np.int32):
        if np.iinfo(dtype).min <= min(ends) and max(ends) <= np.iinfo(dtype).max:
            return np.dtype(dtype), info
    return np.dtype(np.float32), info


def _rescaled(raw: np.ndarray, slices: list[SliceRef]) -> tuple[np.ndarray, dict]:
    """Apply RescaleSlope/Intercept; keep integers when the result is integral and fits.

    Output dtype: the stored dtype when there is no rescale; int16 (or int32) when every
    slope and intercept is an integer (CT HU); float32 otherwise (PET SUV scales, MR fractions).
    When the output dtype is as wide as the stored one (uint16 -> int16 CT), the values are
    rescaled in ``raw``'s own memory, which is then no longer valid: one volume in memory.
    """
    slopes = np.array([s.slope for s in slices])
    inters = np.array([s.intercept for s in slices])
    ranged = _range_decides_dtype(slices, raw.dtype)
    dtype, info = _rescale_plan(slices, raw.dtype, (int(raw.min()), int(raw.max())) if ranged else None)
    if dtype is None:
        return raw, info
    # Per slice, through a wide type, so no intermediate overflows and temporaries stay small.
    wide = np.float64 if dtype == np.float32 else np.int64
    same_width = np.dtype(dtype).itemsize == raw.dtype.itemsize and raw.flags.c_contiguous
    out = raw.view(dtype) if same_width else np.empty(raw.shape, dtype=dtype)
    for k in range(len(slices)):
        out[k] = raw[k].astype(wide) * wide(slopes[k]) + wide(inters[k])  # reads raw[k] before writing
    return out, info


def _apply_resample(vol: np.ndarray, geom: SeriesGeometry) -> np.ndarray:
    """Remove tilt (in-plane shift per slice) and equalize spacing, linear interpolation.

    Integer data are rounded back to their dtype; voxels outside every slice get the volume minimum.
    """
    from scipy import ndimage

    dtype = vol.dtype
    work = vol.astype(np.float32)
    fill = float(work.min())
    plan = geom.resample or {}
    inplane = plan.get("inplane")
    if inplane:
        lo_u, lo_v = inplane["pad_cols"][0], inplane["pad_rows"][0]
        rows_out, cols_out = geom.shape[1], geom.shape[0]
        shifted = np.empty((work.shape[0], rows_out, cols_out), np.float32)
        for k in range(work.shape[0]):
            # work[k] holds the slice with rows reversed (row index r -> rows-1-r): shifts follow.
            su, sv = inplane["shift_cols"][k], inplane["shift_rows"][k]
            plane = work[k, ::-1, :]
            ndimage.affine_transform(plane, np.eye(2), offset=(-lo_v - sv, -lo_u - su),
                                     output_shape=(rows_out, cols_out), output=shifted[k], order=1,
                                     mode="constant", cval=fill)
            shifted[k] = shifted[k, ::-1, :]
        work = shifted
    target = plan.get("target_positions")
    if target is not None:
        pos = geom.positions
        idx = np.clip(np.searchsorted(pos, target, side="right") - 1, 0, len(pos) - 2)
        w = (target - pos[idx]) / (pos[idx + 1] - pos[idx])
        # A target within the position tolerance of an acquired slice takes that slice as acquired.
        tol = _tol(geom.slice_spacing)
        w[np.abs(target - pos[idx]) <= tol] = 0.0
        w[np.abs(pos[idx + 1] - target) <= tol] = 1.0
        w = w.astype(np.float32)[:, None, None]
        work = work[idx] * (1 - w) + work[idx + 1] * w
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(work), info.min, info.max).astype(dtype)
    return work.astype(dtype)


def read_series(src: str | os.PathLike | Iterable | DicomSeries, series_uid: str | None = None,
                on_irregular: str = "error", workers: int = 1) -> ImageData:
    """Read one DICOM series into ``ImageData`` (rescaled values, dcm2niix layout and affine).

    ``src`` is a folder, file list or a :class:`DicomSeries` from :func:`find_series`;
    ``series_uid`` picks one when the folder holds several. See :func:`series_geometry`
    for ``on_irregular``. A series whose positions repeat (fMRI, DCE, multi-phase) is read as
    4D, ``(i, j, k, t)``, in the order :func:`split_time_points` finds. ``workers`` > 1 decodes
    compressed (JPEG-2000 ...) slices in that many processes; the result does not depend on it.
    """
    _check_workers(workers)
    series = src if isinstance(src, DicomSeries) else select_series(find_series(src), series_uid, src)
    time_points = split_time_points(series)
    if time_points is not None:  # repeated positions: a 4D series (see "4D series" below)
        return _read_time_points(series, time_points, on_irregular, workers)
    geom = series_geometry(series, on_irregular)
    vol, rescale = _rescaled(_decode_all(series, geom, workers), geom.slices)
    if geom.resample:
        vol = _apply_resample(vol, geom)
    return ImageData(vol.transpose(2, 1, 0), geom.affine, meta=_series_meta(series, geom, rescale))


def _check_workers(workers) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UsageError(f"workers: expected an int >= 1, found {workers!r}")


def _series_meta(series: DicomSeries, geom: SeriesGeometry, rescale: dict) -> dict:
    """Provenance of a read series (``ImageData.meta``)."""
    ds0 = series.datasets[geom.slices[0].path]
    return {
        "source": _where(series),
        "series_uid": "" if series.uid_missing else series.uid,
        "series_key": series.uid,
        "series_number": series.number,
        "series_description": series.description,
        "modality": series.modality,
        "frame_of_reference_uid": series.frame_of_reference,
        "transfer_syntax": str(ds0.file_meta.get("TransferSyntaxUID", "")),
        "files": [str(p) for p in dict.fromkeys(s.path for s in geom.slices)],
        "n_slices_read": len(geom.slices),
        "slice_positions_mm": [float(p) for p in geom.positions],
        "orientation": [float(v) for v in geom.slices[0].orientation],
        "rescale": rescale,
        "resampled": None if not geom.resample else {k: v for k, v in geom.resample.items()
                                                     if k != "target_positions"},
    }


class _NotStreamable(Exception):
    """A plane broke the assumption the streamed output dtype rests on: read the whole series."""


def _stored_range(series: DicomSeries, geom: SeriesGeometry) -> tuple[int, int] | None:
    """Range every stored value lies in by the headers (BitsStored, PixelRepresentation), when
    all files agree; ``None`` otherwise."""
    found = set()
    for path in dict.fromkeys(s.path for s in geom.slices):
        ds = series.datasets[path]
        found.add((int(ds.get("BitsStored", 0) or 0), int(ds.get("PixelRepresentation", 0) or 0)))
    if len(found) != 1:
        return None
    bits, signed = found.pop()
    if not 1 <= bits <= 32:
        return None
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _stream_series(series: DicomSeries, geom: SeriesGeometry, target: Path, level: int,
                   workers: int) -> tuple[np.dtype, dict] | None:
    """Write the series to ``target`` plane by plane (memory: a few planes, not the volume), when
    the output dtype can be fixed before decoding: same bytes as ``read_series`` + ``write_nifti``.

    Returns ``(dtype, rescale info)``, or ``None`` when the series needs the whole volume
    (resampling, or an integral rescale whose int16/int32 choice depends on the values: int16
    is fixed up front only when every value BitsStored allows fits it after rescaling).
    """
    from omnimedseg.converters.formats.nifti import write_nifti_planes

    if geom.resample:
        return None
    bounds = _stored_range(series, geom)
    first: dict = {}

    def plan(stored) -> tuple[np.dtype | None, dict]:
        if _range_decides_dtype(geom.slices, stored):
            dtype, info = _rescale_plan(geom.slices, stored, bounds) if bounds else (None, {})
            if dtype != np.int16:
                raise _NotStreamable  # int32 / float32 by the bound, the values may still fit int16
            return dtype, info
        return _rescale_plan(geom.slices, stored, None)

    def planes():
        for k, plane in _checked_planes(series, geom, workers):
            if not first:
                first["stored"] = plane.dtype
                first["dtype"], first["info"] = plan(plane.dtype)
            if plane.dtype != first["stored"]:
                raise _NotStreamable  # mixed stored types: the volume's result_type decides
            dtype = first["dtype"]
            if dtype is not None and _range_decides_dtype(geom.slices, plane.dtype) and plane.size and \
                    (int(plane.min()) < bounds[0] or int(plane.max()) > bounds[1]):
                raise _NotStreamable  # values outside BitsStored
            if dtype is not None:  # as _rescaled, through a wide type
                wide = np.float64 if dtype == np.float32 else np.int64
                s = geom.slices[k]
                plane = (plane.astype(wide) * wide(s.slope) + wide(s.intercept)).astype(dtype)
            yield plane[::-1].T  # (i = column, j = reversed row) of NIfTI plane k

    try:
        # the dtype is known after the first plane: peek it, then write everything
        stream = planes()
        head = next(stream)
        dtype = first["dtype"] or first["stored"]

        def chained():
            yield head
            yield from stream

        write_nifti_planes(target, geom.shape, dtype, geom.affine, chained(), level)
    except _NotStreamable:
        return None
    return np.dtype(dtype), first["info"]


def _summary(target: Path, series: DicomSeries, shape, dtype, affine: np.ndarray, meta: dict,
             skipped: int) -> dict:
    """What ``dicom_to_nifti`` reports for one written file."""
    return {
        "file": str(target), "series_uid": meta["series_uid"], "series_number": series.number,
        "series_description": series.description, "modality": series.modality, "shape": list(shape),
        "dtype": str(dtype), "spacing_mm": [round(float(v), 6) for v in np.linalg.norm(affine[:3, :3], axis=0)],
        "affine": np.round(affine, 6).tolist(), "n_files": len(meta["files"]),
        "transfer_syntax": meta["transfer_syntax"], "rescale": meta["rescale"],
        "resampled": meta["resampled"], "skipped_files": skipped, "time_points": meta.get("time_points"),
    }


def dicom_to_nifti(src: str | os.PathLike | Iterable, out: str | os.PathLike, series_uid: str | None = None,
                   on_irregular: str = "error", compression_level: int | None = None,
                   split: bool = False, workers: int = 1) -> list[dict]:
    """Convert DICOM series to NIfTI; return one summary dict per written file.

    ``out`` ending in ``.nii``/``.nii.gz`` is the file for the one series (``series_uid`` picks it
    when there are several); any other ``out`` is a folder that receives every series as
    ``<SeriesNumber>_<SeriesDescription>.nii.gz``. A 4D series is one 4D file, or with
    ``split=True`` one 3D file per time point, ``<name>_t001.nii.gz``, ``<name>_t002.nii.gz``...
    ``workers``: see :func:`read_series`.
    """
    from omnimedseg.converters.formats.nifti import DEFAULT_COMPRESSION_LEVEL, write_nifti

    level = DEFAULT_COMPRESSION_LEVEL if compression_level is None else compression_level
    _check_workers(workers)
    out = Path(out)
    found = scan(src)
    as_file = out.name.lower().endswith((".nii", ".nii.gz"))
    if series_uid is not None or as_file:
        chosen = [select_series(found.series, series_uid, src)]
    else:
        chosen = found.series
        if not chosen:
            select_series(chosen, None, src)  # raises the "no series" error
    targets: list[Path] = []
    if as_file:
        targets = [out]
    else:
        used: set[str] = set()
        for s in chosen:
            stem, i = s.name, 1
            while stem.lower() in used:
                i += 1
                stem = f"{s.name}_{i}"
            used.add(stem.lower())
            targets.append(out / f"{stem}.nii.gz")
    for s in chosen:  # check every geometry before writing anything
        check_series_geometry(s, on_irregular)
    summaries = []
    for s, series_target in zip(chosen, targets):
        if split_time_points(s) is not None:  # 4D: read whole, written as one 4D file or one per time point
            series_image = read_series(s, on_irregular=on_irregular, workers=workers)
            for image, target in time_point_outputs(series_image, series_target, split):
                write_nifti(image, target, level)
                summaries.append(_summary(target, s, image.array.shape, image.array.dtype, image.affine,
                                          image.meta, len(found.skipped)))
            continue
        geom = series_geometry(s, on_irregular)
        streamed = _stream_series(s, geom, series_target, level, workers)
        if streamed is None:  # the whole volume in memory (resampling, value-dependent dtype)
            image = read_series(s, on_irregular=on_irregular, workers=workers)
            write_nifti(image, series_target, level)
            shape, dtype, meta = image.array.shape, image.array.dtype, image.meta
        else:
            shape, (dtype, rescale) = geom.shape, streamed
            meta = _series_meta(s, geom, rescale)
        summaries.append(_summary(series_target, s, shape, dtype, geom.affine, meta, len(found.skipped)))
    return summaries


# --------------------------------------------------------------------------- 4D series (repeated positions)
#
# fMRI, DCE and multi-phase acquisitions repeat every slice position once per time point. They
# are stacked as a 4th axis, each position's slices ordered by the first of these tags that is
# present on every slice and tells the slices of each position apart. dcm2niix stacks such series
# the same way (it is the reference in tests/formats/test_dicom_4d.py); it orders by InstanceNumber,
# which agrees with these tags whenever InstanceNumber counts through the time points.

TEMPORAL_ORDER_TAGS = ("TemporalPositionIdentifier", "AcquisitionNumber", "AcquisitionTime", "InstanceNumber")


@dataclass(frozen=True)
class TimePoints:
    """A 4D series cut into 3D series: ``series[t]`` holds one slice per position."""

    series: list[DicomSeries]
    ordered_by: str  # the tag of TEMPORAL_ORDER_TAGS that ordered the slices of each position
    values: list[list]  # per time point, that tag's value at each position (ascending position)


def _seconds(value) -> float | None:
    """DICOM TM ``HHMMSS.ffffff`` -> seconds since midnight; a DT ``YYYYMMDDHHMMSS.ffffff``
    (multi-frame FrameAcquisitionDateTime) -> seconds since 0001-01-01, so days count too."""
    text = str(value or "").strip()
    match = re.fullmatch(r"(\d{8})?(\d{2})(\d{2})?(\d{2})?(\.\d+)?(?:[+-]\d{4})?", text)
    if not match:
        return None
    date, hh, mm, ss, frac = match.groups()
    days = 0
    if date:
        try:
            days = datetime.date(int(date[:4]), int(date[4:6]), int(date[6:])).toordinal()
        except ValueError:
            return None
    return days * 86400 + int(hh) * 3600 + int(mm or 0) * 60 + int(ss or 0) + float(frac or 0)


def _temporal_value(series: DicomSeries, ref: SliceRef, tag: str):
    """One slice's value of one ordering tag (per-frame functional groups for multi-frame files)."""
    ds = series.datasets[ref.path]
    if tag == "InstanceNumber" and ref.frame is None:
        return ref.instance
    if ref.frame is not None:  # enhanced multi-frame: Frame Content of that frame
        per_frame = ds.PerFrameFunctionalGroupsSequence[ref.frame]
        content = _functional(per_frame, _item(ds, "SharedFunctionalGroupsSequence"), "FrameContentSequence")
        frame_tag = {"TemporalPositionIdentifier": "TemporalPositionIndex", "AcquisitionNumber": "FrameAcquisitionNumber",
                     "AcquisitionTime": "FrameAcquisitionDateTime"}.get(tag)
        value = content.get(frame_tag) if content is not None and frame_tag else None
    else:
        value = ds.get(tag)
    if value in (None, ""):
        return None
    if tag == "AcquisitionTime":
        return _seconds(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _position_groups(series: DicomSeries) -> tuple[np.ndarray, list[list[SliceRef]]]:
    """Slices grouped by position along the normal (within DUPLICATE_TOL_MM), ascending."""
    first = series.slices[0]
    normal = np.cross(first.orientation[:3], first.orientation[3:])
    normal /= np.linalg.norm(normal)
    pos = np.array([s.position @ normal for s in series.slices])
    order = np.argsort(pos, kind="stable")
    groups: list[list[SliceRef]] = []
    starts: list[float] = []
    for i in order:
        if groups and pos[i] - starts[-1] < DUPLICATE_TOL_MM:
            groups[-1].append(series.slices[i])
        else:
            groups.append([series.slices[i]])
            starts.append(float(pos[i]))
    return np.array(starts), groups


def split_time_points(series: DicomSeries) -> TimePoints | None:
    """The time points of a series whose slice positions repeat; None when none repeats.

    Every position must hold the same number of slices, and one tag of
    :data:`TEMPORAL_ORDER_TAGS` (the first that qualifies) must be on every slice and differ
    between the slices of each position; otherwise a one-line ConversionError says why (a
    repeated position that nothing orders may be a duplicate file, never guessed).
    """
    positions, groups = _position_groups(series)
    counts = sorted({len(g) for g in groups})
    if counts == [1]:
        return None
    where = _where(series)
    if len(counts) > 1:
        k = next(i for i, g in enumerate(groups) if len(g) != len(groups[0]))
        raise ConversionError(
            f"{where}: {len(groups[0])} slice(s) at {positions[0]:.3f} mm but {len(groups[k])} at {positions[k]:.3f} mm "
            f"({', '.join(s.path.name for s in groups[k][:4])}); expected one slice per position, or the same number "
            f"at every position (a 4D series); remove duplicate or stray files")
    for tag in TEMPORAL_ORDER_TAGS:
        values = [[_temporal_value(series, s, tag) for s in g] for g in groups]
        if all(v is not None for vs in values for v in vs) and all(len(set(vs)) == len(vs) for vs in values):
            break
    else:
        g = groups[0]
        raise ConversionError(
            f"{where}: {len(g)} slices at each position (e.g. {positions[0]:.3f} mm: "
            f"{', '.join(s.path.name for s in g[:4])}) and nothing orders them; expected one slice per position, "
            f"or a 4D series whose slices at one position differ in {' / '.join(TEMPORAL_ORDER_TAGS)}")
    ranked = [[g[i] for i in np.argsort(vs, kind="stable")] for g, vs in zip(groups, values)]
    sorted_values = [sorted(vs) for vs in values]
    n_times = counts[0]
    parts = []
    for t in range(n_times):
        part = DicomSeries(uid=series.uid, number=series.number, description=series.description,
                           modality=series.modality, frame_of_reference=series.frame_of_reference,
                           study_uid=series.study_uid, slices=[g[t] for g in ranked],
                           uid_missing=series.uid_missing)
        part.datasets = {s.path: series.datasets[s.path] for s in part.slices}
        parts.append(part)
    return TimePoints(parts, tag, [[vs[t] for vs in sorted_values] for t in range(n_times)])


def check_series_geometry(series: DicomSeries, on_irregular: str = "error") -> None:
    """:func:`series_geometry`'s checks for a 3D or a 4D series, without reading pixels."""
    time_points = split_time_points(series)
    if time_points is None:
        series_geometry(series, on_irregular)
        return
    _time_point_geometries(time_points, on_irregular)


def _time_point_geometries(time_points: TimePoints, on_irregular: str) -> list[SeriesGeometry]:
    """One geometry per time point; all must be the same grid (one affine for the 4D file)."""
    geometries = [series_geometry(part, on_irregular) for part in time_points.series]
    first = geometries[0]
    for t, geom in enumerate(geometries[1:], start=2):
        if geom.shape != first.shape or not np.allclose(geom.affine, first.affine, atol=POSITION_TOL_MM):
            raise ConversionError(
                f"{_where(time_points.series[t - 1])}: time point {t} lies on another grid ({geom.shape}, origin "
                f"{np.round(geom.affine[:3, 3], 3).tolist()}) than time point 1 ({first.shape}, origin "
                f"{np.round(first.affine[:3, 3], 3).tolist()}); expected every time point on one grid")
    return geometries


def _read_time_points(series: DicomSeries, time_points: TimePoints, on_irregular: str,
                      workers: int = 1) -> ImageData:
    """The time points read as 3D volumes and stacked along a 4th axis ``(i, j, k, t)``."""
    _time_point_geometries(time_points, on_irregular)
    volumes = [read_series(part, on_irregular=on_irregular, workers=workers) for part in time_points.series]
    dtype = np.result_type(*[v.array.dtype for v in volumes])
    array = np.empty(volumes[0].array.shape + (len(volumes),), dtype=dtype, order="F")
    for t, volume in enumerate(volumes):
        array[..., t] = volume.array
    meta = dict(volumes[0].meta)
    meta["files"] = [f for v in volumes for f in v.meta["files"]]
    meta["n_slices_read"] = sum(v.meta["n_slices_read"] for v in volumes)
    meta["rescale"] = [v.meta["rescale"] for v in volumes] if any(
        v.meta["rescale"] != volumes[0].meta["rescale"] for v in volumes) else volumes[0].meta["rescale"]
    meta["time_points"] = {"count": len(volumes), "ordered_by": time_points.ordered_by,
                           "values": time_points.values}
    return ImageData(array, volumes[0].affine, meta=meta)


def read_series_time_point(src: str | os.PathLike | Iterable | DicomSeries, index: int,
                           series_uid: str | None = None, on_irregular: str = "error") -> ImageData:
    """Time point ``index`` (0-based) of a 4D series as a 3D ImageData; only its slices are decoded.

    For converters that give the time points (DCE phases, ...) as named channels:
    ``Source(folder, partial(read_series_time_point, index=t))``.
    """
    series = src if isinstance(src, DicomSeries) else select_series(find_series(src), series_uid, src)
    time_points = split_time_points(series)
    if time_points is None:
        raise ConversionError(f"{_where(series)}: one slice per position (a 3D series); expected a 4D series to take "
                              f"time point {index} from; read it with read_series")
    if not 0 <= index < len(time_points.series):
        raise ConversionError(f"{_where(series)}: time point {index} requested; the series has "
                              f"{len(time_points.series)} (0..{len(time_points.series) - 1})")
    _time_point_geometries(time_points, on_irregular)
    image = read_series(time_points.series[index], on_irregular=on_irregular)
    image.meta["time_points"] = {"index": index + 1, "count": len(time_points.series),
                                 "ordered_by": time_points.ordered_by, "values": time_points.values[index]}
    return image


def time_point_outputs(image: ImageData, target: Path, split: bool) -> list[tuple[ImageData, Path]]:
    """(image, file) pairs to write: the image itself, or with ``split`` one 3D image per time
    point of a 4D image, named ``<stem>_t001.nii.gz`` ... (``t`` 1-based, as DICOM counts)."""
    if not split or image.array.ndim != 4:
        return [(image, target)]
    name = target.name
    suffix = ".nii.gz" if name.lower().endswith(".nii.gz") else target.suffix
    stem = name[: len(name) - len(suffix)]
    info = image.meta["time_points"]
    width = max(3, len(str(info["count"])))
    outputs = []
    for t in range(image.array.shape[3]):
        meta = {**image.meta, "time_points": {"index": t + 1, "count": info["count"], "ordered_by": info["ordered_by"],
                                              "values": info["values"][t]}}
        outputs.append((ImageData(image.array[..., t], image.affine, meta=meta),
                        target.with_name(f"{stem}_t{t + 1:0{width}d}{suffix}")))
    return outputs


__all__ = [
    "DicomSeries", "ScanResult", "SeriesGeometry", "SliceRef", "TEMPORAL_ORDER_TAGS", "TimePoints",
    "check_series_geometry", "dataset_kind", "dicom_to_nifti", "find_series", "is_dicom_file", "read_dataset",
    "read_series", "read_series_time_point", "scan", "select_series", "series_geometry", "split_time_points",
    "time_point_outputs",
]
