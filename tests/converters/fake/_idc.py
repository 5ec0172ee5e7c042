"""Small real DICOM in the layout IDC serves: ``<crdc_series_uuid>/<instance uuid>.dcm`` + the index.

The fake CTs carry anatomy, not one value per slice: structures are polygons in patient
coordinates (LPS mm), every pixel takes the HU of the structure its centre lies in (computed with
the DICOM equation, PS3.3 C.7.6.2.1.1), and the SEG frames / RTSTRUCT contours are made from the
same polygons. So a converter that flips, transposes or shifts masks against the CT, or maps
contour points to voxels wrongly, puts masks on the wrong HU values.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from pydicom.uid import generate_uid

from omnimedseg.downloaders.emulators.idc import INDEX_NAME, index_row, write_index
from tests.formats.dicom_slices import ct_slice


@dataclass(frozen=True)
class Grid:
    """The in-plane pixel grid of a fake CT series: non-square pixels, an origin away from 0, a patient position.

    ``origin``: ImagePositionPatient x, y (mm) of the centre of pixel (row 0, column 0);
    ``spacing``: PixelSpacing = (between rows, between columns) mm.
    """

    shape: tuple[int, int] = (20, 24)  # (Rows, Columns)
    spacing: tuple[float, float] = (0.7, 0.9)
    orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    origin: tuple[float, float] = (-186.35, -139.65)
    patient_position: str = "HFS"

    def position(self, z: float) -> list[float]:
        return [self.origin[0], self.origin[1], float(z)]

    def centres(self, z: float) -> np.ndarray:
        """(rows, cols, 3) LPS mm of every pixel centre: P = S + X * col spacing * c + Y * row spacing * r
        (PS3.3 C.7.6.2.1.1, written out here independently of the converters)."""
        rows, cols = np.mgrid[0:self.shape[0], 0:self.shape[1]].astype(float)
        x_dir, y_dir = np.asarray(self.orientation[:3]), np.asarray(self.orientation[3:])
        return (np.asarray(self.position(z))
                + (cols * self.spacing[1])[..., None] * x_dir + (rows * self.spacing[0])[..., None] * y_dir)


# Axial head-first supine (LCTSC, HCC-TACE-Seg) and, for a second patient, head-first prone:
# IOP (-1,0,0, 0,-1,0) flips both in-plane axes yet keeps the slice normal along +z. Both grids
# cover about the same patient area around (-176, -133) mm, shifted by a fraction of a pixel.
HFS = Grid()
HFP = Grid(orientation=(-1.0, 0.0, 0.0, 0.0, -1.0, 0.0), origin=(-165.4, -126.2), patient_position="HFP")

AIR_HU = -1000


def edge_x(n: int) -> float:
    """x (mm) of a vertical outline between HFS columns n and n + 1, 0.325 mm or more from every pixel
    centre of both grids (HFS centres at -186.35 + 0.9 c, HFP centres 0.25 mm further along, modulo 0.9)."""
    return -185.775 + 0.9 * n


def edge_y(m: int) -> float:
    """y (mm) of a horizontal outline between HFS rows m and m + 1, 0.275 mm or more from every pixel
    centre of both grids (HFS centres at -139.65 + 0.7 r, HFP centres 0.15 mm further along, modulo 0.7)."""
    return -139.225 + 0.7 * m


def outline(*corners: tuple[int, int]) -> list[tuple[float, float]]:
    """A polygon in mm with axis-aligned sides from (n, m) outline indices (see :func:`edge_x`)."""
    return [(edge_x(n), edge_y(m)) for n, m in corners]


def box(n0: int, m0: int, n1: int, m1: int) -> list[tuple[float, float]]:
    return outline((n0, m0), (n1, m0), (n1, m1), (n0, m1))


def inside(polygon, points: np.ndarray, pixel_centres: bool = True) -> np.ndarray:
    """Which ``points`` (..., 3) LPS mm lie inside ``polygon`` [(x, y), ...] (even-odd rule).

    For ``pixel_centres`` of a fixture, a point within 0.05 mm of the outline is an error of the
    fixture: then the rasterization rule, not the geometry, would decide, and the painted CT and
    the masks could legitimately differ.
    """
    poly = np.asarray(polygon, float)
    x, y = points[..., 0], points[..., 1]
    result = np.zeros(x.shape, bool)
    nearest = np.full(x.shape, np.inf)
    for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, axis=0)):
        with np.errstate(divide="ignore", invalid="ignore"):
            result ^= ((y0 > y) != (y1 > y)) & (x < x0 + (y - y0) * (x1 - x0) / (y1 - y0))
        t = np.clip(((x - x0) * (x1 - x0) + (y - y0) * (y1 - y0)) / ((x1 - x0) ** 2 + (y1 - y0) ** 2), 0, 1)
        nearest = np.minimum(nearest, np.hypot(x - x0 - t * (x1 - x0), y - y0 - t * (y1 - y0)))
    assert not pixel_centres or nearest.min() >= 0.05, \
        f"fixture polygon {polygon} passes within 0.05 mm of a pixel centre"
    return result


def paint(grid: Grid, z: float, structures: list[tuple[float, list]]) -> tuple[np.ndarray, list[np.ndarray]]:
    """HU plane at ``z`` and the (rows, cols) mask of each structure: air, then each (HU, polygon or None)
    painted over the earlier ones (None: the structure is absent from this slice)."""
    centres = grid.centres(z)
    hu = np.full(grid.shape, AIR_HU, dtype=np.int16)
    masks = []
    for value, polygon in structures:
        mask = inside(polygon, centres) if polygon is not None else np.zeros(grid.shape, bool)
        hu[mask] = value
        masks.append(mask)
    return hu, masks


def series_uuid(series_uid: str) -> str:
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_OID, series_uid))


def instance_name(sop_uid: str) -> str:
    return f"{uuidlib.uuid5(uuidlib.NAMESPACE_URL, sop_uid)}.dcm"


def write_ct(root: Path, patient_id: str, study_uid: str, frame_uid: str, z_positions: list[float],
             acquisitions: list[int], description: str, number: int,
             hu: Callable[[int, int], np.ndarray] | None = None, grid: Grid = HFS) -> tuple[str, list[list[Path]]]:
    """A CT series whose acquisitions repeat the same slice positions on ``grid``.

    ``hu(acquisition, k)``: the (rows, cols) HU plane of slice k (ascending z); without it every
    pixel of a slice is 100 * acquisition + k - 1024 HU. Returns the Series Instance UID and, per
    acquisition, its files in slice order (ascending z).
    """
    series_uid = generate_uid()
    folder = root / series_uuid(series_uid)
    folder.mkdir(parents=True)
    out = []
    for acq in acquisitions:
        files = []
        for k, z in enumerate(z_positions):
            ds = ct_slice(study_uid, series_uid, frame_uid, number=number, description=description,
                          patient_id=patient_id, patient_name=patient_id, study_date="19991130")
            sop = ds.SOPInstanceUID
            ds.AcquisitionNumber = acq
            ds.InstanceNumber = (acq - 1) * len(z_positions) + k + 1
            ds.PatientPosition = grid.patient_position
            ds.ImagePositionPatient = grid.position(z)
            ds.ImageOrientationPatient = list(grid.orientation)
            ds.PixelSpacing = list(grid.spacing)
            ds.SliceThickness = 2.5
            ds.Rows, ds.Columns = grid.shape
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
            plane = np.full(grid.shape, 100 * acq + k - 1024) if hu is None else hu(acq, k)
            ds.PixelData = (np.asarray(plane) + 1024).astype(np.int16).tobytes()
            path = folder / instance_name(sop)
            ds.save_as(path, enforce_file_format=True)
            files.append(path)
        out.append(files)
    return series_uid, out


def write_fake_index(root: Path, rows: list[dict]) -> None:
    write_index(root / INDEX_NAME, rows)


def row_for(folder: Path, collection: str, patient_id: str, series_uid: str, modality: str, **columns) -> dict:
    return index_row(collection, patient_id, series_uid, modality, len(list(folder.iterdir())),
                     series_uuid(series_uid), **columns)


def expected_volume(planes: np.ndarray) -> np.ndarray:
    """(k ascending z, row, col) planes -> the converter's (i, j, k) layout (rows reversed)."""
    return planes[:, ::-1, :].transpose(2, 1, 0)


def download_and_convert(dataset_id: str, make_remote_files, tmp_path: Path):
    """Fake IDC release -> bucket emulator -> real IDC downloader -> convert -> validate.

    The card's real series pins are replaced by the fake release's series (the index rows its
    record filter selects), pinned from the generated folders as ``registry lock`` would.
    Returns (what the generator reported, raw folder, output folder).
    """
    from dataclasses import replace

    from omnimedseg.converters._run import convert_dataset
    from omnimedseg.converters._validate import validate_converted
    from omnimedseg.downloaders import download_dataset
    from omnimedseg.downloaders.idc import parse_record, read_index
    from omnimedseg.registry import RemoteFile, load_registry
    from omnimedseg.testing import pin_to_files, served_by_emulator

    remote = tmp_path / "remote"
    remote.mkdir()
    truth = make_remote_files(remote)
    card = load_registry().get(dataset_id)
    rows = read_index(remote / INDEX_NAME, *parse_record(card.source.record))
    fake = tuple(RemoteFile(f"{r['crdc_series_uuid']}/", None, {}, unpinned="fake release") for r in rows)
    card = pin_to_files(replace(card, source=replace(card.source, files=fake)), remote)
    root = tmp_path / "root"
    with served_by_emulator(card, remote) as served:
        raw = download_dataset(served, root)
    out = convert_dataset(card, root)
    report = validate_converted(out, raw)
    assert report.ok, "\n".join(report.problems)
    return truth, raw, out


def assert_masks_on_their_structures(image_path: Path, mask_paths: dict[str, Path], order: list[str],
                                     painted: Callable[[str, int], int], polygon: Callable[[str, int], list | None],
                                     z_positions: list[float]) -> None:
    """In-plane alignment of a converted case, read back from its NIfTI files by values and positions.

    ``order``: the classes in painting order (a later one covers an earlier one, the tumour the liver);
    ``painted(class, k)``: the HU painted for it on slice k; ``polygon(class, k)``: its outline (mm).
    Checks that the image and masks share one grid, that every voxel of a mask not covered by a later
    class holds the painted HU while no voxel just outside it (4-neighbours in plane) does, and that
    every mask voxel, placed in patient space by the NIfTI affine (RAS -> LPS), lies inside the
    structure's polygon at its slice's z.
    """
    import nibabel as nib
    from scipy import ndimage

    image = nib.load(image_path)
    values = np.asarray(image.dataobj)
    masks = {}
    for name in order:
        loaded = nib.load(mask_paths[name])
        assert loaded.shape == image.shape and np.allclose(loaded.affine, image.affine, atol=1e-4), \
            (name, loaded.shape, image.shape, loaded.affine, image.affine)
        masks[name] = np.asarray(loaded.dataobj).astype(bool)
    cross = np.zeros((3, 3, 3), bool)
    cross[:, 1, 1] = cross[1, :, 1] = True  # in-plane 4-neighbourhood, never across slices
    for i, name in enumerate(order):
        mask = masks[name]
        own = mask & ~np.any([masks[later] for later in order[i + 1:]] or [np.zeros_like(mask)], axis=0)
        ring = ndimage.binary_dilation(mask, cross) & ~mask
        for k in range(mask.shape[2]):
            assert mask[..., k].any() == (polygon(name, k) is not None), (name, k)
            if not mask[..., k].any():
                continue
            value = painted(name, k)
            inner, outer = values[..., k][own[..., k]], values[..., k][ring[..., k]]
            assert inner.size and np.all(inner == value), (name, k, value, np.unique(inner))
            assert outer.size and not np.any(outer == value), (name, k, value, np.unique(outer))
        ijk = np.argwhere(mask)
        lps = nib.affines.apply_affine(image.affine, ijk) * [-1.0, -1.0, 1.0]
        for k in np.unique(ijk[:, 2]):
            points = lps[ijk[:, 2] == k]
            assert np.allclose(points[:, 2], z_positions[k], atol=1e-3), (name, k, points[:, 2])
            assert np.all(inside(polygon(name, int(k)), points, pixel_centres=False)), (name, k, "off its outline")
