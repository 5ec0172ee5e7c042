"""Polygon user (2D; a slice of a volume with ``mode="slice"``): N vertices sampled along the
outer contour of one component.

The contour is the marching-squares level-0.5 line of the component padded by one pixel (what
``skimage.measure.find_contours(pad(C, 1), 0.5)`` gives, with diagonal pixels treated as
connected so an 8-connected component has one outer contour). Its points sit halfway between
an inside and an outside pixel centre. Holes are ignored: the loop enclosing the largest area
is the outer boundary.
"""

from __future__ import annotations

import numpy as np

from omnimedseg.errors import UsageError
from omnimedseg.interactive.base import RobotUser, choose
from omnimedseg.interactive.prompts import Polygon
from omnimedseg.interactive.scribbles import pick_slice, slice_axis_for

__all__ = ["PolygonUser", "outer_contour", "contour_loops"]

# marching-squares segments per case (bits: TL=1, TR=2, BR=4, BL=8), foreground 8-connected;
# edge midpoints: T=top, R=right, B=bottom, L=left
_SEGMENTS = {1: ["TL"], 2: ["TR"], 3: ["LR"], 4: ["RB"], 5: ["TR", "BL"], 6: ["TB"], 7: ["BL"],
             8: ["BL"], 9: ["TB"], 10: ["TL", "RB"], 11: ["RB"], 12: ["LR"], 13: ["TR"], 14: ["TL"]}
# doubled-coordinate offsets of each edge midpoint from the cell's top-left corner (2r, 2c)
_MID = {"T": (0, 1), "R": (1, 2), "B": (2, 1), "L": (1, 0)}


def _signed_area(loop: np.ndarray) -> float:
    r, c = loop[:, 0], loop[:, 1]
    return 0.5 * float(np.dot(r, np.roll(c, -1)) - np.dot(c, np.roll(r, -1)))


def contour_loops(mask: np.ndarray) -> list[np.ndarray]:
    """All closed level-0.5 contours of a 2D mask as ``(K, 2)`` float ``(row, col)`` arrays."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise UsageError(f"contour_loops: expected a 2D mask, found shape {mask.shape}")
    m = np.pad(mask, 1).astype(np.uint8)
    case = m[:-1, :-1] | (m[:-1, 1:] << 1) | (m[1:, 1:] << 2) | (m[1:, :-1] << 3)
    ends_a, ends_b = [], []
    for code, segs in _SEGMENTS.items():
        cells = np.argwhere(case == code) * 2
        if cells.size == 0:
            continue
        for seg in segs:
            ends_a.append(cells + _MID[seg[0]])
            ends_b.append(cells + _MID[seg[1]])
    if not ends_a:
        return []
    a = np.concatenate(ends_a)
    b = np.concatenate(ends_b)
    width = 2 * m.shape[1] + 3
    keys, inv = np.unique(np.concatenate([a[:, 0] * width + a[:, 1], b[:, 0] * width + b[:, 1]]),
                          return_inverse=True)
    n_seg = len(a)
    ia, ib = inv[:n_seg], inv[n_seg:]
    # every midpoint has exactly two segments: build its two neighbours
    nb = np.full((len(keys), 2), -1, dtype=np.int64)
    ends = np.concatenate([ia, ib])
    other = np.concatenate([ib, ia])
    order = np.argsort(ends, kind="stable")
    nb[:, 0] = other[order[0::2]]
    nb[:, 1] = other[order[1::2]]
    pts = np.stack([keys // width, keys % width], axis=1) / 2.0 - 1.0  # undo doubling and padding
    seen = np.zeros(len(keys), dtype=bool)
    loops = []
    for start in range(len(keys)):
        if seen[start]:
            continue
        path = [start]
        seen[start] = True
        prev, cur = start, nb[start, 0]
        while cur != start:
            path.append(cur)
            seen[cur] = True
            nxt = nb[cur, 0] if nb[cur, 0] != prev else nb[cur, 1]
            prev, cur = cur, nxt
        loops.append(pts[path])
    return loops


def outer_contour(mask: np.ndarray) -> np.ndarray:
    """The loop enclosing the largest area, starting at its raster-first point, oriented with
    positive signed area in (row, col) coordinates (deterministic)."""
    loops = contour_loops(mask)
    if not loops:
        return np.zeros((0, 2))
    loop = max(loops, key=lambda p: abs(_signed_area(p)))
    if _signed_area(loop) < 0:
        loop = loop[::-1]
    first = int(np.lexsort((loop[:, 1], loop[:, 0]))[0])
    return np.roll(loop, -first, axis=0)


class PolygonUser(RobotUser):
    """One polygon per call.

    ``n_vertices`` (default 20, >= 3); ``vertex_sampling``: ``"uniform"`` (default: N iid
    arc-length positions, sorted — "sampled uniformly along the boundary") or
    ``"equispaced"`` (random start, equal arc steps). A contour with fewer than N points is used
    whole. 3D input raises UsageError unless ``mode="slice"`` (a lasso on one slice, chosen as
    for scribbles).
    """

    kind = "polygon"

    def __init__(self, n_vertices: int = 20, component: str = "largest", *, vertex_sampling: str = "uniform",
                 mode: str = "2d", slice_axis="auto", slice_choice: str | None = None, **common):
        super().__init__(component=component, **common)
        if isinstance(n_vertices, bool) or not isinstance(n_vertices, (int, np.integer)) or n_vertices < 3:
            raise UsageError(f"n_vertices: expected an int >= 3, found {n_vertices!r}")
        self.n_vertices = int(n_vertices)
        self.vertex_sampling = choose("vertex_sampling", vertex_sampling, ("uniform", "equispaced"))
        self.mode = choose("mode", mode, ("2d", "slice"))
        self.slice_axis = slice_axis
        if slice_choice is not None:
            choose("slice_choice", slice_choice, ("largest", "random"))
        self.slice_choice = slice_choice

    def describe(self) -> str:
        return f"polygon(n_vertices={self.n_vertices}, component={self.component})"

    def prompt_from_eligibility(self, elig, rng, *, spacing=None, previous=()):
        if elig.ndim == 3 and self.mode != "slice":
            raise UsageError("polygon: expected a 2D image, found a 3D volume; use PolygonUser(mode='slice') "
                             "for a polygon on one slice")
        return super().prompt_from_eligibility(elig, rng, spacing=spacing, previous=previous)

    def _prompt(self, elig, comps, rng, spacing, clicked):
        comp = self._select(comps, rng, spacing, None)
        if comp is None:
            return None
        mask = comp.mask()
        offset = np.asarray(comp.lo, dtype=np.float64)
        axis = index = None
        if mask.ndim == 3:
            axis = slice_axis_for(spacing, self.slice_axis)
            how = self.slice_choice or ("random" if self.component == "random" else "largest")
            k = pick_slice(mask, axis, how, rng)
            mask = np.take(mask, k, axis=axis)
            index = int(comp.lo[axis] + k)
            offset = np.delete(offset, axis)
        loop = outer_contour(mask)
        vertices = self._sample(loop, rng) + offset
        return Polygon(vertices=vertices, positive=comp.positive, component_id=comp.id,
                       slice_axis=axis, slice_index=index)

    def _sample(self, loop: np.ndarray, rng) -> np.ndarray:
        if len(loop) < self.n_vertices:
            return loop.copy()
        closed = np.vstack([loop, loop[:1]])
        cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
        perimeter = cum[-1]
        n = self.n_vertices
        if self.vertex_sampling == "uniform":
            s = np.sort(rng.uniform(0.0, perimeter, size=n))
        else:
            s = rng.uniform(0.0, perimeter / n) + np.arange(n) * (perimeter / n)
        return np.stack([np.interp(s, cum, closed[:, 0]), np.interp(s, cum, closed[:, 1])], axis=1)
