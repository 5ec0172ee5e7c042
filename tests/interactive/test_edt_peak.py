"""The arg-max-only EDT (omnimedseg.interactive.distance) against scipy's full transform.

Identity is on the set of arg-max voxels (what a center click draws from) and the maximum
value (to 1e-12, the tie tolerance every user applies), on masks that exercise each path:
near-full volumes (bounded path), masks filling their whole box (no background inside),
masks touching borders, holes, anisotropic spacing, excluded (already clicked) voxels and
memory layouts other than C order.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from omnimedseg.interactive import get_robot_user, make_rng
from omnimedseg.interactive.distance import (
    _block_reduce,
    _bounded_peak_2d,
    _coarse_bg_2d,
    _exact_sq,
    _RowTable,
    edt_peak,
)


def scipy_peak(mask, sampling=None, excluded=None):
    d = ndimage.distance_transform_edt(np.pad(mask, 1), sampling=sampling)[(slice(1, -1),) * mask.ndim]
    if excluded is not None:
        d = np.where(excluded, -1.0, d)
    top = d.max()
    return (float(top), np.flatnonzero(d >= top * (1 - 1e-12))) if top > 0 else (0.0, np.zeros(0, np.int64))


def assert_same_peak(mask, sampling=None, excluded=None):
    top, flat = edt_peak(mask, sampling, excluded)
    ref_top, ref_flat = scipy_peak(np.ascontiguousarray(mask), sampling,
                                   None if excluded is None else np.ascontiguousarray(excluded))
    np.testing.assert_array_equal(flat, ref_flat)
    assert np.isclose(top, ref_top, rtol=1e-12, atol=0)


def ellipsoid(shape, center, radii):
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center, radii)) <= 1.0


def random_masks(seed, n):
    """Large blobs (often cut by the box), near-full boxes with holes, full boxes, speckle."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        ndim = 2 + i % 2
        shape = tuple(int(v) for v in rng.integers(34, 56, size=ndim)) if ndim == 3 else \
            tuple(int(v) for v in rng.integers(190, 260, size=ndim))
        kind = i % 4
        if kind == 0:  # large ellipsoid, usually cut by the borders
            m = ellipsoid(shape, [rng.uniform(0, s) for s in shape], [rng.uniform(s / 3, s) for s in shape])
        elif kind == 1:  # near-full with a few holes
            m = np.ones(shape, bool)
            for _ in range(int(rng.integers(1, 4))):
                lo = [int(rng.integers(0, s - 3)) for s in shape]
                m[tuple(slice(a, a + int(rng.integers(1, 8))) for a in lo)] = False
        elif kind == 2:  # the whole box: no background inside, only the padding
            m = np.ones(shape, bool)
        else:  # near-full with sparse single-voxel background
            m = rng.random(shape) > 0.0005
        sampling = None if i % 3 == 0 else tuple(float(v) for v in rng.choice([0.5, 0.7, 1.0, 2.5, 3.0], size=ndim))
        excluded = None
        if i % 5 == 0:
            excluded = np.zeros(shape, bool)
            excluded[tuple(rng.integers(0, s, size=40) for s in shape)] = True
        yield m, sampling, excluded


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_peak_equals_full_transform_on_large_masks(seed):
    for m, sampling, excluded in random_masks(seed, 12):
        assert_same_peak(m, sampling, excluded)


def test_peak_on_near_full_volume_with_hole_and_on_plateaus():
    m = np.ones((64, 60, 48), bool)
    m[20:26, 10:14, 30:33] = False
    assert_same_peak(m)
    assert_same_peak(m, (1.0, 0.7, 2.5))  # anisotropic: a wide plateau of tied voxels
    full = np.ones((300, 240), bool)
    assert_same_peak(full)  # even sizes: tied centre voxels
    assert_same_peak(full, (0.5, 0.8))


def test_peak_when_everything_is_excluded_or_empty():
    m = np.ones((40, 40, 40), bool)
    assert edt_peak(m, None, np.ones_like(m))[1].size == 0
    assert edt_peak(np.zeros((40, 40, 40), bool))[1].size == 0


@pytest.mark.parametrize("shape", [(130, 256), (37, 42, 44), (9, 16)])
def test_block_reduce_on_uint32_words_equals_per_block_reduction(shape):
    """The word shortcut (last side a multiple of 4: one uint32 = 4 bools) equals the reduction
    of each block's real voxels, partial blocks included; and the peak stays scipy's."""
    rng = np.random.default_rng(7)
    for p in (0.03, 0.5, 0.97):
        m = rng.random(shape) < p
        for how in (np.all, np.any):
            got = _block_reduce(m, 4, how is np.all, how)
            want = np.empty(tuple(-(-n // 4) for n in shape), bool)
            for b in np.ndindex(want.shape):
                want[b] = how(m[tuple(slice(4 * i, 4 * i + 4) for i in b)])
            np.testing.assert_array_equal(got, want)
    m = np.ones(shape, bool)
    m[(slice(2, 5),) * len(shape)] = False
    m[-1] = False
    assert_same_peak(m)


@pytest.mark.parametrize("layout", ["F", "transposed", "flipped", "strided"])
def test_peak_does_not_depend_on_memory_layout(layout):
    base = np.ones((80, 70, 60), bool)
    base[5:15, 40:52, 10:20] = False
    base = base & ~ellipsoid(base.shape, (0, 0, 0), (30, 30, 30))
    view = {"F": np.asfortranarray(base), "transposed": base.T.copy().T,
            "flipped": base[::-1].copy()[::-1], "strided": np.repeat(base, 2, axis=2)[:, :, ::2]}[layout]
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(view, base)
    assert_same_peak(view, (0.8, 1.0, 1.5))
    np.testing.assert_array_equal(edt_peak(view, (0.8, 1.0, 1.5))[1], edt_peak(base, (0.8, 1.0, 1.5))[1])


@pytest.mark.parametrize("shape", [(220, 230), (48, 50, 52)])
def test_center_click_on_near_full_mask_is_the_naive_click(shape):
    """The robot user draws the same voxel as the naive full-EDT click with the same generator."""
    user = get_robot_user("click_largest_center")
    label = np.ones(shape, bool)
    label[(slice(3, 9),) * len(shape)] = False
    label[(slice(-5, None),) + (slice(None),) * (len(shape) - 1)] = False
    for case in range(4):
        got = user.next_prompt(label, None, make_rng(0, case, "fg", 0, user.name))
        top, flat = scipy_peak(label)
        pick = flat[int(make_rng(0, case, "fg", 0, user.name).integers(flat.size))]
        assert got.coord == tuple(int(v) for v in np.unravel_index(int(pick), shape))


def _bool_over_bytes(values: np.ndarray) -> np.ndarray:
    """A bool view of uint8 bytes other than 0/1 (as ``.view(bool)``, ``np.frombuffer`` or a Pillow 1-bit image
    give): valid NumPy whose truth is "byte != 0"."""
    view = values.view(bool)
    assert view.view(np.uint8).max() > 1
    return view


@pytest.mark.parametrize("shape", [(48, 48, 48), (600, 600)])
def test_bool_masks_over_bytes_other_than_one_give_the_naive_peak_and_click(shape):
    """Blocks of 2-bytes are all True: word comparisons with 0x01 bytes had called them background,
    pruned the deepest blocks and clicked a shallower voxel."""
    raw = np.ones(shape, np.uint8)
    raw[..., shape[-1] // 2:] = 2
    if len(shape) == 2:
        raw[::2, 0] = 0  # many distinct background rows: the 2D coarse path
    mask, plain = _bool_over_bytes(raw), raw != 0
    assert_same_peak(mask)
    corner = np.zeros(shape, np.uint8)
    corner[(slice(0, 9),) * len(shape)] = 5  # already clicked there
    excluded = _bool_over_bytes(corner)
    np.testing.assert_array_equal(edt_peak(mask, excluded=excluded)[1], scipy_peak(plain, excluded=corner != 0)[1])
    user = get_robot_user("click_largest_center", tie_break="first")
    rng = make_rng(0, 0, "fg", 0, user.name)
    assert user.next_prompt(mask, None, rng).coord == user.next_prompt(plain, None, rng).coord


def test_one_number_as_sampling_applies_to_every_axis():
    for shape in [(200, 200), (40, 40, 40)]:
        mask = np.ones(shape, bool)
        mask[(slice(3, 9),) * len(shape)] = False
        top, flat = edt_peak(mask, 0.5)
        ref_top, ref_flat = scipy_peak(mask, 0.5)
        assert np.isclose(top, ref_top, rtol=1e-12) and np.array_equal(flat, ref_flat)


def _components_checked_against_scipy(m: np.ndarray, rank: int):
    """find_components of ``m`` at connectivity ``rank``, checked to be scipy's partition (count, sizes,
    the same voxels together); returns them and their ids painted into an int64 image."""
    from omnimedseg.interactive import eligibility, find_components

    ref, n = ndimage.label(m, structure=ndimage.generate_binary_structure(m.ndim, rank))
    comps = find_components(eligibility(m), rank)
    assert len(comps) == n
    got = np.zeros(m.shape, dtype=np.int64)
    for c in comps:
        got[c.slices] += c.mask() * c.id
        assert c.size == c.mask().sum()
    assert len(set(zip(got[m].tolist(), ref[m].tolist()))) == n  # same partition
    return comps, got


@pytest.mark.parametrize("ndim", [2, 3])
def test_components_partition_equals_scipy_label(ndim):
    """find_components (cc3d inside) gives scipy's components for every connectivity, on
    C, Fortran and flipped inputs; cc3d 4.1 mislabels 2D bool images at 8-connectivity."""
    rng = np.random.default_rng(ndim)
    for trial in range(40):
        shape = tuple(int(v) for v in rng.integers(3, 30, size=ndim))
        m = ndimage.gaussian_filter(rng.random(shape), rng.uniform(0.5, 3)) > rng.uniform(0.4, 0.6)
        m = [m, np.asfortranarray(m), m[::-1].copy()[::-1]][trial % 3]
        for rank in range(1, ndim + 1):
            comps, got = _components_checked_against_scipy(m, rank)
            assert np.array_equal(got > 0, m)
            firsts = [c.first_voxel for c in comps]
            assert firsts == sorted(firsts) and all(m.ravel()[f] for f in firsts)


@pytest.mark.parametrize("shape,sampling", [((90, 120), (1.0, 1.0)), ((90, 120), (0.7, 2.5)), ((30, 28, 36), (2.0, 1.0, 0.5))])
def test_exact_box_skipping_rows_out_of_reach_equals_scipy(shape, sampling):
    """_exact_sq skips background rows farther than ``reach`` from the box; with the tightest
    valid reach (the box's true maximum) the box's distances are still scipy's."""
    rng = np.random.default_rng(3)
    s = np.asarray(sampling)
    for _ in range(4):
        m = ~(ndimage.binary_dilation(rng.random(shape) < 0.002, iterations=2))
        m[0] = False
        full = ndimage.distance_transform_edt(np.pad(m, 1), sampling=sampling)[(slice(1, -1),) * m.ndim]
        lo = np.asarray([int(rng.integers(0, n // 2)) for n in shape])
        hi = lo + [int(rng.integers(0, n // 3)) for n in shape]
        window = tuple(slice(a, b + 1) for a, b in zip(lo, hi))
        reach = float(full[window].max())
        got = _exact_sq(np.ascontiguousarray(m), s, lo, hi, budget=np.inf, reach=reach)
        np.testing.assert_allclose(np.sqrt(got), full[window], rtol=1e-12, atol=1e-12)


def masks_2d(seed, n):
    """2D layouts for the branch-and-bound path: near-full with rectangular holes and border
    slabs (runs of equal rows), ellipses cut by the border, several equal discs, a wide ridge
    (long plateau of ties), thin strips (fallback), sides not multiples of 8."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = tuple(int(v) for v in rng.integers(101, 330, size=2))
        kind = i % 6
        if kind == 0:
            m = np.ones(shape, bool)
            m[:int(rng.integers(1, 4))] = False
            for _ in range(3):
                lo = [int(rng.integers(0, s - 5)) for s in shape]
                m[tuple(slice(a, a + int(rng.integers(2, 40))) for a in lo)] = False
        elif kind == 1:
            m = ellipsoid(shape, [rng.uniform(0, s) for s in shape], [rng.uniform(s / 3, s) for s in shape])
        elif kind == 2:  # equal discs: tied maxima in separate places
            m = np.zeros(shape, bool)
            r = min(shape) // 5
            for cy, cx in ((r + 2, r + 2), (shape[0] - r - 3, shape[1] - r - 3)):
                m |= ellipsoid(shape, (cy, cx), (r, r))
        elif kind == 3:  # wide ridge: a band, every voxel of its middle row tied
            m = np.zeros(shape, bool)
            m[shape[0] // 3: shape[0] // 3 + int(rng.integers(20, 40))] = True
        elif kind == 4:  # thin strips and a hole: the bounds prove nothing, full transform
            m = np.zeros(shape, bool)
            m[:, ::3] = True
        else:  # sparse single-pixel background
            m = rng.random(shape) > 0.0005
        sampling = None if i % 3 == 0 else tuple(float(v) for v in rng.choice([0.5, 0.7, 1.0, 2.5, 3.0], size=2))
        excluded = None
        if i % 4 == 1:
            excluded = np.zeros(shape, bool)
            top, flat = edt_peak(m, sampling)
            excluded.ravel()[flat[:3]] = True  # the deepest voxels already clicked
            excluded[tuple(rng.integers(0, s, size=30) for s in shape)] = True
        yield m, sampling, excluded


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_2d_branch_and_bound_equals_full_transform(seed):
    for m, sampling, excluded in masks_2d(seed, 12):
        assert_same_peak(m, sampling, excluded)
        for view in (np.asfortranarray(m), m.T.copy().T, m[::-1].copy()[::-1]):
            assert_same_peak(view, sampling, excluded)


def test_2d_bounded_path_gives_the_answer_itself():
    """The branch and bound answers (not the fallback) on the layouts it is made for, and it is
    scipy's answer: near-full with holes and slabs (exact distances at the block centres, also
    with the deepest voxels excluded), a disc cut by the border (coarse transform), anisotropic."""
    m = np.ones((509, 300), bool)
    m[:3] = False
    m[100:140, 50:61] = False
    m[300:302, :] = False  # a background line across: two runs of equal rows
    disc = ellipsoid((260, 333), (0, 150), (200, 120))
    clicked = np.zeros_like(m)
    clicked.ravel()[scipy_peak(m)[1]] = True  # the deepest voxels already clicked
    for mask, sampling, excluded in ((m, None, None), (m, (0.7, 1.3), None), (m, None, clicked),
                                     (disc, None, None), (disc, (2.5, 1.0), None)):
        s = np.ones(2) if sampling is None else np.asarray(sampling)
        found = _bounded_peak_2d(np.ascontiguousarray(mask), s, excluded)
        assert found is not None
        ref_top, ref_flat = scipy_peak(mask, sampling, excluded)
        np.testing.assert_array_equal(found[1], ref_flat)
        assert np.isclose(found[0], ref_top, rtol=1e-12, atol=0)


@pytest.mark.parametrize("sampling", [(1.0, 1.0), (0.7, 2.5), (3.0, 0.5)])
def test_row_table_equals_scipy_on_its_box(sampling):
    """_RowTable merges runs of equal rows and skips rows out of reach; with the tightest valid
    reach (the box's true maximum) its distances at every box voxel are scipy's."""
    rng = np.random.default_rng(11)
    s = np.asarray(sampling)
    for _ in range(6):
        shape = (int(rng.integers(60, 200)), int(rng.integers(60, 200)))
        m = np.ones(shape, bool)
        m[:int(rng.integers(0, 3))] = False
        for _ in range(3):
            lo = [int(rng.integers(0, n - 2)) for n in shape]
            m[tuple(slice(a, a + int(rng.integers(1, 30))) for a in lo)] = False
        m &= ~(rng.random(shape) < 0.001)
        full = ndimage.distance_transform_edt(np.pad(m, 1), sampling=sampling)[1:-1, 1:-1]
        lo = np.asarray([int(rng.integers(0, n // 2)) for n in shape])
        hi = lo + [int(rng.integers(0, n // 3)) for n in shape]
        window = tuple(slice(a, b + 1) for a, b in zip(lo, hi))
        table = _RowTable(m, s)
        table.box(lo, hi, float(full[window].max()))
        ys, xs = (g.ravel() for g in np.indices(hi - lo + 1))
        got = np.sqrt(table.sq(ys + lo[0], xs + lo[1])).reshape(hi - lo + 1)
        np.testing.assert_allclose(got, full[window], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(130, 256), (67, 91), (16, 8), (509, 512)])
def test_coarse_background_flags_equal_per_block_reduction(shape):
    """8^2 block flags from uint64 words equal "holds a background voxel" over each block's
    real voxels, partial blocks at the far edges included, on C and Fortran inputs."""
    rng = np.random.default_rng(5)
    for p in (0.01, 0.5, 0.99):
        m = rng.random(shape) < p
        want = np.empty(tuple(-(-n // 8) for n in shape), bool)
        for b in np.ndindex(want.shape):
            want[b] = not m[b[0] * 8:b[0] * 8 + 8, b[1] * 8:b[1] * 8 + 8].all()
        for view in (m, np.asfortranarray(m)):
            np.testing.assert_array_equal(_coarse_bg_2d(view), want)


def test_2d_center_click_is_the_naive_click_with_equal_components():
    """Two equal near-full halves (8-connected apart) and a satellite: the user picks the first
    of the equal largest components (smaller id) and the same voxel as the naive full-EDT click
    of that component with the same generator."""
    user = get_robot_user("click_largest_center")
    label = np.ones((300, 257), bool)
    label[:, 128] = False  # two equal halves of 300 x 128
    label[40:60, 20:45] = False
    label[200:220, 150:175] = False
    for case in range(4):
        got = user.next_prompt(label, None, make_rng(0, case, "fg", 0, user.name))
        first = np.zeros_like(label)
        first[:, :128] = label[:, :128]
        top, flat = scipy_peak(first)
        pick = flat[int(make_rng(0, case, "fg", 0, user.name).integers(flat.size))]
        assert got.coord == tuple(int(v) for v in np.unravel_index(int(pick), label.shape))


@pytest.mark.parametrize("conn", [4, 8])
def test_collapsed_one_component_test_equals_scipy_label(conn):
    """Collapsing runs of equal rows and columns keeps the components: on images made of
    repeated rows and columns (and with odd widths, Fortran order, diagonal-only contacts)
    the test says "one component" only when scipy's labelling finds one, and always does when
    the rows collapse to a few runs."""
    from omnimedseg.interactive.eligibility import _one_component_2d

    structure = ndimage.generate_binary_structure(2, 1 if conn == 4 else 2)
    rng = np.random.default_rng(conn)
    answers = set()
    for trial in range(60):
        small = rng.random(tuple(int(v) for v in rng.integers(3, 9, size=2))) < rng.uniform(0.5, 0.95)
        if trial % 4 == 0:  # two blocks touching at a corner only: one component at 8, two at 4
            small = np.zeros((4, 4), bool)
            small[:2, :2] = small[2:, 2:] = True
        m = np.repeat(np.repeat(small, rng.integers(1, 60, size=small.shape[0]), axis=0),
                      rng.integers(1, 60, size=small.shape[1]), axis=1)
        if trial % 3 == 1:
            m = np.asfortranarray(m)
        n = ndimage.label(m, structure=structure)[1]
        got = _one_component_2d(m, conn)
        distinct = 1 + int(np.any(m[1:] != m[:-1], axis=1).sum())
        if got:
            assert n == 1
        if distinct <= 16 and distinct * 2 <= m.shape[0]:  # few runs: always decided
            assert got == (n == 1)
        answers.add(got)
    assert answers == {True, False}


def test_components_of_large_2d_masks_equal_scipy_label():
    """find_components on masks large enough for the collapsed test: one near-full component,
    two parts joined only diagonally, a mask with distinct rows; same partition as scipy."""
    near = np.ones((300, 260), bool)
    near[:2] = False
    near[50:90, 30:70] = False
    diagonal = np.zeros((300, 260), bool)
    diagonal[:150, :130] = diagonal[150:, 130:] = True
    disc = ellipsoid((300, 260), (150, 130), (140, 120))
    disc[::7] = False  # background lines: many components
    for m in (near, diagonal, disc):
        for rank in (1, 2):
            _components_checked_against_scipy(m, rank)


def test_bounding_box_equals_argwhere_extent():
    """bounding_box (end-slab shortcut, uint64 words when the last side is a multiple of 8)
    gives the extent of np.argwhere on 1D/2D/3D masks, C and Fortran, sparse and empty."""
    from omnimedseg.interactive.eligibility import bounding_box

    rng = np.random.default_rng(4)
    for trial in range(300):
        ndim = 1 + trial % 3
        shape = tuple(int(v) for v in rng.integers(1, 20, size=ndim))
        if trial % 2:
            shape = shape[:-1] + (8 * int(rng.integers(1, 4)),)
        m = rng.random(shape) < rng.choice([0.0, 0.002, 0.05, 0.5, 1.0])
        if trial % 5 == 0:
            m = np.asfortranarray(m)
        want = None
        if m.any():
            idx = np.argwhere(m)
            want = tuple(slice(int(a), int(b) + 1) for a, b in zip(idx.min(axis=0), idx.max(axis=0)))
        assert bounding_box(m) == want
