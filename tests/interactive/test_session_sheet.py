"""Interaction sheets of volumes are drawn in QA's radiological view: image, masks and every prompt move
together, and each panel placement says exactly where an array voxel is drawn."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from omnimedseg.data.display import display_plane, radiological_view, to_ras
from omnimedseg.errors import UsageError
from omnimedseg.interactive.contact_sheet import NEGATIVE, POSITIVE, SessionPanel, _to_rgb, session_sheet
from omnimedseg.interactive.prompts import Box, Click, NoInteraction, Polygon, Scribble

# stored (I, L, A) with anisotropic voxels: a sagittal-like storage order, every axis permuted, one flipped
PERMUTED = np.array([[0, -0.8, 0, 10.0], [0, 0, 1.2, -5.0], [-2.5, 0, 0, 40.0], [0, 0, 0, 1]])
# stored (L, P, S) like real DICOM-derived volumes
LPS = np.diag([-1.5, -1.5, 2.0, 1.0])


def _qa_pixel(coord, shape, affine):
    """(axial RAS slice, row, column) where QA's own transform (nibabel reorientation + display_plane) shows
    voxel ``coord`` of an array stored with ``affine``."""
    one_hot = np.zeros(shape, np.uint8)
    one_hot[tuple(coord)] = 1
    ras = to_ras(one_hot, affine)[0]
    k = int(np.argwhere(ras)[0][2])
    (row, col), = np.argwhere(display_plane(ras, "axial", k))
    return k, int(row), int(col)


def _case(affine, shape, rng):
    """A noisy volume with a blob reference, prompts of every kind on one axial slice (each at its own place)
    and a bright marker at that slice's patient right-anterior corner."""
    s_axis = [c in "SI" for c in nib.aff2axcodes(affine)].index(True)
    p_axis, q_axis = (a for a in range(3) if a != s_axis)
    k = shape[s_axis] // 2

    def at(fp, fq, s=k):
        coord = [0, 0, 0]
        coord[s_axis] = s
        coord[p_axis], coord[q_axis] = round(fp * (shape[p_axis] - 1)), round(fq * (shape[q_axis] - 1))
        return tuple(coord)

    image = rng.normal(100, 20, shape)
    reference = np.zeros(shape, bool)
    reference[tuple(slice(n // 3, 2 * n // 3 + 1) for n in shape)] = True
    in_plane = [at(fp, fq) for fp in (0, 1) for fq in (0, 1)]
    world = [(affine @ [*c, 1])[:2].sum() for c in in_plane]  # x + y: highest at patient right-anterior
    marker = in_plane[int(np.argmax(world))]
    image[marker] = 10_000
    scribble = np.array([at(fp, 0.25) for fp in np.linspace(0.45, 0.55, 4)])
    polygon_full = [at(0.2, 0.6), at(0.35, 0.7), at(0.2, 0.8)]
    prompts = [
        Click(coord=at(0.2, 0.2), positive=True),
        Scribble(coords=scribble, shape=shape, positive=True, slice_axis=s_axis, slice_index=k),
        Box(lo=at(0.65, 0.6, k - 1), hi=at(0.85, 0.8, k + 1), positive=False),
        Polygon(vertices=[[c[p_axis], c[q_axis]] for c in polygon_full], positive=True, slice_axis=s_axis,
                slice_index=k),
        Click(coord=at(0.45, 0.8), positive=True),
    ]
    return image, reference, prompts, marker, scribble, polygon_full


def _panels(prompts, reference):
    steps = [SessionPanel(i, tuple(prompts[:i + 1]), p, reference, 0.5) for i, p in enumerate(prompts)]
    return [*steps, SessionPanel(len(prompts), tuple(prompts), NoInteraction(), reference, 0.5)]


@pytest.mark.parametrize("affine, shape", [(PERMUTED, (12, 40, 30)), (LPS, (36, 28, 9))], ids=["ILA", "LPS"])
def test_volume_sheet_is_radiological_and_prompts_move_with_the_image(affine, shape, tmp_path):
    image, reference, prompts, marker, scribble, polygon_full = _case(affine, shape, np.random.default_rng(0))
    path, placed = session_sheet(image, reference, _panels(prompts, reference), tmp_path / "s.png",
                                 heading="t", affine=affine)
    sheet = np.asarray(Image.open(path).convert("RGB"))
    last = placed[-1]  # every prompt, no white ring
    k, _, _ = _qa_pixel(prompts[0].coord, shape, affine)
    assert [p.slice for p in placed] == [k] * len(placed)  # the RAS index QA prints, on every panel
    assert last.view.plane == "axial"

    def qa_xy(coord):
        _, row, col = _qa_pixel(coord, shape, affine)
        return last.x + (col + 0.5) * last.zoom[1], last.y + (row + 0.5) * last.zoom[0]

    def colour_at(xy):
        return sheet[int(xy[1]), int(xy[0])].tolist()

    # the image is QA's axial plane of the RAS volume, pixel for pixel, at the voxel spacing's aspect
    expected = np.asarray(_to_rgb(display_plane(to_ras(image, affine)[0], "axial", k)))
    rows, cols = expected.shape[:2]
    ys = (last.y + (np.arange(rows) + 0.5) * last.zoom[0]).astype(int)
    xs = (last.x + (np.arange(cols) + 0.5) * last.zoom[1]).astype(int)
    drawn = sheet[np.ix_(ys, xs)]
    grey = (drawn == drawn[..., :1]).all(-1)  # not under an overlay or a prompt
    assert grey.mean() > 0.6 and np.array_equal(drawn[grey], expected[grey])
    row_mm, col_mm = to_ras(image, affine)[1][1], to_ras(image, affine)[1][0]  # axial rows = A, columns = R
    assert last.zoom[0] / last.zoom[1] == pytest.approx(row_mm / col_mm)
    # the bright voxel at the patient's right-anterior corner is the top-left pixel, as on QA sheets
    assert last.sheet_xy(marker) == pytest.approx((last.x + 0.5 * last.zoom[1], last.y + 0.5 * last.zoom[0]))
    assert colour_at(last.sheet_xy(marker)) == [255, 255, 255]
    # every prompt is drawn where QA shows its voxels, and placements say so
    for click in (prompts[0], prompts[4]):
        assert last.sheet_xy(click.coord) == pytest.approx(qa_xy(click.coord)) and last.shows(click.coord)
        assert colour_at(last.sheet_xy(click.coord)) == list(POSITIVE)
        assert colour_at(placed[0].sheet_xy(prompts[0].coord)) == list(POSITIVE)
    for voxel in scribble:
        assert colour_at(qa_xy(voxel)) == list(POSITIVE)
    for vertex in polygon_full:
        assert colour_at(qa_xy(vertex)) == list(POSITIVE)
    # the box (the only negative prompt): its outline runs along the far sides of its extreme voxels on the slice
    box, s_axis = prompts[2], [c in "SI" for c in nib.aff2axcodes(affine)].index(True)
    corners = [qa_xy([k_array if a == s_axis else (box.lo[a], box.hi[a])[(n >> a) & 1] for a in range(3)])
               for n in range(8) for k_array in [prompts[0].coord[s_axis]]]
    panel = sheet[last.y: last.y + round(rows * last.zoom[0]), last.x: last.x + round(cols * last.zoom[1])]
    ys_neg, xs_neg = np.nonzero((panel == NEGATIVE).all(-1))
    left, right = min(x for x, _ in corners) - last.zoom[1] / 2, max(x for x, _ in corners) + last.zoom[1] / 2
    top, bottom = min(y for _, y in corners) - last.zoom[0] / 2, max(y for _, y in corners) + last.zoom[0] / 2
    assert abs(last.x + xs_neg.min() - left) <= 1 and abs(last.x + xs_neg.max() + 1 - right) <= 1
    assert abs(last.y + ys_neg.min() - top) <= 1 and abs(last.y + ys_neg.max() + 1 - bottom) <= 1


def test_real_lps_mr_sheet_matches_qa(realdata, tmp_path):
    """The real TotalSegmentator MR (stored LPS): the sheet's image is QA's axial plane, a click its colour."""
    for name in ("example_mr_sm.nii.gz", "example_seg_mr.nii.gz"):
        shutil.copy(realdata("totalseg_nifti") / name, tmp_path / name)
    mr = nib.load(tmp_path / "example_mr_sm.nii.gz")
    image, affine = np.asarray(mr.dataobj), mr.affine
    reference = np.asarray(nib.load(tmp_path / "example_seg_mr.nii.gz").dataobj) > 0
    assert nib.aff2axcodes(affine) == ("L", "P", "S")
    click = Click(coord=tuple(int(v) for v in np.argwhere(reference)[len(np.argwhere(reference)) // 2]), positive=True)
    panels = [SessionPanel(0, (click,), click, reference, 0.9),
              SessionPanel(1, (click,), NoInteraction(), reference, 0.9)]
    path, placed = session_sheet(image, reference, panels, tmp_path / "mr.png", heading="mr", affine=affine)
    sheet = np.asarray(Image.open(path).convert("RGB"))
    k, row, col = _qa_pixel(click.coord, image.shape, affine)
    assert placed[0].slice == k == click.coord[2]  # S axis stored increasing: the RAS index is the array's
    x, y = placed[0].sheet_xy(click.coord)
    first = placed[0]
    assert (x, y) == pytest.approx((first.x + (col + 0.5) * first.zoom[1], first.y + (row + 0.5) * first.zoom[0]))
    assert sheet[int(y), int(x)].tolist() == list(POSITIVE)
    expected = np.asarray(_to_rgb(display_plane(to_ras(image, affine)[0], "axial", k)))
    last = placed[1]
    ys = (last.y + (np.arange(expected.shape[0]) + 0.5) * last.zoom[0]).astype(int)
    xs = (last.x + (np.arange(expected.shape[1]) + 0.5) * last.zoom[1]).astype(int)
    drawn = sheet[np.ix_(ys, xs)]
    grey = (drawn == drawn[..., :1]).all(-1)
    assert grey.mean() > 0.5 and np.array_equal(drawn[grey], expected[grey])


def test_volume_without_geometry_is_drawn_as_stored(tmp_path):
    """No affine: slices along array axis 2, rows = axis 0, columns = axis 1 (today's view), square pixels."""
    rng = np.random.default_rng(1)
    image = rng.normal(0, 1, (20, 30, 5))
    reference = np.zeros(image.shape, bool)
    reference[5:12, 8:20, 1:4] = True
    click = Click(coord=(3, 25, 2), positive=False)
    panels = [SessionPanel(0, (click,), click, reference, 0.1),
              SessionPanel(1, (click,), NoInteraction(), reference, 0.1)]
    path, placed = session_sheet(image, reference, panels, tmp_path / "a.png", heading="a")
    sheet = np.asarray(Image.open(path).convert("RGB"))
    last = placed[1]
    assert last.view.plane is None and last.slice == 2 and last.zoom[0] == last.zoom[1]
    x, y = last.sheet_xy(click.coord)
    assert (x, y) == (last.x + 25.5 * last.zoom[1], last.y + 3.5 * last.zoom[0])
    assert sheet[int(y), int(x)].tolist() == list(NEGATIVE)
    expected = np.asarray(_to_rgb(image[:, :, 2]))
    ys = (last.y + (np.arange(20) + 0.5) * last.zoom[0]).astype(int)
    xs = (last.x + (np.arange(30) + 0.5) * last.zoom[1]).astype(int)
    drawn = sheet[np.ix_(ys, xs)]
    grey = (drawn == drawn[..., :1]).all(-1)
    assert grey.mean() > 0.6 and np.array_equal(drawn[grey], expected[grey])
    with pytest.raises(UsageError, match="an affine needs a 3D reference"):
        session_sheet(image[..., 0], reference[..., 0], panels, tmp_path / "b.png", heading="b", affine=np.eye(4))


@pytest.mark.parametrize("affine", [PERMUTED, LPS, np.eye(4)], ids=["ILA", "LPS", "RAS"])
@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_display_view_is_qa_reorientation(affine, plane):
    """One transform: the view of the stored array equals nibabel's RAS reorientation + display_plane, and maps
    voxel coordinates to where that voxel is shown."""
    shape = (7, 5, 4)
    stored = np.random.default_rng(2).normal(size=shape)
    ras, spacing = to_ras(stored, affine)
    view = radiological_view(affine, shape, plane)
    for k in range(view.displayed_shape[0]):
        assert np.array_equal(view.image(stored, k), display_plane(ras, plane, k))
    for coord in np.ndindex(shape):
        k, row, col = view.points(coord)[0]
        assert view.image(stored, k)[row, col] == stored[coord]
    normal, rows, cols = {"axial": (2, 1, 0), "coronal": (1, 2, 0), "sagittal": (0, 2, 1)}[plane]
    assert view.spacing == (spacing[normal], spacing[rows], spacing[cols])
