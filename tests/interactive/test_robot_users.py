"""Robot users: invariants on generated 2D/3D masks and real masks, RITM parity,
determinism, order independence, empty and one-voxel regions."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import Delaunay

from omnimedseg.errors import UsageError
from omnimedseg.interactive import (
    Box,
    BoxUser,
    Click,
    ClickUser,
    NoInteraction,
    Polygon,
    PolygonUser,
    Scribble,
    ScribbleUser,
    eligibility,
    find_components,
    get_robot_user,
    index_to_xy,
    list_robot_users,
    make_rng,
    polygon_to_mask,
    run_robot_session,
    xy_to_index,
)
from omnimedseg.interactive.polygons import outer_contour
from omnimedseg.interactive.scribbles import thin_2d

REQUIRED_USERS = [
    "click_largest_center", "click_largest_boundary", "click_largest_random",
    "click_random_center", "click_random_boundary", "click_random_random",
    "scribble_centerline_largest", "scribble_centerline_random", "scribble_boundary_largest",
    "scribble_boundary_random", "scribble_line_largest", "scribble_line_random",
    "box_perfect", "box_careful", "box_sloppy", "polygon",
]
CLICK_USERS = [n for n in REQUIRED_USERS if n.startswith("click")]
SCRIBBLE_USERS = [n for n in REQUIRED_USERS if n.startswith("scribble")]
BOX_USERS = [n for n in REQUIRED_USERS if n.startswith("box")]
USERS_3D = [n for n in REQUIRED_USERS if n != "polygon"]


# --------------------------------------------------------------------------- generated masks
def ellipse(shape, center, radii):
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center, radii)) <= 1.0


def blobs(shape, seed, sigma=3.0, level=0.8):
    """Irregular multi-component mask (smoothed noise above a threshold)."""
    rng = np.random.default_rng(seed)
    z = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return z > level * z.std()


def mask_2d():
    m = ellipse((96, 128), (40, 60), (25, 40))  # non-square, off-centre: catches x/y swaps
    m |= ellipse((96, 128), (80, 110), (6, 9))
    m[5, 5] = True  # one-pixel component
    return m


def mask_3d():
    m = ellipse((40, 48, 56), (20, 22, 30), (10, 14, 18))
    m |= ellipse((40, 48, 56), (32, 8, 8), (3, 4, 4))
    return m


def fake_prediction(label, seed):
    """A plausible imperfect prediction: shifted label plus a false-positive blob."""
    pred = np.roll(label, 3, axis=-1)
    rng = np.random.default_rng(seed)
    center = [int(rng.integers(0, n)) for n in label.shape]
    pred |= ellipse(label.shape, center, [4] * label.ndim)
    return pred


def components_of(mask):
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    return ndimage.label(mask, structure=structure)


def padded_edt(mask, sampling=None):
    return ndimage.distance_transform_edt(np.pad(mask, 1), sampling=sampling)[(slice(1, -1),) * mask.ndim]


def rng_for(name, case=0, step=0, seed=0):
    return make_rng(seed, case, "fg", step, name)


def prompt(name, label, prediction=None, case=0, step=0, **kw):
    user = get_robot_user(name)
    return user.next_prompt(label, prediction, rng_for(name, case, step), **kw)


def prompt_mask(p, shape):
    return p.to_mask(shape)


# --------------------------------------------------------------------------- registry / API
def test_registry_has_the_sixteen_users_and_lookup_errors():
    names = list_robot_users()
    assert set(REQUIRED_USERS) <= set(names)
    for n in REQUIRED_USERS:
        assert get_robot_user(n).name == n
    with pytest.raises(UsageError, match="expected one of"):
        get_robot_user("click_largest_centre")
    assert get_robot_user("polygon", n_vertices=7).n_vertices == 7


@pytest.mark.parametrize("bad", [
    lambda: ClickUser(placement="middle"),
    lambda: ClickUser(component="biggest"),
    lambda: ScribbleUser(shape="zigzag"),
    lambda: BoxUser(style="messy"),
    lambda: PolygonUser(n_vertices=2),
    lambda: ScribbleUser(keep_ratio=0),
    lambda: ClickUser(min_component_size=0),
])
def test_invalid_parameters_raise_usage_error(bad):
    with pytest.raises(UsageError):
        bad()


def test_invalid_inputs_raise_one_line_usage_errors():
    user = get_robot_user("click_largest_center")
    lab = mask_2d()
    with pytest.raises(UsageError, match="rng"):
        user.next_prompt(lab, None, None)
    with pytest.raises(UsageError, match="rng"):
        user.next_prompt(lab, None, 42)
    with pytest.raises(UsageError, match="values in"):
        user.next_prompt(lab.astype(np.uint8) * 3, None, rng_for("x"))
    with pytest.raises(UsageError, match="shape"):
        user.next_prompt(lab, lab[:-1], rng_for("x"))
    with pytest.raises(UsageError, match="spacing"):
        user.next_prompt(lab, None, rng_for("x"), spacing=(1.0,))
    with pytest.raises(UsageError, match="2 or 3D"):
        user.next_prompt(lab[0], None, rng_for("x"))
    with pytest.raises(UsageError, match="3D volume"):
        get_robot_user("polygon").next_prompt(mask_3d(), None, rng_for("x"))
    with pytest.raises(UsageError) as err:
        user.next_prompt(lab, None, "seed")
    assert "\n" not in str(err.value)


def test_coordinate_helpers_swap_to_xy():
    assert index_to_xy((3, 7)) == (7, 3)
    assert index_to_xy((1, 2, 3)) == (3, 2, 1)
    assert xy_to_index(index_to_xy((4, 5, 6))) == (4, 5, 6)
    box = Box(lo=(10, 20), hi=(30, 60), positive=True)
    assert box.to_xyxy() == (20, 10, 60, 30)
    assert box.to_xyxy(half_open=True) == (20, 10, 61, 31)
    assert Click(coord=(2, 9), positive=True).xy == (9, 2)


# --------------------------------------------------------------------------- eligibility
def test_touching_fn_and_fp_stay_separate_components():
    label = np.zeros((20, 20), bool)
    label[5:15, 2:10] = True
    pred = np.zeros_like(label)
    pred[5:15, 10:18] = True  # FP touches the FN region along a whole edge
    elig = eligibility(label, pred)
    comps = find_components(elig)
    assert sorted(c.positive for c in comps) == [False, True]
    assert {c.size for c in comps} == {80}
    xor_labels, n_xor = components_of(label ^ pred)
    assert n_xor == 1  # the XOR map would have merged them


def test_eligibility_targets():
    label = mask_2d()
    assert np.array_equal(eligibility(label).positive, label)
    bg = eligibility(label, target="background", background_margin=2)
    assert not (bg.negative & label).any() and bg.negative.any() and not bg.negative[95, 0]
    assert eligibility(label, label).is_empty
    ign = np.zeros_like(label)
    ign[:, :64] = True
    assert not eligibility(label, ignore=ign).positive[:, :64].any()


# --------------------------------------------------------------------------- clicks
@pytest.mark.parametrize("name", CLICK_USERS)
@pytest.mark.parametrize("dim", [2, 3])
def test_clicks_land_inside_m_with_matching_polarity(name, dim):
    label = mask_2d() if dim == 2 else mask_3d()
    for case in range(6):
        c = prompt(name, label, case=case)
        assert isinstance(c, Click) and c.positive and label[c.coord]
        pred = fake_prediction(label, case)
        c = prompt(name, label, pred, case=case, step=1)
        assert (label ^ pred)[c.coord]
        assert c.positive == bool(label[c.coord])


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("spacing", [None, "aniso"])
def test_center_click_maximises_distance_to_boundary(dim, spacing):
    for seed in range(4):
        label = blobs((64, 80) if dim == 2 else (24, 32, 28), seed)
        sp = None if spacing is None else ((1.0, 0.6) if dim == 2 else (2.5, 0.8, 1.0))
        c = prompt("click_largest_center", label, case=seed, spacing=sp)
        labels, n = components_of(label)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        largest = labels == np.argmax(sizes)
        d = padded_edt(largest, sampling=sp)  # naive: full-image EDT
        assert largest[c.coord]
        assert d[c.coord] == pytest.approx(d.max(), rel=1e-12)


def test_center_ties_are_broken_by_the_generator_and_first_is_raster_order():
    label = np.zeros((9, 30), bool)
    label[2:7, 2:28] = True  # a bar: many voxels share the maximum EDT
    coords = {prompt("click_largest_center", label, case=i).coord for i in range(30)}
    d = padded_edt(label)
    assert len(coords) > 3 and all(d[c] == d.max() for c in coords)
    first = ClickUser(tie_break="first").next_prompt(label, None, rng_for("f"))
    assert first.coord == tuple(np.argwhere(d == d.max())[0])


@pytest.mark.parametrize("dim", [2, 3])
def test_boundary_clicks_lie_on_inner_boundary(dim):
    label = mask_2d() if dim == 2 else mask_3d()
    face = ndimage.generate_binary_structure(dim, 1)
    inner = label & ~ndimage.binary_erosion(np.pad(label, 1), face, border_value=0)[(slice(1, -1),) * dim]
    for case in range(20):
        for name in ("click_largest_boundary", "click_random_boundary"):
            assert inner[prompt(name, label, case=case).coord]


def test_largest_and_random_component_selection():
    label = np.zeros((40, 40), bool)
    label[2:6, 2:6] = True      # 16
    label[20:30, 20:30] = True  # 100 (largest)
    label[2:4, 30:33] = True    # 6
    labels, _ = components_of(label)
    for case in range(10):
        assert labels[prompt("click_largest_random", label, case=case).coord] == labels[25, 25]
    hits = np.bincount([labels[prompt("click_random_random", label, case=c).coord] for c in range(300)],
                       minlength=4)[1:]
    assert hits.min() > 60  # uniform over components, not over voxels (that would give ~5 % to the smallest)


def test_random_placement_covers_the_component_uniformly():
    label = np.zeros((12, 12), bool)
    label[3:5, 3:8] = True  # 10 voxels
    counts = np.zeros(label.shape, int)
    for case in range(1000):
        counts[prompt("click_largest_random", label, case=case).coord] += 1
    assert counts[label].min() > 60 and counts[~label].sum() == 0


def test_iterative_largest_compares_fn_and_fp_sizes():
    label = np.zeros((50, 50), bool)
    label[5:15, 5:15] = True   # FN 100 voxels (prediction misses it)
    pred = np.zeros_like(label)
    pred[30:45, 30:45] = True  # FP 225 voxels
    c = prompt("click_largest_center", label, pred)
    assert not c.positive and pred[c.coord]


def test_avoid_repeats_moves_the_center_click():
    label = ellipse((31, 31), (15, 15), (7, 7))
    user = get_robot_user("click_largest_center")
    c1 = user.next_prompt(label, None, rng_for("a"))
    c2 = user.next_prompt(label, None, rng_for("a"), previous=[c1])
    assert c1.coord == (15, 15) and c2.coord != c1.coord and label[c2.coord]
    single = np.zeros((5, 5), bool)
    single[2, 2] = True
    first = user.next_prompt(single, None, rng_for("a"))
    assert user.next_prompt(single, None, rng_for("a"), previous=[first]) is None


def _ritm_click(gt, pred, clicks):
    """Reference RITM/SimpleClick clicker (isegm/inference/clicker.py), written naively."""
    fn, fp = gt & ~pred, ~gt & pred
    fn_d, fp_d = padded_edt(fn), padded_edt(fp)
    not_clicked = np.ones(gt.shape, bool)
    for c in clicks:
        not_clicked[c.coord] = False
    fn_d, fp_d = fn_d * not_clicked, fp_d * not_clicked
    positive = fn_d.max() > fp_d.max()
    d = fn_d if positive else fp_d
    return tuple(np.argwhere(d == d.max())[0]), bool(positive)


def _fake_model(gt_shape, clicks):
    pred = np.zeros(gt_shape, bool)
    for c in clicks:
        pred[ellipse(gt_shape, c.coord, [5] * len(gt_shape))] = c.positive
    return pred


@pytest.mark.parametrize("seed", range(5))
def test_click_ritm_matches_reference_rule(seed):
    gt = blobs((48, 64), seed, sigma=4, level=0.3)
    user = get_robot_user("click_ritm")
    clicks, pred = [], np.zeros_like(gt)
    for step in range(8):
        if not (gt ^ pred).any():
            break
        ours = user.next_prompt(gt, pred, rng_for("ritm", seed, step), previous=clicks)
        ref_coord, ref_pos = _ritm_click(gt, pred, clicks)
        assert (ours.coord, ours.positive) == (ref_coord, ref_pos)
        clicks.append(ours)
        pred = _fake_model(gt.shape, clicks)


def test_click_ritm_tie_between_fn_and_fp_gives_negative():
    gt = np.zeros((30, 40), bool)
    gt[5:12, 5:12] = True      # FN square
    pred = np.zeros_like(gt)
    pred[15:22, 25:32] = True  # FP square of the same size: equal EDT maxima
    c = get_robot_user("click_ritm").next_prompt(gt, pred, rng_for("t"))
    assert not c.positive and (c.coord, c.positive) == _ritm_click(gt, pred, [])


# --------------------------------------------------------------------------- empty / one voxel
@pytest.mark.parametrize("name", REQUIRED_USERS)
def test_empty_eligibility_gives_no_interaction(name):
    empty = np.zeros((32, 40), bool)
    assert prompt(name, empty) is None
    label = mask_2d()
    assert prompt(name, label, label.copy(), step=1) is None  # perfect prediction: nothing to fix
    assert get_robot_user(name, min_component_size=10 ** 6).next_prompt(label, None, rng_for(name)) is None


@pytest.mark.parametrize("name,dim", [(n, d) for n in REQUIRED_USERS for d in (2, 3)
                                      if not (n == "polygon" and d == 3)])  # polygons are 2D only
def test_one_voxel_component(name, dim):
    label = np.zeros((9, 11) if dim == 2 else (7, 9, 11), bool)
    voxel = (4, 6) if dim == 2 else (3, 4, 6)
    label[voxel] = True
    p = prompt(name, label)
    assert p is not None and p.positive
    m = p.to_mask(label.shape)
    assert m[voxel]
    if isinstance(p, (Click, Scribble)):
        assert np.array_equal(m, label)
    if isinstance(p, Polygon):
        assert len(p) == 4  # the diamond around the pixel: fewer contour points than N, all used


def test_one_voxel_on_the_image_corner():
    label = np.zeros((6, 6), bool)
    label[0, 0] = True
    for name in REQUIRED_USERS:
        p = prompt(name, label)
        assert p.to_mask(label.shape)[0, 0], name


# --------------------------------------------------------------------------- boxes
def tight(mask):
    pts = np.argwhere(mask)
    return pts.min(0), pts.max(0)


@pytest.mark.parametrize("dim", [2, 3])
def test_boxes_enclose_target_with_stated_margins(dim):
    label = mask_2d() if dim == 2 else mask_3d()
    lo, hi = tight(label)
    length = hi - lo + 1
    shape = np.array(label.shape)
    perfect = prompt("box_perfect", label)
    assert perfect.lo == tuple(lo) and perfect.hi == tuple(hi)
    for case in range(25):
        b = prompt("box_careful", label, case=case)
        blo, bhi = np.array(b.lo), np.array(b.hi)
        grow_lo, grow_hi = lo - blo, bhi - hi
        want_min, want_max = np.ceil(0.025 * length), np.ceil(0.05 * length)
        assert np.all(grow_lo == grow_hi) or np.any(blo == 0) or np.any(bhi == shape - 1)
        for d in range(dim):
            for grow, clipped in ((grow_lo[d], blo[d] == 0), (grow_hi[d], bhi[d] == shape[d] - 1)):
                assert want_min[d] <= grow <= want_max[d] or (clipped and 0 <= grow <= want_max[d])
        assert b.to_mask(label.shape)[label].all()
        s = prompt("box_sloppy", label, case=case)
        slo, shi = np.array(s.lo), np.array(s.hi)
        dmin, dmax = np.maximum(1, np.round(0.05 * length)), np.maximum(1, np.round(0.10 * length))
        for d in range(dim):
            for move, clipped in ((abs(lo[d] - slo[d]), slo[d] == 0), (abs(shi[d] - hi[d]), shi[d] == shape[d] - 1)):
                assert dmin[d] <= move <= dmax[d] or (clipped and move <= dmax[d])
        assert np.all(slo <= shi) and np.all(slo >= 0) and np.all(shi < shape)


def test_sloppy_box_moves_sides_both_ways_and_never_empties():
    label = np.zeros((200, 200), bool)
    label[50:150, 60:140] = True
    inward = outward = 0
    for case in range(40):
        b = prompt("box_sloppy", label, case=case)
        inward += int(b.lo[0] > 50) + int(b.hi[1] < 139)
        outward += int(b.lo[0] < 50) + int(b.hi[1] > 139)
    assert inward > 10 and outward > 10
    thin = np.zeros((20, 20), bool)
    thin[10, 3:15] = True  # extent 1 along rows: inward moves would cross
    for case in range(30):
        b = prompt("box_sloppy", thin, case=case)
        assert b.lo[0] <= 10 <= b.hi[0]


def test_box_shapes_in_3d():
    label = mask_3d()
    z = np.flatnonzero(label.any(axis=(1, 2)))
    cv = get_robot_user("box_perfect", box_shape="cvpr25").next_prompt(label, None, rng_for("b"))
    mid = int(np.median(z))
    assert cv.style == "cvpr25" and cv.slice_index == mid and (cv.lo[0], cv.hi[0]) == (z[0], z[-1])
    plo, phi = tight(label[mid])
    assert cv.lo[1:] == tuple(plo) and cv.hi[1:] == tuple(phi)
    s2 = get_robot_user("box_careful", box_shape="2d_slice").next_prompt(label, None, rng_for("b"),
                                                                       spacing=(1, 1, 3))
    assert s2.slice_axis == 2 and s2.lo[2] == s2.hi[2] == s2.slice_index
    assert s2.slice_index == int(np.argmax(label.sum(axis=(0, 1))))
    assert s2.to_mask(label.shape)[..., s2.slice_index][label[..., s2.slice_index]].all()


def test_iterative_box_can_be_negative():
    label = np.zeros((30, 30), bool)
    pred = np.zeros_like(label)
    pred[5:10, 5:12] = True
    grown = label | pred
    grown[20:25, 20:26] = True
    b = prompt("box_perfect", grown, pred, step=1)  # FN only
    assert b.positive and (b.lo, b.hi) == ((20, 20), (24, 25))
    b = prompt("box_perfect", label, pred, step=1)
    assert not b.positive and (b.lo, b.hi) == ((5, 5), (9, 11))
    assert get_robot_user("box_perfect", allow_negative=False).next_prompt(label, pred, rng_for("n")) is None


# --------------------------------------------------------------------------- scribbles
@pytest.mark.parametrize("name", SCRIBBLE_USERS)
def test_scribbles_lie_inside_the_component_2d(name):
    label = mask_2d()
    labels, _ = components_of(label)
    for case in range(4):
        s = prompt(name, label, case=case)
        assert isinstance(s, Scribble) and len(s) > 0 and s.positive
        ids = np.unique(labels[tuple(s.coords.T)])
        assert len(ids) == 1 and ids[0] > 0  # one component, inside it
        if name.endswith("largest"):
            assert ids[0] == labels[40, 60]
        pred = fake_prediction(label, case)
        s = prompt(name, label, pred, case=case, step=1)
        region = (label & ~pred) if s.positive else (pred & ~label)
        assert region[tuple(s.coords.T)].all()


@pytest.mark.parametrize("name", SCRIBBLE_USERS)
def test_scribbles_in_3d_slice_mode(name):
    label = mask_3d()
    s = prompt(name, label, spacing=(1.0, 1.0, 2.5))
    assert s.slice_axis == 2  # auto: the axis with the largest spacing
    assert np.all(s.coords[:, 2] == s.slice_index) and label[tuple(s.coords.T)].all()
    if name.endswith("largest"):
        labels, _ = components_of(label)
        big = labels == labels[20, 22, 30]
        assert s.slice_index == int(np.argmax(big.sum(axis=(0, 1))))
    iso = prompt(name, label)
    assert iso.slice_axis == 0


def test_scribble_shapes_behave_as_described():
    label = ellipse((120, 160), (60, 80), (40, 60))
    plain = dict(fragment=False, deform=False)
    skel = ScribbleUser("centerline", **plain).next_prompt(label, None, rng_for("s"))
    assert np.array_equal(skel.mask, thin_2d(label))
    band = ScribbleUser("boundary", **plain).next_prompt(label, None, rng_for("s"))
    m = band.mask
    assert (m & ndimage.binary_erosion(m, ndimage.generate_binary_structure(2, 1))).sum() == 0  # 1 px thin
    filled = ndimage.binary_fill_holes(m)
    assert filled.sum() > m.sum()  # a closed inner contour
    line = ScribbleUser("line", **plain).next_prompt(label, None, rng_for("s"))
    pts = line.coords
    assert len(pts) == np.max(np.abs(pts.max(0) - pts.min(0))) + 1  # one straight 1-px segment
    capped = ScribbleUser("boundary", max_pixels=16).next_prompt(label, None, rng_for("s"))
    assert 0 < len(capped) <= round(16 * 160 / 128)
    frag = [ScribbleUser("boundary", deform=False).next_prompt(label, None, rng_for("s", c)) for c in range(5)]
    unfrag = [ScribbleUser("boundary", fragment=False, deform=False).next_prompt(label, None, rng_for("s", c))
              for c in range(5)]
    assert sum(map(len, frag)) < 0.8 * sum(map(len, unfrag))


def _zhang_suen_reference(img):
    """Textbook Zhang-Suen on the whole array (independent of the LUT/front implementation)."""
    a = np.pad(img, 1).astype(np.uint8)
    while True:
        changed = False
        for step in (0, 1):
            p = [np.roll(np.roll(a, -dr, 0), -dc, 1) for dr, dc in
                 ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))]
            b = sum(x.astype(int) for x in p)
            trans = sum(((p[i] == 0) & (p[(i + 1) % 8] == 1)).astype(int) for i in range(8))
            p2, p3, p4, p5, p6, p7, p8, p9 = p
            if step == 0:
                c = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                c = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            kill = (a == 1) & (b >= 2) & (b <= 6) & (trans == 1) & c
            if kill.any():
                a[kill] = 0
                changed = True
        if not changed:
            return a[1:-1, 1:-1].astype(bool)


@pytest.mark.parametrize("seed", range(4))
def test_thinning_matches_textbook_zhang_suen(seed):
    m = blobs((60, 70), seed, sigma=3, level=0.2)
    assert np.array_equal(thin_2d(m), _zhang_suen_reference(m))


# --------------------------------------------------------------------------- polygons
def crack_midpoints(mask):
    """Points halfway between 4-adjacent inside/outside pixel centres (the exact boundary)."""
    m = np.pad(mask, 1)
    pts = []
    for axis in (0, 1):
        a = m if axis == 0 else m.T
        diff = np.argwhere(a[1:] != a[:-1]).astype(float)
        diff[:, 0] += 0.5
        pts.append(diff if axis == 0 else diff[:, ::-1])
    return np.vstack(pts) - 1.0


@pytest.mark.parametrize("n", [3, 8, 20])
@pytest.mark.parametrize("sampling", ["uniform", "equispaced"])
def test_polygon_has_n_vertices_on_the_boundary(n, sampling):
    label = mask_2d()
    labels, _ = components_of(label)
    big = labels == labels[40, 60]
    inside, outside = np.argwhere(big), np.argwhere(~big)
    for case in range(3):
        p = PolygonUser(n, vertex_sampling=sampling).next_prompt(label, None, rng_for("p", case))
        assert len(p) == n and p.positive
        for v in p.vertices:
            assert np.min(np.linalg.norm(inside - v, axis=1)) <= 0.8
            assert np.min(np.linalg.norm(outside - v, axis=1)) <= 0.8
        hull = Delaunay(crack_midpoints(big))
        assert np.all(hull.find_simplex(np.argwhere(p.to_mask(label.shape))) >= 0)


def test_full_contour_polygon_rasterises_back_to_the_mask():
    for seed in range(3):
        m = blobs((50, 60), seed, sigma=4, level=0.5)
        labels, n = components_of(m)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        big = labels == np.argmax(sizes)
        p = PolygonUser(10 ** 6).next_prompt(big, None, rng_for("p"))
        assert np.array_equal(p.to_mask(m.shape), ndimage.binary_fill_holes(big))
    ring = ellipse((40, 40), (20, 20), (15, 15)) & ~ellipse((40, 40), (20, 20), (7, 7))
    assert np.array_equal(polygon_to_mask(outer_contour(ring), ring.shape), ndimage.binary_fill_holes(ring))


def test_polygon_slice_mode_in_3d():
    label = mask_3d()
    p = PolygonUser(12, mode="slice").next_prompt(label, None, rng_for("p"))
    assert p.slice_axis == 0 and len(p) == 12
    m = p.to_mask(label.shape)
    assert m[p.slice_index].any() and not np.delete(m, p.slice_index, axis=0).any()


# --------------------------------------------------------------------------- determinism
def _run_all(label, pred, names, case, step):
    return [get_robot_user(n).next_prompt(label, pred, make_rng(7, case, "organ", step, n)) for n in names]


@pytest.mark.parametrize("dim", [2, 3])
def test_same_seed_same_prompts_and_no_global_rng(dim):
    label = mask_2d() if dim == 2 else mask_3d()
    names = REQUIRED_USERS if dim == 2 else USERS_3D
    np_state, py_state = np.random.get_state(), random.getstate()
    a = _run_all(label, None, names, "c1", 0)
    b = _run_all(label, None, names, "c1", 0)
    assert a == b
    pred = fake_prediction(label, 1)
    assert _run_all(label, pred, names, "c1", 1) == _run_all(label, pred, names, "c1", 1)
    other = _run_all(label, None, names, "c1", 3)
    assert sum(x != y for x, y in zip(a, other)) >= len(names) // 2  # another step: another stream
    assert np.array_equal(np.random.get_state()[1], np_state[1]) and random.getstate() == py_state


def test_results_do_not_depend_on_order_or_threads():
    label = mask_2d()
    jobs = [(n, case) for n in REQUIRED_USERS for case in ("a", "b")]

    def one(job):
        name, case = job
        return get_robot_user(name).next_prompt(label, None, make_rng(3, case, "fg", 0, name))

    forward = [one(j) for j in jobs]
    order = np.random.default_rng(0).permutation(len(jobs))
    shuffled = [None] * len(jobs)
    for i in order:
        shuffled[i] = one(jobs[i])
    with ThreadPoolExecutor(max_workers=2) as pool:
        threaded = list(pool.map(one, jobs))
    assert forward == shuffled == threaded


def test_make_rng_keys():
    draw = lambda *k: make_rng(*k).integers(1 << 62)
    assert draw(0, 1, "liver", 2, "u") == draw(0, "1", "liver", 2, "u")
    keys = [(0, 1, "liver", 2, "u"), (1, 1, "liver", 2, "u"), (0, 2, "liver", 2, "u"),
            (0, 1, "spleen", 2, "u"), (0, 1, "liver", 3, "u"), (0, 1, "liver", 2, "v")]
    assert len({draw(*k) for k in keys}) == len(keys)
    with pytest.raises(UsageError):
        make_rng(-1, 0, "x", 0, "u")
    with pytest.raises(UsageError):
        make_rng(0, 0, "x", -1, "u")


def test_sample_draws_independent_non_iterative_prompts():
    label = mask_2d()
    user = get_robot_user("click_largest_random")
    a = user.sample(label, 5, rng_for("k"))
    assert a == user.sample(label, 5, rng_for("k")) and len({c.coord for c in a}) > 1


# --------------------------------------------------------------------------- session loop
def test_session_records_no_interaction_and_carries_prediction():
    label = mask_2d()
    calls = []

    def model(prompts, prev):
        calls.append(len(prompts))
        return label if len(prompts) >= 2 else ellipse(label.shape, (40, 60), (10, 10))

    user = get_robot_user("click_largest_center")
    recs = run_robot_session(user, label, model, 4, seed=0, case_id="c", class_name="fg")
    assert [r.step for r in recs] == [0, 1, 2, 3, 4]
    assert isinstance(recs[1].interaction, Click) and isinstance(recs[2].interaction, NoInteraction)
    assert all(np.array_equal(r.prediction, label) for r in recs[1:])
    assert calls == [1, 2]
    empty = run_robot_session(user, np.zeros((8, 8), bool), model, 2, seed=0, case_id="e", class_name="fg")
    assert all(isinstance(r.interaction, NoInteraction) and not r.prediction.any() for r in empty)


# --------------------------------------------------------------------------- drawing
def test_contact_sheet_draws_in_xy_order(tmp_path):
    from PIL import Image

    from omnimedseg.interactive.contact_sheet import contact_sheet
    image = np.zeros((60, 100))
    click = Click(coord=(10, 80), positive=True)
    box = Box(lo=(30, 5), hi=(50, 20), positive=False)
    path = contact_sheet(image, None, {"": [click, box]}, tmp_path / "s.png", columns=1)
    px = np.asarray(Image.open(path).convert("RGB"))
    assert px.shape[:2] == (60, 100)
    assert px[10, 80].tolist() == [40, 220, 60]  # (row 10, col 80) is green
    assert px[30, 12].tolist() == [235, 50, 50]  # box top edge at row 30


# --------------------------------------------------------------------------- real data
def _hc18_labels(folder):
    from PIL import Image
    out = []
    for f in sorted((folder / "training_set").glob("*_HC_Annotation.png")):
        outline = np.asarray(Image.open(f)) > 0
        out.append((f.name, ndimage.binary_fill_holes(outline)))
    return out


def test_all_users_on_hc18_heads(realdata):
    heads = _hc18_labels(realdata("hc18_ellipse"))
    assert heads
    for fname, label in heads:
        assert label.sum() > 10 * ndimage.binary_erosion(label).sum() / 10  # really filled
        lo, hi = tight(label)
        d = padded_edt(label)
        pred = np.roll(label, 25, axis=1)
        for name in REQUIRED_USERS:
            p = prompt(name, label, case=fname)
            m = p.to_mask(label.shape)
            if isinstance(p, (Click, Scribble)):
                assert label[m].all(), name
            if isinstance(p, Box):
                assert m[label].all() or name == "box_sloppy"
            if isinstance(p, Polygon):
                inter = (m & label).sum() / (m | label).sum()
                assert len(p) == 20 and inter > 0.8, (name, inter)
            q = prompt(name, label, pred, case=fname, step=1)
            region = (label & ~pred) if q.positive else (pred & ~label)
            if isinstance(q, (Click, Scribble)):
                assert region[q.to_mask(label.shape)].all(), name
        c = prompt("click_largest_center", label, case=fname)
        assert d[c.coord] == d.max()
        assert prompt("box_perfect", label).lo == tuple(lo)


def test_users_on_totalsegmentator_volume(realdata):
    nib = pytest.importorskip("nibabel")
    img = nib.load(str(realdata("totalseg_nifti") / "example_seg.nii.gz"))
    seg = np.asarray(img.dataobj)
    spacing = tuple(float(z) for z in img.header.get_zooms()[:3])
    ids, counts = np.unique(seg[seg > 0], return_counts=True)
    for cls in ids[np.argsort(-counts)][:3]:
        label = seg == cls
        lo, hi = tight(label)
        for name in USERS_3D:
            p = prompt(name, label, case="ct", spacing=spacing)
            m = p.to_mask(label.shape)
            if isinstance(p, (Click, Scribble)):
                assert label[m].all(), (cls, name)
            if isinstance(p, Scribble):
                assert p.slice_axis is not None and np.all(p.coords[:, p.slice_axis] == p.slice_index)
            if name in ("box_perfect", "box_careful"):
                assert m[label].all()
        c = prompt("click_largest_center", label, spacing=spacing)
        labels, _ = components_of(label)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        largest = labels == np.argmax(sizes)
        d = padded_edt(largest, sampling=spacing)
        assert d[c.coord] == pytest.approx(d.max())


def test_users_on_stardist_nuclei(realdata):
    from PIL import Image
    inst = np.asarray(Image.open(realdata("stardist_dsb2018_tif") / "stardist" / "data" / "images" / "mask2d.tif"))
    label = inst > 0
    labels, n = components_of(label)
    assert n > 50
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    c = prompt("click_largest_center", label)
    assert labels[c.coord] == np.argmax(sizes)
    picked = {labels[prompt("click_random_center", label, case=k).coord] for k in range(40)}
    assert len(picked) > 20  # random component: spreads over many nuclei
    # iterative: prediction misses a third of the nuclei and has a spurious blob
    pred = label & (labels % 3 != 0)
    pred |= ellipse(label.shape, (5, 5), (4, 4)) & ~label
    for name in REQUIRED_USERS:
        q = prompt(name, label, pred, step=1)
        region = (label & ~pred) if q.positive else (pred & ~label)
        if isinstance(q, (Click, Scribble)):
            assert region[q.to_mask(label.shape)].all(), name
        if isinstance(q, Box):
            assert q.positive and q.to_mask(label.shape)[label & ~pred].all() or name != "box_perfect"


@pytest.mark.slow
def test_large_volume_center_click_matches_naive():
    label = ellipse((160, 192, 192), (70, 100, 90), (30, 50, 40))
    c = prompt("click_largest_center", label)
    d = padded_edt(label)
    assert d[c.coord] == d.max()


@pytest.mark.slow
@pytest.mark.parametrize("shape_", ["boundary", "line"])
def test_volume_mode_scribbles_inside(shape_):
    label = mask_3d()
    s = ScribbleUser(shape_, mode="3d").next_prompt(label, None, rng_for("v"))
    assert s.slice_axis is None and label[tuple(s.coords.T)].all() and len(s) > 0


def test_prompt_records_round_trip_with_all_their_geometry():
    from omnimedseg.interactive.prompts import NoInteraction, Polygon, Scribble, prompt_from_dict, prompt_to_dict

    prompts = [Click(coord=(3, 4, 5), positive=False, component_id=2),
               Box(lo=(1, 2, 3), hi=(4, 5, 6), positive=True, style="cvpr25", slice_axis=0, slice_index=2),
               Scribble(coords=[[1, 2], [1, 3], [2, 3]], shape=(8, 9), positive=False),
               Polygon(vertices=[[0.5, 1.0], [4.0, 1.5], [3.0, 6.25]], positive=True, slice_axis=2, slice_index=1)]
    for p in prompts:
        back = prompt_from_dict(json.loads(json.dumps(prompt_to_dict(p))))
        assert back == p and back.positive == p.positive and back.component_id == p.component_id
    assert isinstance(prompt_from_dict(prompt_to_dict(NoInteraction())), NoInteraction)
