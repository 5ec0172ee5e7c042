"""Bounding-box users: perfect, careful (symmetric 5-10 % expansion), sloppy (each side moved
5-10 % in or out).

The box encloses the whole positive part of M by default (``region="all"``: for M = label that
is the object box over all its components); ``region="component"`` boxes one component chosen
by ``component`` (SAM-Med2D boxes the largest component). All corners are inclusive array
indices, clipped to the image.
"""

from __future__ import annotations

import math

import numpy as np

from omnimedseg.errors import UsageError
from omnimedseg.interactive.base import RobotUser, choose
from omnimedseg.interactive.prompts import Box
from omnimedseg.interactive.scribbles import _range, slice_axis_for

__all__ = ["BoxUser", "BOX_STYLES", "BOX_SHAPES"]

BOX_STYLES = ("perfect", "careful", "sloppy")
BOX_SHAPES = ("3d", "cvpr25", "2d_slice")


def _occupancy(comps, axis: int, n: int) -> np.ndarray:
    """Voxel count per index along ``axis`` of the union of ``comps``."""
    area = np.zeros(n, dtype=np.int64)
    for c in comps:
        other = tuple(a for a in range(len(c.slices)) if a != axis)
        area[c.slices[axis]] += c.mask().sum(axis=other)
    return area


def _plane_bbox(comps, axis: int, index: int):
    """In-plane (lo, hi) of the union of ``comps`` on slice ``index`` along ``axis``."""
    lo, hi = None, None
    for c in comps:
        if not (c.slices[axis].start <= index < c.slices[axis].stop):
            continue
        plane = np.take(c.mask(), index - c.slices[axis].start, axis=axis)
        if not plane.any():
            continue
        pts = np.argwhere(plane) + np.asarray([s.start for a, s in enumerate(c.slices) if a != axis])
        plo, phi = pts.min(axis=0), pts.max(axis=0)
        lo = plo if lo is None else np.minimum(lo, plo)
        hi = phi if hi is None else np.maximum(hi, phi)
    return lo, hi


class BoxUser(RobotUser):
    """One box per call.

    ``style``: perfect | careful | sloppy. ``careful_range``/``sloppy_range`` are the fraction
    ranges (default (0.05, 0.10)). ``careful_mode``: ``"symmetric"`` (default: each side moves
    out by ceil(f * L / 2), so the extent grows by ~f) or ``"per_side"`` (each side by
    ceil(f * L)). ``sloppy_allow_shrink`` (default True) lets a side move inward; a side pair
    that would cross (or pass the far side of the object) is redrawn outward, so the box is never
    empty and always overlaps the object's extent on every axis. ``box_shape``: ``"3d"``,
    ``"cvpr25"`` (range along ``slice_axis`` + tight in-plane box on the median occupied slice)
    or ``"2d_slice"`` (extent 1 along ``slice_axis`` on the largest cross-section; perturbation
    only in-plane). ``allow_negative`` (True): box an FP region when there is no FN.
    """

    kind = "box"

    def __init__(self, style: str = "perfect", *, region: str = "all", careful_range=(0.05, 0.10),
                 careful_mode: str = "symmetric", sloppy_range=(0.05, 0.10), sloppy_allow_shrink: bool = True,
                 box_shape: str = "3d", slice_axis="auto", allow_negative: bool = True, **common):
        super().__init__(**common)
        self.style = choose("style", style, BOX_STYLES)
        self.region = choose("region", region, ("all", "component"))
        self.careful_range = _range("careful_range", careful_range)
        self.careful_mode = choose("careful_mode", careful_mode, ("symmetric", "per_side"))
        self.sloppy_range = _range("sloppy_range", sloppy_range)
        self.sloppy_allow_shrink = bool(sloppy_allow_shrink)
        self.box_shape = choose("box_shape", box_shape, BOX_SHAPES)
        self.slice_axis = slice_axis
        self.allow_negative = bool(allow_negative)

    def describe(self) -> str:
        return f"box(style={self.style}, region={self.region})"

    def _prompt(self, elig, comps, rng, spacing, clicked):
        shape = elig.shape
        if self.region == "all":
            cands = self._apply_policy(comps, rng, self._sampling(spacing), None)
            chosen = [c for c in cands if c.positive] or cands
            comp_id = chosen[0].id if len(chosen) == 1 else 0
        else:
            one = self._select(comps, rng, spacing, None)
            chosen, comp_id = [one], one.id
        positive = chosen[0].positive
        if not positive and not self.allow_negative:
            return None
        lo = np.min([c.lo for c in chosen], axis=0)
        hi = np.max([c.hi for c in chosen], axis=0)
        axes = list(range(len(shape)))
        axis = index = None
        if len(shape) == 3 and self.box_shape != "3d":
            axis = slice_axis_for(spacing, self.slice_axis)
            area = _occupancy(chosen, axis, shape[axis])
            if self.box_shape == "cvpr25":
                index = int(np.median(np.flatnonzero(area)))  # median of the unique occupied indices
            else:
                index = int(np.argmax(area))
                axes.remove(axis)
            plo, phi = _plane_bbox(chosen, axis, index)
            in_plane = [a for a in range(3) if a != axis]
            lo[in_plane], hi[in_plane] = plo, phi
            if self.box_shape == "2d_slice":
                lo[axis] = hi[axis] = index
        lo, hi = self._perturb(lo.astype(np.int64), hi.astype(np.int64), axes, shape, rng)
        style = "3d" if len(shape) == 2 else self.box_shape
        return Box(lo=tuple(lo), hi=tuple(hi), positive=positive, component_id=comp_id, style=style,
                   slice_axis=axis, slice_index=index)

    def _perturb(self, lo, hi, axes, shape, rng):
        lo, hi = lo.copy(), hi.copy()
        for d in axes:
            length = int(hi[d] - lo[d] + 1)
            if self.style == "careful":
                f = rng.uniform(*self.careful_range)
                grow = math.ceil(f * length / 2) if self.careful_mode == "symmetric" else math.ceil(f * length)
                lo[d] -= grow
                hi[d] += grow
            elif self.style == "sloppy":
                moves = []
                for _side in (0, 1):
                    delta = max(1, int(round(rng.uniform(*self.sloppy_range) * length)))
                    sign = (1 if rng.random() < 0.5 else -1) if self.sloppy_allow_shrink else 1
                    moves.append((delta, sign))
                new_lo = lo[d] - moves[0][0] * moves[0][1]
                new_hi = hi[d] + moves[1][0] * moves[1][1]
                if new_lo > new_hi or new_lo > hi[d] or new_hi < lo[d]:
                    # the box would be empty or miss the object on this axis: redraw outward
                    new_lo, new_hi = lo[d] - moves[0][0], hi[d] + moves[1][0]
                lo[d], hi[d] = new_lo, new_hi
            lo[d] = min(max(lo[d], 0), shape[d] - 1)
            hi[d] = min(max(hi[d], 0), shape[d] - 1)
        if np.any(lo > hi):  # pragma: no cover - guarded above
            raise UsageError(f"box: internal error, lo={lo} > hi={hi}")
        return lo, hi
