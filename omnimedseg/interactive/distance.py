"""Exact maximum of a component's Euclidean distance transform without the whole transform.

Center clicks, the ``deepest`` component strategy and the ``largest_edt`` FN/FP policy only
need the largest EDT value of a component and the voxels attaining it. On a near-full 256^3
mask the full transform (scipy) takes seconds; this module finds the same voxels exactly from
a coarse transform plus exact distances for a few candidate voxels:

1. Blocks of ``k^ndim`` voxels: ``D(b)`` = EDT of the coarse grid whose zeros are the blocks
   holding a background voxel. For every voxel ``p`` of block ``b`` the distance ``dI(p)`` to
   the background inside the box lies in ``[D(b) - 2h, D(b) + 2h]`` (``h``: largest distance
   from a block centre to one of its voxel centres). The one-voxel zero padding (image border
   counts as background) is exact and analytic: ``border(p) = min_i s_i * min(p_i + 1, n_i - p_i)``.
2. ``LB*`` = the best lower bound over blocks made only of eligible voxels; every block whose
   upper bound is below ``LB*`` cannot hold the maximum.
3. Exact distances of the voxels of the box of the remaining blocks (:func:`_exact_sq`):
   per-row 1D distances then a min over the rows holding background (or a min-plus pass per
   axis restricted to the box when cheaper), skipping the background rows whose
   background is farther than the blocks' upper bound (they cannot hold a nearest background
   voxel), plus the analytic border term.

In 2D (:func:`_bounded_peak_2d`) a 512^2 mask leaves no room for a full-resolution pass
beyond a few reads (the naive full transform takes ~12 ms; a click must take ~1 ms), so the
same bounds drive a branch and bound on exact point distances instead of step 3 on a box:
exact distances at block centres (16^2 blocks when the mask has few runs of equal
background rows, else 8^2 blocks bounded by step 1), then at 4^2 sub-block centres, then at
the voxels of the sub-blocks left; the EDT is 1-Lipschitz, so a block lies within
``d(centre) + h`` of its centre's distance. Point distances come from :class:`_RowTable`.

Hand-written because neither scipy nor the ``edt`` package offer an arg-max-only transform
(``edt`` 3.1 on one thread, measured: 4 ms for a 512^2 near-full mask, where scipy takes 15 ms
and this path 0.3-0.6 ms, and no faster than scipy on 4k-30k pixel crops); the result is the same set of voxels as
``distance_transform_edt`` of the zero-padded mask (tested against it), small or thin
components simply use that full transform.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import ndimage

from omnimedseg.interactive.eligibility import canonical_bool

__all__ = ["edt_peak", "PEAK_RTOL"]

#: voxels within this relative tolerance of the maximum are tied (as the full-EDT path always did)
PEAK_RTOL = 1e-12
#: below this many voxels the full transform is cheaper than the bounds (2D: measured
#: crossover ~10^4 pixels on ellipse crops)
_FULL_BELOW = {2: 10_000, 3: 32_768}
_BLOCK = {2: 4, 3: 4}
#: largest per-row distance table (elements; 32 MB in float64) before the full transform is used
_TABLE_LIMIT = 4_000_000


def edt_peak(mask: np.ndarray, sampling=None, excluded: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """``(top, flat)``: the largest EDT value over ``mask & ~excluded`` (EDT of ``mask`` padded
    by one background voxel, in ``sampling`` units) and the C-order flat indices, ascending, of
    the voxels within ``PEAK_RTOL`` of it. ``(0.0, [])`` when no voxel is eligible."""
    mask = canonical_bool(np.asarray(mask, dtype=bool))
    excluded = None if excluded is None else canonical_bool(np.asarray(excluded, dtype=bool))
    s = np.ones(mask.ndim) if sampling is None else np.broadcast_to(np.asarray(sampling, dtype=np.float64),
                                                                      (mask.ndim,))  # one number: every axis
    k = _BLOCK.get(mask.ndim)
    if k is None or mask.size < _FULL_BELOW[mask.ndim] or min(mask.shape) < 2 * k:
        return _full_peak(mask, sampling, excluded)
    if mask.ndim == 2:
        found = _bounded_peak_2d(np.ascontiguousarray(mask), s, _any_excluded(excluded))
    else:
        found = _bounded_peak(mask, s, excluded, k)
    return _full_peak(mask, sampling, excluded) if found is None else found


def _any_excluded(excluded):
    if excluded is None:
        return None
    return excluded if excluded.any() else None


def _full_peak(mask, sampling, excluded):
    d = ndimage.distance_transform_edt(np.pad(mask, 1), sampling=sampling)[(slice(1, -1),) * mask.ndim]
    if excluded is not None:
        d = np.where(excluded, -1.0, d)
    top = float(d.max()) if d.size else 0.0
    if top <= 0:
        return 0.0, np.zeros(0, dtype=np.int64)
    return top, np.flatnonzero(d >= top * (1 - PEAK_RTOL))


def _block_reduce(a: np.ndarray, k: int, fill: bool, how) -> np.ndarray:
    """``how`` (np.all / np.any) over blocks of ``k`` voxels per axis; the partial last block is
    padded with ``fill``. (Measured faster than one uint8 block sum.)"""
    if k == 4 and a.ndim >= 2 and a.shape[-1] % 4 == 0 and a.flags.c_contiguous:
        return _block_reduce_words(a, fill, how)
    for axis in range(a.ndim):
        n = a.shape[axis]
        nb = -(-n // k)
        if nb * k != n:
            pad = [(0, 0)] * a.ndim
            pad[axis] = (0, nb * k - n)
            a = np.pad(a, pad, constant_values=fill)
        a = how(a.reshape(a.shape[:axis] + (nb, k) + a.shape[axis + 1:]), axis=axis + 1)
    return a


#: a uint32 word of four True bytes (numpy bools are stored as 0/1 bytes)
_ALL_TRUE_WORD = np.frombuffer(np.ones(4, dtype=bool).tobytes(), dtype=np.uint32)[0]
_ALL_TRUE_WORD64 = np.frombuffer(np.ones(8, dtype=bool).tobytes(), dtype=np.uint64)[0]


def _block_reduce_words(a: np.ndarray, fill: bool, how) -> np.ndarray:
    """:func:`_block_reduce` for ``k == 4`` on a C-contiguous array whose last side is a
    multiple of 4: each uint32 word of the bool bytes is one block row along the last axis, so
    the blocks are bitwise OR (any) / AND (all) of words, 8x less data than per-voxel
    reductions (``np.any``/``np.all`` along an axis of 4 were 10x slower on a 512^2 mask)."""
    combine = np.bitwise_and if how is np.all else np.bitwise_or
    w = a.view(np.uint32)
    for axis in range(a.ndim - 1):
        n = w.shape[axis]
        nb = -(-n // 4)
        if nb * 4 != n:
            pad = [(0, 0)] * w.ndim
            pad[axis] = (0, nb * 4 - n)
            w = np.pad(w, pad, constant_values=_ALL_TRUE_WORD if fill else 0)
        w = w.reshape(w.shape[:axis] + (nb, 4) + w.shape[axis + 1:])
        idx = lambda j: (slice(None),) * (axis + 1) + (j,)  # noqa: E731
        w = combine(combine(w[idx(0)], w[idx(1)]), combine(w[idx(2)], w[idx(3)]))
    return w == _ALL_TRUE_WORD if how is np.all else w != 0


@functools.lru_cache(maxsize=64)
def _border_bounds(n: int, s: float, k: int, nb: int):
    """Per block along one axis: min and max over its voxels of ``s * min(i + 1, n - i)``."""
    lo = np.arange(nb) * k
    hi = np.minimum(lo + k, n) - 1
    f = lambda i: s * np.minimum(i + 1, n - i)  # noqa: E731
    peak = np.clip((n - 1) // 2, lo, hi), np.clip(n // 2, lo, hi)
    bounds = np.minimum(f(lo), f(hi)), np.maximum.reduce([f(lo), f(hi), f(peak[0]), f(peak[1])])
    for b in bounds:
        b.setflags(write=False)  # cached: shared between calls
    return bounds


def _row_distances(rows: np.ndarray, z0: int, z1: int) -> np.ndarray:
    """Distance (in voxels) along each row to its nearest background voxel, for z in ``[z0, z1]``;
    the padding at -1 and ``len(row)`` counts as background."""
    nz = rows.shape[1]
    bg_left = ~rows[:, z0::-1]
    left = np.where(bg_left.any(axis=1), z0 - bg_left.argmax(axis=1), -1)
    bg_right = ~rows[:, z1:]
    right = np.where(bg_right.any(axis=1), z1 + bg_right.argmax(axis=1), nz)
    # int32: numpy's running max/min cost per element, half the bytes of int64
    zs = np.arange(z0, z1 + 1, dtype=np.int32)
    # nearest background at or left of z (right of z): running max (min) of background columns
    bg = ~rows[:, z0:z1 + 1]
    lefts = np.where(bg, zs, np.int32(-1))
    lefts[:, 0] = left
    np.maximum.accumulate(lefts, axis=1, out=lefts)
    # right to left on a reversed copy: a running min over a negative stride was 10x slower
    rights = np.where(bg[:, ::-1], zs[::-1], np.int32(nz))
    rights[:, 0] = right
    np.minimum.accumulate(rights, axis=1, out=rights)
    np.subtract(zs, lefts, out=lefts)
    rights = rights[:, ::-1]
    rights -= zs
    return np.minimum(lefts, rights, out=lefts)


def _exact_sq(mask: np.ndarray, s: np.ndarray, lo, hi, budget: float = 4e7,
              reach: float = np.inf) -> np.ndarray | None:
    """Exact squared EDT (one voxel of zero padding) on the box ``[lo, hi]`` (inclusive) of a
    C-contiguous ``mask``, or ``None`` when it would cost more than ``budget`` operations.
    ``reach``: an upper bound of the EDT over the box; rows holding background farther than
    that from the box cannot hold a nearest background voxel and are skipped.

    The transform is separable: 1D distances along the last axis, then a min-plus pass per
    axis. Two ways to evaluate it at the box only, the cheaper is used: (a) every pass
    restricted to the box's coordinates on the axes already passed; (b) only rows (lines along
    the last axis) holding background, by brute force (rows without any have the border as
    their nearest background, which the analytic border term covers)."""
    ndim, shape = mask.ndim, mask.shape
    lo, hi = np.asarray(lo), np.asarray(hi)
    box = hi - lo + 1
    rows = mask.reshape(-1, shape[-1])
    z0, z1 = int(lo[-1]), int(hi[-1])
    n_rows = rows.shape[0]
    # staged: 1D pass on every row, then per axis a (full axis) x (box side) min-plus
    cost_staged, size = n_rows * box[-1], n_rows * box[-1]
    for axis in range(ndim - 2, -1, -1):
        cost_staged += size * box[axis]
        size = size // shape[axis] * box[axis]
    bg_rows = np.flatnonzero(~rows.all(axis=1))
    # squared reach with a margin for the rounding of the bounds that gave it
    reach_sq = reach * reach * (1 + 1e-9) + 1e-9
    if len(bg_rows) and np.isfinite(reach_sq):
        gap = np.stack(np.unravel_index(bg_rows, shape[:-1]), axis=1)  # (R, ndim - 1)
        gap = np.maximum(np.maximum(lo[:-1] - gap, gap - hi[:-1]), 0) * s[:-1]
        bg_rows = bg_rows[np.sum(gap * gap, axis=1) <= reach_sq]
    cost_rows = len(bg_rows) * int(np.prod(box))
    # memory: the per-row distance tables are (rows, box side) int64/float64 arrays
    if n_rows * box[-1] > _TABLE_LIMIT:
        cost_staged = np.inf
    if len(bg_rows) * box[-1] > _TABLE_LIMIT:
        cost_rows = np.inf
    if min(cost_staged, cost_rows) > budget:
        return None
    if cost_rows <= cost_staged:
        g = (_row_distances(rows[bg_rows], z0, z1) * s[-1]) ** 2  # (R, box[-1])
        where = np.stack(np.unravel_index(bg_rows, shape[:-1]), axis=1)  # (R, ndim - 1)
        if np.isfinite(reach_sq) and len(bg_rows):
            # a row whose background is out of reach along the row for every box column
            gap = np.maximum(np.maximum(lo[:-1] - where, where - hi[:-1]), 0) * s[:-1]
            near = np.sum(gap * gap, axis=1) + g.min(axis=1) <= reach_sq
            g, where, bg_rows = g[near], where[near], bg_rows[near]
        pts = np.indices(box[:-1]).reshape(ndim - 1, -1).T + lo[:-1]  # (P, ndim - 1)
        # border term: distance to the padding along each axis
        sq = np.full(tuple(box), np.inf)
        for axis in range(ndim):
            c = np.arange(lo[axis], hi[axis] + 1)
            b = (s[axis] * np.minimum(c + 1, shape[axis] - c)) ** 2
            sq = np.minimum(sq, b.reshape((-1,) + (1,) * (ndim - 1 - axis)))
        flat = sq.reshape(-1, box[-1])
        chunk = max(1, int(4e6 // max(len(bg_rows) * box[-1], 1)))
        for start in range(0, len(pts) if len(bg_rows) else 0, chunk):
            p = pts[start:start + chunk]
            plane = np.sum(((p[:, None, :] - where[None, :, :]) * s[:-1]) ** 2, axis=2)  # (p, R)
            part = flat[start:start + len(p)]
            np.minimum(part, (plane[:, :, None] + g[None]).min(axis=1), out=part)
        return sq
    sq = (s[-1] * _row_distances(rows, z0, z1)) ** 2
    sq = sq.reshape(shape[:-1] + (z1 - z0 + 1,))
    for axis in range(ndim - 2, -1, -1):
        n = shape[axis]
        ys = np.arange(int(lo[axis]), int(hi[axis]) + 1)
        w = (s[axis] * (ys[:, None] - np.arange(n)[None, :])) ** 2  # (box side, n)
        pad = (s[axis] * np.minimum(ys + 1, n - ys)) ** 2
        moved = np.moveaxis(sq, axis, 0)  # (n, rest...)
        rest = moved.shape[1:]
        moved = moved.reshape(n, -1)
        out = np.empty((len(ys), moved.shape[1]))
        step = max(1, int(4e6 // max(n * moved.shape[1], 1)))
        for a in range(0, len(ys), step):
            out[a:a + step] = (moved[None] + w[a:a + step, :, None]).min(axis=1)
        out = np.minimum(out, pad[:, None])
        sq = np.moveaxis(out.reshape((len(ys),) + rest), 0, axis)
    return sq


def _bounded_peak(mask, s, excluded, k):
    ndim, shape = mask.ndim, mask.shape
    mask = np.ascontiguousarray(mask)
    excluded = _any_excluded(excluded)
    has_bg = ~_block_reduce(mask, k, True, np.all)
    has_fg = _block_reduce(mask, k, False, np.any)
    nb = has_bg.shape
    h = 0.5 * (k - 1) * float(np.sqrt(np.sum(s ** 2)))
    if has_bg.any():
        D = ndimage.distance_transform_edt(~has_bg, sampling=k * s)
    else:
        D = np.full(nb, np.inf)
    bmin, bmax = None, None
    for axis in range(ndim):
        lo, hi = _border_bounds(shape[axis], float(s[axis]), k, nb[axis])
        view = [None] * ndim
        view[axis] = slice(None)
        bmin = lo[tuple(view)] if bmin is None else np.minimum(bmin, lo[tuple(view)])
        # max over a box of min_i f_i(p_i) is min_i max f_i: the axes vary independently
        bmax = hi[tuple(view)] if bmax is None else np.minimum(bmax, hi[tuple(view)])
    lower = np.minimum(bmin, D - 2 * h)
    upper = np.minimum(bmax, D + 2 * h)
    full = ~has_bg  # blocks whose real voxels are all in the mask (a partial block has some)
    if excluded is not None:
        full &= ~_block_reduce(excluded, k, False, np.any)
    if not full.any():
        return None
    lower = np.where(full, lower, -np.inf)
    b0 = np.unravel_index(int(np.argmax(lower)), nb)
    # raise the bound with the exact distance of one voxel of the best block
    p0 = np.minimum(np.asarray(b0) * k + k // 2, np.asarray(shape) - 1)
    sq0 = _exact_sq(mask, s, p0, p0, reach=float(upper[b0]))
    if sq0 is None:
        return None
    best = max(float(lower[b0]), float(np.sqrt(sq0.max())))
    if best <= 0:
        return None
    cand_blocks = np.argwhere(has_fg & (upper >= best * (1 - 1e-9)))
    lo = cand_blocks.min(axis=0) * k
    hi = np.minimum(cand_blocks.max(axis=0) * k + k, shape) - 1
    # every voxel of the box lies in a block of the box: its EDT is at most their largest upper bound
    reach = float(upper[tuple(slice(a, b + 1) for a, b in zip(cand_blocks.min(axis=0), cand_blocks.max(axis=0)))].max())
    sq = _exact_sq(mask, s, lo, hi, reach=reach)
    if sq is None:
        return None  # wide plateau (e.g. a long ridge): the full transform is cheaper
    d = np.sqrt(sq)
    window = tuple(slice(a, b + 1) for a, b in zip(lo, hi))
    eligible = mask[window] if excluded is None else mask[window] & ~excluded[window]
    d = np.where(eligible, d, -1.0)
    top = float(d.max())
    local = np.nonzero(d >= top * (1 - PEAK_RTOL))
    flat = np.ravel_multi_index(tuple(a + o for a, o in zip(local, lo)), shape)
    return top, np.sort(flat)


#: 2D: coarse blocks of 8^2 voxels (scipy's EDT of the 64^2 grid of a 512^2 mask: ~110 us,
#: against ~400 us for 4^2 blocks), refined by exact distances at the centres of their 4^2
#: sub-blocks (uint64 words in :func:`_coarse_bg_2d` fix the 8)
_COARSE_2D, _SUB_2D = 8, 4
#: 2D: most voxels given exact distances before the full transform is cheaper
_POINTS_2D = 200_000


def _coarse_bg_2d(mask: np.ndarray) -> np.ndarray:
    """Per block of 8 x 8 voxels: does it hold a background voxel? From uint64 words (8 bools:
    one block row) AND-ed over the block's rows (a partial last block over its real rows); a
    width that is not a multiple of 8 is padded with True (a copy)."""
    h, w = mask.shape
    if w % 8 or not mask.flags.c_contiguous:
        buf = np.ones((h, -(-w // 8) * 8), dtype=bool)
        buf[:, :w] = mask
    else:
        buf = mask
    words = buf.view(np.uint64)
    split = h // 8 * 8
    every = np.bitwise_and.reduce(words[:split].reshape(h // 8, 8, words.shape[1]), axis=1)
    if split < h:
        every = np.concatenate([every, np.bitwise_and.reduce(words[split:], axis=0, keepdims=True)])
    return every != _ALL_TRUE_WORD64


class _RowTable:
    """Exact squared EDT (one voxel of zero padding) of a 2D mask at any voxel of a box whose
    EDT is at most ``reach``: the min over the rows holding background of
    ``(s0 (y - r))^2 + g_r(x)^2`` (``g_r(x)``: distance along row ``r`` to its nearest
    background voxel) and the analytic border term (rows without background are covered by
    it). Runs of equal consecutive rows (a hole's rows, a border slab) are one entry ``[a, b]``,
    whose nearest row to ``y`` is ``y`` clamped to the run: a near-full 512^2 mask has ~10 runs
    for ~100 rows. :meth:`box` tabulates both terms over a box, :meth:`sq` evaluates."""

    def __init__(self, mask, s):
        self.mask, self.s = mask, (float(s[0]), float(s[1]))
        bg = np.flatnonzero(~mask.all(axis=1))
        rows = mask[bg]
        first = np.ones(len(bg), dtype=bool)  # a row that starts a run
        first[1:] = (np.diff(bg) != 1) | np.any(rows[1:] != rows[:-1], axis=1)
        starts = np.flatnonzero(first)
        self.rows = rows[starts]
        self.run_lo = bg[starts].astype(np.float64)
        self.run_hi = bg[np.append(starts[1:], len(bg))[:len(starts)] - 1].astype(np.float64)

    def __len__(self) -> int:
        return len(self.rows)

    def box(self, lo, hi, reach: float) -> None:
        """Tabulate over the box ``[lo, hi]`` (inclusive), leaving out the runs whose
        background is farther than ``reach`` from every voxel of it."""
        s0, s1 = self.s
        reach_sq = reach * reach * (1 + 1e-9) + 1e-9  # margin for the rounding of the bounds
        # (s1 g)^2 as scipy computes it, in place (large temporaries cost page faults)
        gsq = _row_distances(self.rows, int(lo[1]), int(hi[1])).astype(np.float64)
        gsq *= s1
        np.square(gsq, out=gsq)
        near = np.ones(len(gsq), dtype=bool)
        if np.isfinite(reach_sq):
            gap = np.maximum(np.maximum(lo[0] - self.run_hi, self.run_lo - hi[0]), 0) * s0
            near = gap * gap + gsq.min(axis=1, initial=np.inf) <= reach_sq
        ys = np.arange(int(lo[0]), int(hi[0]) + 1)
        dy = np.maximum(np.maximum(self.run_lo[near, None] - ys, ys - self.run_hi[near, None]), 0) * s0
        self.y0, self.x0, self.dysq, self.gsq = int(lo[0]), int(lo[1]), dy * dy, gsq[near]

    def sq(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Squared EDT at voxels ``(ys, xs)`` of the box."""
        (h, w), (s0, s1) = self.mask.shape, self.s
        by = s0 * np.minimum(ys + 1, h - ys)
        bx = s1 * np.minimum(xs + 1, w - xs)
        out = np.minimum(by * by, bx * bx)
        if len(self.gsq):
            # chunks of < 128 kB (16000 values): larger temporaries are mapped afresh (page
            # faults: measured 6x slower for 26k values on a loaded machine), in-place sums
            step = max(1, 16_000 // len(self.gsq))
            for a in range(0, len(ys), step):
                part = slice(a, a + step)
                terms = np.take(self.gsq, xs[part] - self.x0, axis=1)
                terms += np.take(self.dysq, ys[part] - self.y0, axis=1)
                np.minimum(out[part], terms.min(axis=0), out=out[part])
        return out


@functools.lru_cache(maxsize=8)
def _grid(n: int) -> np.ndarray:
    """``(n * n, 2)`` offsets of an ``n x n`` grid, raster order (cached, read-only)."""
    grid = np.indices((n, n)).reshape(2, -1).T
    grid.setflags(write=False)
    return grid


#: blocks whose centres get exact distances first when the mask has few runs of background
#: rows (16^2: a quarter of the evaluations of 8^2 blocks, measured faster on disc crops)
_EXACT_BLOCK = 16
#: below this many candidate sub-blocks their voxels are given exact distances straight away
_DIRECT_SUBS = 16
#: exact distances at every 16^2 block's centre instead of the coarse transform when
#: (runs of background rows) x (blocks) is at most this (near-full masks: a few runs)
_EXACT_COARSE = 65_536


def _eligible(mask, excluded, ys, xs) -> np.ndarray:
    return mask[ys, xs] if excluded is None else mask[ys, xs] & ~excluded[ys, xs]


def _bounded_peak_2d(mask, s, excluded):
    """:func:`edt_peak` in 2D by branch and bound. The EDT is 1-Lipschitz: every voxel of a
    block lies within ``d(centre) + h`` (``h``: largest centre-to-voxel distance). The blocks
    that may hold the maximum: 16^2 blocks from exact distances at their centres when the mask
    has few runs of background rows, else 8^2 blocks from the coarse bounds of step 1 of the
    module docstring; then exact distances at the centres of their 4^2 sub-blocks give the
    sub-blocks that still may; exact distances at their voxels give the arg-max."""
    k = _SUB_2D
    shape = h, w = mask.shape
    table = _RowTable(mask, s)
    K = _EXACT_BLOCK
    nb = (-(-h // K), -(-w // K))
    if len(table) * nb[0] * nb[1] <= _EXACT_COARSE:
        table.box((0, 0), (h - 1, w - 1), np.inf)
        cand = np.indices(nb).reshape(2, -1).T
        # centre at offset K/2: at most K/2 voxels per axis from every voxel of the block
        # (partial blocks at the far edge included)
        cy, cx = np.minimum(cand[:, 0] * K + K // 2, h - 1), np.minimum(cand[:, 1] * K + K // 2, w - 1)
        dc = np.sqrt(table.sq(cy, cx))
        ok = _eligible(mask, excluded, cy, cx)
        if not ok.any():
            return None
        best = float(dc[ok].max())
        cand = cand[dc + math.hypot(K // 2 * s[0], K // 2 * s[1]) >= best * (1 - 1e-9)]
    else:
        K = _COARSE_2D
        nb = (-(-h // K), -(-w // K))
        has_bg = _coarse_bg_2d(mask)
        hb = 0.5 * (K - 1) * math.hypot(s[0], s[1])
        D = ndimage.distance_transform_edt(~has_bg, sampling=K * s) if has_bg.any() else np.full(nb, np.inf)
        (lo0, hi0), (lo1, hi1) = (_border_bounds(shape[a], float(s[a]), K, nb[a]) for a in range(2))
        upper = np.minimum(np.minimum(hi0[:, None], hi1[None, :]), D + 2 * hb)
        full = ~has_bg
        if excluded is not None:
            full &= ~_block_reduce(excluded, K, False, np.any)
        if not full.any():
            return None
        best = float(np.where(full, np.minimum(np.minimum(lo0[:, None], lo1[None, :]), D - 2 * hb), -np.inf).max())
        if best <= 0:
            return None
        cand = np.argwhere(upper >= best * (1 - 1e-9))  # (a block without foreground: upper <= 2h)
        lo = cand.min(axis=0) * K
        hi = np.minimum(cand.max(axis=0) * K + K, shape) - 1
        if len(table) * (hi[1] - lo[1] + 1) > _TABLE_LIMIT:
            return None
        table.box(lo, hi, float(upper[cand[:, 0], cand[:, 1]].max()))
    sub = (cand[:, None, :] * (K // k) + _grid(K // k)[None]).reshape(-1, 2)
    sub = sub[(sub[:, 0] * k < h) & (sub[:, 1] * k < w)]
    if len(sub) > _DIRECT_SUBS:
        cy, cx = np.minimum(sub[:, 0] * k + k // 2, h - 1), np.minimum(sub[:, 1] * k + k // 2, w - 1)
        dc = np.sqrt(table.sq(cy, cx))
        ok = _eligible(mask, excluded, cy, cx)
        if ok.any():
            best = max(best, float(dc[ok].max()))
        sub = sub[dc + math.hypot(k // 2 * s[0], k // 2 * s[1]) >= best * (1 - 1e-9)]
    if len(sub) * k * k > _POINTS_2D:
        return None
    vox = (sub[:, None, :] * k + _grid(k)[None]).reshape(-1, 2)
    vox = vox[(vox[:, 0] < h) & (vox[:, 1] < w)]
    vox = vox[_eligible(mask, excluded, vox[:, 0], vox[:, 1])]
    ys, xs = vox[:, 0], vox[:, 1]
    d = np.sqrt(table.sq(ys, xs))
    top = float(d.max())
    tied = d >= top * (1 - PEAK_RTOL)
    return top, np.sort(ys[tied] * w + xs[tied])
