"""RTSTRUCT -> masks: the pixel-centre rule, holes, slice placement, rt-utils, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from omnimedseg.converters.formats.dicom import find_series, read_series, series_geometry
from omnimedseg.converters.formats.rtstruct import rasterize_polygons, read_rtstruct, rtstruct_to_masks
from omnimedseg.errors import ConversionError
from tests.formats.test_dicom import AXIAL, oblique_iop, stack, write_series

RTSTRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"

# rt-utils uses pydicom attributes pydicom 3 deprecates; highdicom warns about the phantom's one-part name.
pytestmark = [pytest.mark.filterwarnings("ignore:'FileDataset.is_:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:The string .* is unlikely to represent:UserWarning")]


# --------------------------------------------------------------------------- helpers

def pnpoly(polys, shape):
    """Independent reference: W. R. Franklin's even-odd point-in-polygon test at every pixel centre."""
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(float)
    inside = np.zeros(shape, bool)
    for poly in polys:
        poly = np.asarray(poly, float)
        j = len(poly) - 1
        for i in range(len(poly)):
            (xi, yi), (xj, yj) = poly[i], poly[j]
            with np.errstate(divide="ignore", invalid="ignore"):
                cross = ((yi > yy) != (yj > yy)) & (xx < (xj - xi) * (yy - yi) / (yj - yi) + xi)
            inside ^= cross
            j = i
    return inside


def pixel_to_lps(files_by_k, k, points):
    """(col, row) pixel coordinates on slice k -> LPS mm, from the slice's own header."""
    ds = pydicom.dcmread(files_by_k[k], stop_before_pixels=True)
    iop = np.array(ds.ImageOrientationPatient, float)
    ipp = np.array(ds.ImagePositionPatient, float)
    ps_row, ps_col = (float(v) for v in ds.PixelSpacing)
    pts = np.asarray(points, float)
    return ipp + pts[:, :1] * ps_col * iop[:3] + pts[:, 1:2] * ps_row * iop[3:]


def make_rtstruct(path: Path, series_files: list[Path], rois: dict[str, list[tuple[int, list]]],
                  series_uid: str | None = None, frame_uid: str | None = None, ctype="CLOSED_PLANAR",
                  z_offset=0.0, with_refs=True, in_mm=False) -> Path:
    """An RTSTRUCT (pydicom) with, per ROI, contours given as (slice file index, pixel polygon);
    ``in_mm``: the polygons are (x, y) patient mm instead, put at the z of the slice's ImagePositionPatient."""
    first = pydicom.dcmread(series_files[0], stop_before_pixels=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT_SOP
    meta.MediaStorageSOPInstanceUID = sop = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = RTSTRUCT_SOP, sop, "RTSTRUCT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = first.StudyInstanceUID, generate_uid()
    ds.StructureSetLabel = "test"
    frame_uid = frame_uid or first.FrameOfReferenceUID
    sops = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in series_files]
    ser = Dataset()
    ser.SeriesInstanceUID = series_uid or first.SeriesInstanceUID
    study = Dataset()
    study.RTReferencedSeriesSequence = Sequence([ser])
    fr = Dataset()
    fr.FrameOfReferenceUID = frame_uid
    fr.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([fr])
    ds.StructureSetROISequence, ds.ROIContourSequence, ds.RTROIObservationsSequence = Sequence(), Sequence(), Sequence()
    for number, (name, contours) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = number, name, frame_uid
        ds.StructureSetROISequence.append(roi)
        rc = Dataset()
        rc.ReferencedROINumber, rc.ROIDisplayColor = number, [255, 0, 0]
        seq = Sequence()
        for k, poly in contours:
            c = Dataset()
            c.ContourGeometricType = ctype
            pts = (np.column_stack([np.asarray(poly, float), np.full(len(poly), float(_slice_z(series_files[k])))])
                   if in_mm else pixel_to_lps(series_files, k, poly)) + np.array([0, 0, z_offset])
            c.NumberOfContourPoints = len(pts)
            c.ContourData = [f"{v:.6f}" for v in pts.ravel()]
            if with_refs:
                ref = Dataset()
                ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = first.SOPClassUID, sops[k]
                c.ContourImageSequence = Sequence([ref])
            seq.append(c)
        if contours:
            rc.ContourSequence = seq
        ds.ROIContourSequence.append(rc)
        obs = Dataset()
        obs.ObservationNumber, obs.ReferencedROINumber, obs.RTROIInterpretedType = number, number, "ORGAN"
        ds.RTROIObservationsSequence.append(obs)
    ds.save_as(path, enforce_file_format=True)
    return path


def _slice_z(path) -> float:
    return float(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient[2])


def rowcol(mask):
    """Our (i, j, k) mask -> (row, col, k) like rt-utils."""
    return mask[:, ::-1, :].transpose(1, 0, 2)


def square(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


# --------------------------------------------------------------------------- the fill rule

def test_squares_on_pixel_edges_fill_exactly():
    mask = rasterize_polygons([square(1.5, 2.5, 4.5, 6.5)], (10, 8))
    expected = np.zeros((10, 8), bool)
    expected[3:7, 2:5] = True  # centres x in 2..4, y in 3..6
    assert np.array_equal(mask, expected)


def test_centres_on_edges_follow_the_top_left_rule():
    mask = rasterize_polygons([square(2, 2, 5, 5)], (8, 8))
    expected = np.zeros((8, 8), bool)
    expected[2:5, 2:5] = True  # left/top edge centres in, right/bottom out
    assert np.array_equal(mask, expected)
    left = rasterize_polygons([square(1, 1, 4, 6)], (8, 8))
    right = rasterize_polygons([square(4, 1, 7, 6)], (8, 8))
    assert not (left & right).any()  # a shared edge is claimed once
    assert np.array_equal(left | right, rasterize_polygons([square(1, 1, 7, 6)], (8, 8)))


def test_nested_contour_is_a_hole():
    outer, inner = square(0.5, 0.5, 9.5, 9.5), square(3.5, 3.5, 6.5, 6.5)
    mask = rasterize_polygons([outer, inner[::-1]], (11, 11))
    expected = np.zeros((11, 11), bool)
    expected[1:10, 1:10] = True
    expected[4:7, 4:7] = False
    assert np.array_equal(mask, expected)
    island = rasterize_polygons([outer, inner, square(4.5, 4.5, 5.5, 5.5)], (11, 11))
    assert island[5, 5] and not island[4, 4]  # a contour inside the hole is filled again


@pytest.mark.parametrize("seed", range(6))
def test_random_polygons_match_point_in_polygon(seed):
    rng = np.random.default_rng(seed)
    polys = []
    for _ in range(rng.integers(1, 4)):
        n = rng.integers(3, 30)
        angles = np.sort(rng.uniform(0, 2 * np.pi, n)) if seed % 2 else rng.uniform(0, 2 * np.pi, n)
        radius = rng.uniform(3, 25, n)
        centre = rng.uniform(-5, 45, 2)  # partly outside the image too
        polys.append(np.stack([centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)], 1))
    assert np.array_equal(rasterize_polygons(polys, (40, 37)), pnpoly(polys, (40, 37)))


# --------------------------------------------------------------------------- generated RTSTRUCTs

@pytest.mark.parametrize("geometry", ["axial_descending", "oblique_non_square"])
def test_generated_rtstruct_exact_on_any_geometry(tmp_path, geometry):
    if geometry == "axial_descending":
        files = write_series(tmp_path / "ct", AXIAL, [[-10, -20, 5 - 2 * k] for k in range(5)], shape=(30, 40))
    else:
        files = write_series(tmp_path / "ct", oblique_iop(0.4), stack(oblique_iop(0.4), 5, 2.5), shape=(30, 40),
                             spacing=(0.5, 0.9))
    outer, hole = square(4.5, 3.5, 30.5, 20.5), square(10.5, 8.5, 20.5, 14.5)
    rt = make_rtstruct(tmp_path / "rt.dcm", files, {
        "body": [(1, outer), (1, hole), (3, square(0.5, 0.5, 5.5, 5.5))],
        "tiny": [(4, square(36.5, 27.5, 39.5, 29.5))],
        "nothing": [],
    })
    masks = read_rtstruct(rt, tmp_path / "ct")
    assert list(masks) == ["body", "tiny", "nothing"]
    image = read_series(tmp_path / "ct")
    geom = series_geometry(find_series(tmp_path / "ct")[0])
    k_of_file = {s.path: k for k, s in enumerate(geom.slices)}
    expected = np.zeros((30, 40, 5), bool)
    expected[4:21, 5:31, k_of_file[files[1]]] = True
    expected[9:15, 11:21, k_of_file[files[1]]] = False
    expected[1:6, 1:6, k_of_file[files[3]]] = True
    body = masks["body"]
    assert np.array_equal(body.affine, image.affine) and body.array.shape == image.array.shape
    assert np.array_equal(rowcol(body.array), expected)
    assert body.meta["contour_slices"] == sorted([k_of_file[files[1]], k_of_file[files[3]]])
    tiny = np.zeros_like(expected)
    tiny[28:30, 37:40, k_of_file[files[4]]] = True
    assert np.array_equal(rowcol(masks["tiny"].array), tiny)
    assert masks["nothing"].meta["empty"] and not masks["nothing"].array.any()


def test_closed_planar_xor_and_missing_image_references(tmp_path):
    files = write_series(tmp_path / "ct", AXIAL, [[0, 0, 2 * k] for k in range(3)], shape=(20, 20))
    rt = make_rtstruct(tmp_path / "rt.dcm", files, {"r": [(1, square(1.5, 1.5, 15.5, 15.5)),
                                                          (1, square(5.5, 5.5, 9.5, 9.5))]},
                       ctype="CLOSEDPLANAR_XOR", with_refs=False)
    mask = rowcol(read_rtstruct(rt, tmp_path / "ct")["r"].array)[:, :, 1]
    assert mask.sum() == 14 * 14 - 4 * 4 and not mask[7, 7]


def test_rtutils_generated_rtstruct_with_hole(tmp_path):
    """rt-utils writes contours through the centres of the boundary pixels (OpenCV findContours).
    Under the pixel-centre rule exactly those centres are on the outline, so the right/bottom
    boundary pixels (and the ring round a hole) are not claimed: ours is a subset of the
    painted mask and every missing pixel's centre lies on the outline (distance 0)."""
    rt_utils = pytest.importorskip("rt_utils")
    write_series(tmp_path / "ct", AXIAL, [[-10, -20, 5 + 2 * k] for k in range(4)], shape=(48, 48),
                 spacing=(0.7, 0.7))
    painted = np.zeros((48, 48, 4), bool)
    painted[5:30, 10:40, 1] = True
    painted[12:20, 18:30, 1] = False
    painted[8:15, 8:20, 2] = True
    builder = rt_utils.RTStructBuilder.create_new(dicom_series_path=str(tmp_path / "ct"))
    builder.add_roi(mask=painted, name="ring")
    builder.save(str(tmp_path / "rt.dcm"))
    ours = rowcol(read_rtstruct(tmp_path / "rt.dcm", tmp_path / "ct")["ring"].array)
    assert not (ours & ~painted).any()
    assert not ours[13:19, 19:29, 1].any()  # the hole stays a hole
    missing = np.argwhere(painted & ~ours)
    ds = pydicom.dcmread(tmp_path / "rt.dcm")
    geom = series_geometry(find_series(tmp_path / "ct")[0])
    for row, col, k in missing:
        outlines = [geom.lps_to_pixel(np.reshape(c.ContourData, (-1, 3)).astype(float), k)[:, :2]
                    for c in ds.ROIContourSequence[0].ContourSequence
                    if geom.index_of_position(np.asarray(c.ContourData[:3], float)) == k]
        assert min(distance_to_outline(np.array([[col, row]], float), o)[0] for o in outlines) < 1e-6
    dice = 2 * (ours & painted).sum() / (ours.sum() + painted.sum())
    assert dice > 0.9


def test_rtutils_swaps_pixel_spacing_on_non_square_pixels(tmp_path):
    """Disagreement explained: rt-utils scales the row direction (x here) by PixelSpacing[0], which
    DICOM defines as the spacing *between rows* (along the column direction). Its writer and reader
    share the swap, so its own round trip looks fine, but the contours it writes sit at the wrong
    world x; read by the standard (as we and dcm2niix do) the ROI lands elsewhere. Our reading of
    correctly written contours is exact (test_generated_rtstruct_exact_on_any_geometry)."""
    rt_utils = pytest.importorskip("rt_utils")
    write_series(tmp_path / "ct", AXIAL, [[0, 0, 2 * k] for k in range(3)], shape=(40, 40), spacing=(0.5, 0.9))
    painted = np.zeros((40, 40, 3), bool)
    painted[5:12, 20:35, 1] = True
    builder = rt_utils.RTStructBuilder.create_new(dicom_series_path=str(tmp_path / "ct"))
    builder.add_roi(mask=painted, name="r")
    builder.save(str(tmp_path / "rt.dcm"))
    assert np.array_equal(builder.get_roi_mask_by_name("r"), painted)  # self-consistent
    x = np.reshape(pydicom.dcmread(tmp_path / "rt.dcm").ROIContourSequence[0].ContourSequence[0].ContourData,
                   (-1, 3))[:, 0].astype(float)
    assert (x.min(), x.max()) == pytest.approx((20 * 0.5, 34 * 0.5))  # standard: (20 * 0.9, 34 * 0.9)
    ours = rowcol(read_rtstruct(tmp_path / "rt.dcm", tmp_path / "ct")["r"].array)
    assert ours[:, :, 1].any(axis=0).nonzero()[0].max() < 20  # lands at columns ~11-19, not 20-34


def distance_to_outline(points, poly):
    a, b = poly, np.roll(poly, -1, axis=0)
    ab = b - a
    t = np.clip(((points[:, None] - a[None]) * ab[None]).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12)[None], 0, 1)
    return np.sqrt(((points[:, None] - (a[None] + t[..., None] * ab[None])) ** 2).sum(-1)).min(1)


# --------------------------------------------------------------------------- real phantom

def test_real_phantom_rtstruct_against_rtutils(realdata):
    """Each ROI on the MIM phantom: contours on slices 0-2 only; ours is a subset of rt-utils'
    mask (Dice >= 0.97) and every pixel only rt-utils claims has its centre within half a pixel
    of the contour: rt-utils rounds vertices to whole pixels and paints the outline pixels
    (cv2.fillPoly), the pixel-centre rule claims only pixels whose centre is inside."""
    rt_utils = pytest.importorskip("rt_utils")
    src = realdata("rtutils_phantom_rtstruct") / "sample"
    masks = read_rtstruct(src / "rt.dcm", src)
    assert list(masks) == ["ROI-1", "ROI-2", "ROI-3", "ROI-4"]
    image = read_series(src)
    reference = rt_utils.RTStructBuilder.create_from(dicom_series_path=str(src), rt_struct_path=str(src / "rt.dcm"))
    ds = pydicom.dcmread(src / "rt.dcm")
    geom = series_geometry(find_series(src)[0])
    for (name, mask), item in zip(masks.items(), ds.ROIContourSequence):
        assert np.array_equal(mask.affine, image.affine)
        ours, ref = rowcol(mask.array), reference.get_roi_mask_by_name(name)
        assert mask.meta["contour_slices"] == [0, 1, 2] and not ours[:, :, 3:].any()
        assert not (ours & ~ref).any()
        dice = 2 * (ours & ref).sum() / (ours.sum() + ref.sum())
        assert dice >= 0.97, (name, dice)
        for c in item.ContourSequence:
            pts = np.reshape(c.ContourData, (-1, 3)).astype(float)
            k = geom.index_of_position(pts[0])
            only = np.argwhere(ref[:, :, k] & ~ours[:, :, k])[:, ::-1].astype(float)
            if len(only):
                assert distance_to_outline(only, geom.lps_to_pixel(pts, k)[:, :2]).max() <= 0.5 + 1e-6


def test_real_phantom_to_nifti_files(realdata, tmp_path):
    import nibabel as nib

    src = realdata("rtutils_phantom_rtstruct") / "sample"
    summary = rtstruct_to_masks(src / "rt.dcm", src, tmp_path / "out")
    assert [m["file"] for m in summary["masks"]] == [f"ROI-{i}.nii.gz" for i in range(1, 5)]
    assert (tmp_path / "out" / "summary.json").is_file()
    masks = read_rtstruct(src / "rt.dcm", src)
    for m in summary["masks"]:
        img = nib.load(tmp_path / "out" / m["file"])
        assert img.get_data_dtype() == np.uint8
        assert np.array_equal(np.asanyarray(img.dataobj).astype(bool), masks[m["key"]].array)
        assert m["voxels"] == int(masks[m["key"]].array.sum()) > 0


# --------------------------------------------------------------------------- bad input

def copy_phantom(realdata, tmp_path) -> Path:
    src = realdata("rtutils_phantom_rtstruct") / "sample"
    dst = tmp_path / "sample"
    shutil.copytree(src, dst)
    return dst


def test_rtstruct_without_contours(realdata, tmp_path):
    folder = copy_phantom(realdata, tmp_path)
    ds = pydicom.dcmread(folder / "rt.dcm")
    for item in ds.ROIContourSequence:
        del item.ContourSequence
    ds.save_as(tmp_path / "empty_rt.dcm")
    with pytest.raises(ConversionError) as err:
        read_rtstruct(tmp_path / "empty_rt.dcm", folder)
    message = str(err.value)
    assert str(tmp_path / "empty_rt.dcm") in message and "4 ROIs and 0 contours" in message and "\n" not in message


def test_rtstruct_referencing_another_series(realdata, tmp_path):
    phantom = realdata("rtutils_phantom_rtstruct") / "sample"
    other = realdata("totalseg_ct_dicom")
    with pytest.raises(ConversionError) as err:
        read_rtstruct(phantom / "rt.dcm", other)
    message = str(err.value)
    assert "references series 2.16.840.1.114362.1.11940992.23790159890.563423471.893.88" in message
    assert "CT Body 3.0" in message and str(phantom / "rt.dcm") in message


def test_contour_between_slices_and_wrong_frame_of_reference(tmp_path):
    files = write_series(tmp_path / "ct", AXIAL, [[0, 0, 2 * k] for k in range(3)], shape=(20, 20))
    rt = make_rtstruct(tmp_path / "rt.dcm", files, {"r": [(1, square(1.5, 1.5, 5.5, 5.5))]}, z_offset=0.9,
                       with_refs=False)
    with pytest.raises(ConversionError, match=r"ROI 1 'r' contour 1 lies 0.900 mm from the nearest slice"):
        read_rtstruct(rt, tmp_path / "ct")
    rt = make_rtstruct(tmp_path / "rt2.dcm", files, {"r": [(1, square(1.5, 1.5, 5.5, 5.5))]}, frame_uid="1.2.3")
    with pytest.raises(ConversionError, match="frame of reference 1.2.3"):
        read_rtstruct(rt, tmp_path / "ct")


def test_not_an_rtstruct(realdata):
    src = realdata("rtutils_phantom_rtstruct") / "sample"
    ct = sorted(src.glob("2.*.dcm"))[0]
    with pytest.raises(ConversionError, match="expected an RT Structure Set"):
        read_rtstruct(ct, src)
