"""Segmentation metrics: overlap, surface distance and interactive AUC.

Every metric takes a ``prediction`` and a ``reference`` boolean mask (2D or 3D NumPy
arrays of one shape) plus the voxel ``spacing`` in mm, in array axis order, and
returns a plain ``float``. Definitions and the empty-mask conventions are pinned in
``docs/metrics.md``; no metric ever returns NaN, so a missed structure can never drop
silently out of an average.

Two surface representations are used, each matching the implementation its metric is
usually quoted from (the tests check both against those packages):

* NSD uses *surfels* as defined by DeepMind's ``surface-distance`` (Nikolov et al.
  2021): the marching-cubes (2D: marching-squares) surface of the mask, one element
  per 2x2(x2) voxel cell that holds both foreground and background, located at the
  voxel corner shared by that cell and weighted by its area (2D: contour length) in
  mm^2 (mm).
* HD95 and ASSD use *boundary voxels*, as MONAI and medpy do: voxels of the mask with
  at least one face neighbour (4-connected in 2D, 6-connected in 3D) outside the
  mask, where outside the array counts as background.

Distances are exact Euclidean distances in mm between element centres, computed on
the bounding box of ``prediction | reference`` only: elements lying on both surfaces
are at 0, the others search their grid neighbourhood nearest-first, and only what
finds nothing near falls back to a k-d tree of the other surface.
"""

from __future__ import annotations

import abc
import functools
import itertools
import math
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
from scipy import spatial

from omnimedseg.errors import UsageError

__all__ = [
    "ASSD",
    "DEFAULT_HD95_DEFINITION",
    "Dice",
    "HD95",
    "HD95_DEFINITIONS",
    "InteractiveMetric",
    "InteractiveScore",
    "IoU",
    "Metric",
    "NSD",
    "SurfaceDistances",
    "assd",
    "dice",
    "exclude_ignored",
    "hd95",
    "interaction_auc",
    "iou",
    "nsd",
    "surface_distances",
]

HD95_DEFINITIONS = ("max", "pooled")
"""``"max"``: larger of the two directed 95th percentiles (MONAI, MetricsReloaded);
``"pooled"``: 95th percentile of both directed distance sets together (medpy)."""

DEFAULT_HD95_DEFINITION = "max"

# --------------------------------------------------------------------------- inputs


def _as_mask(array, name: str) -> np.ndarray:
    """Returns ``array`` as a bool array; 0/1 integer or float arrays are accepted."""
    try:
        array = np.asarray(array)
    except Exception as error:  # e.g. ragged nested lists
        raise UsageError(f"{name} must be a boolean NumPy array, found {type(array).__name__} ({error})") from None
    if array.dtype == bool:
        return array != 0  # canonical 0/1 bytes: Pillow's 1-bit images hold 0/255 behind a bool dtype
    if array.dtype.kind in "iuf":
        if array.size == 0 or bool(np.all((array == 0) | (array == 1))):
            return array.astype(bool)
        raise UsageError(
            f"{name} must be a boolean mask (values 0/1), found dtype {array.dtype} with other values; "
            f"binarise it first, e.g. {name} > 0 or {name} == label"
        )
    raise UsageError(f"{name} must be a boolean mask, found dtype {array.dtype}")


def _spacing_tuple(spacing, ndim: int) -> tuple[float, ...]:
    """Returns the spacing as ``ndim`` positive floats (mm, array axis order)."""
    if spacing is None:
        return (1.0,) * ndim
    try:
        values = np.asarray(spacing, dtype=float)
    except (TypeError, ValueError):
        raise UsageError(f"spacing must be {ndim} numbers (mm per array axis), found {spacing!r}") from None
    if values.ndim != 1 or values.size != ndim:
        found = "a scalar" if values.ndim == 0 else f"{values.size} values"
        raise UsageError(f"spacing must have {ndim} values (one per array axis, in mm), found {found}")
    if not np.all(np.isfinite(values) & (values > 0)):
        raise UsageError(f"spacing values must be finite and > 0, found {tuple(values.tolist())}")
    return tuple(float(v) for v in values)


def _validated(prediction, reference, spacing) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Checks one (prediction, reference, spacing) call and returns them normalised."""
    prediction = _as_mask(prediction, "prediction")
    reference = _as_mask(reference, "reference")
    if prediction.ndim not in (2, 3):
        raise UsageError(f"masks must be 2D or 3D, found {prediction.ndim}D prediction of shape {prediction.shape}")
    if prediction.shape != reference.shape:
        raise UsageError(
            f"prediction and reference must have the same shape, found {prediction.shape} and {reference.shape}"
        )
    return prediction, reference, _spacing_tuple(spacing, prediction.ndim)


def _check_tolerance(tolerance) -> float:
    try:
        value = float(tolerance)
    except (TypeError, ValueError):
        raise UsageError(f"NSD tolerance must be a number of mm >= 0, found {tolerance!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise UsageError(f"NSD tolerance must be a number of mm >= 0, found {tolerance!r}")
    return value


def _check_definition(definition) -> str:
    if definition not in HD95_DEFINITIONS:
        raise UsageError(f"HD95 definition must be one of {', '.join(HD95_DEFINITIONS)}, found {definition!r}")
    return definition


def _worst_distance(shape: tuple[int, ...], spacing: tuple[float, ...]) -> float:
    """Diagonal of the array's physical extent: larger than any distance inside it."""
    return math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing)))


# --------------------------------------------------------------------------- overlap


def dice(prediction, reference, *, spacing=None) -> float:
    """Dice coefficient 2|P∩R| / (|P|+|R|); 1.0 when both masks are empty.

    Args:
        prediction: Boolean mask, 2D or 3D.
        reference: Boolean mask of the same shape.
        spacing: Accepted for a uniform signature and validated; Dice ignores it.

    Returns:
        The Dice coefficient in [0, 1].
    """
    prediction, reference, _ = _validated(prediction, reference, spacing)
    total = np.count_nonzero(prediction) + np.count_nonzero(reference)
    if total == 0:
        return 1.0
    return 2.0 * np.count_nonzero(prediction & reference) / total


def iou(prediction, reference, *, spacing=None) -> float:
    """Intersection over union |P∩R| / |P∪R| (Jaccard); 1.0 when both masks are empty.

    Args:
        prediction: Boolean mask, 2D or 3D.
        reference: Boolean mask of the same shape.
        spacing: Accepted for a uniform signature and validated; IoU ignores it.

    Returns:
        The IoU in [0, 1].
    """
    prediction, reference, _ = _validated(prediction, reference, spacing)
    union = np.count_nonzero(prediction | reference)
    if union == 0:
        return 1.0
    return np.count_nonzero(prediction & reference) / union


# --------------------------------------------------------------------------- surfel table
#
# A cell of 2x2(x2) voxels is coded by one bit per corner voxel: corner offset
# (o_0, ..., o_{n-1}) in {0, 1}^n owns bit number sum(o_a << a). The surface crossing
# a cell is built by marching squares on each of the cell's square faces (vertices at
# edge midpoints; on a face with two diagonal foreground corners each foreground
# corner is cut off on its own; a cell with more foreground than background corners
# gets its complement's surface). In 3D the face segments close into loops, and each
# loop is cut into as few planar pieces as possible. This reproduces DeepMind's
# marching-cubes lookup table for every code and any spacing (tests/test_metrics.py
# checks all codes).


def _corner_bit(corner: tuple[int, ...]) -> int:
    return sum(o << axis for axis, o in enumerate(corner))


def _cell_faces(ndim: int) -> list[list[tuple[int, ...]]]:
    """The square faces of a cell, each as its 4 corners in cyclic order."""
    faces = []
    for fixed_axis in range(ndim) if ndim == 3 else [None]:
        free = [a for a in range(ndim) if a != fixed_axis]
        for fixed_value in (0, 1) if fixed_axis is not None else [None]:
            cycle = []
            for u, v in ((0, 0), (1, 0), (1, 1), (0, 1)):
                corner = [0] * ndim
                corner[free[0]], corner[free[1]] = u, v
                if fixed_axis is not None:
                    corner[fixed_axis] = fixed_value
                cycle.append(tuple(corner))
            faces.append(cycle)
    return faces


def _face_segments(cycle, inside) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Marching-squares segments on one face; vertices in doubled (integer) coordinates."""

    def midpoint(a, b):
        return tuple(x + y for x, y in zip(a, b))

    edges = [(cycle[t], cycle[(t + 1) % 4]) for t in range(4)]
    crossings = [midpoint(a, b) for a, b in edges if (a in inside) != (b in inside)]
    if len(crossings) == 2:
        return [(crossings[0], crossings[1])]
    if len(crossings) == 4:  # diagonal foreground corners: cut each one off
        return [
            (midpoint(cycle[t], cycle[t - 1]), midpoint(cycle[t], cycle[(t + 1) % 4]))
            for t in range(4)
            if cycle[t] in inside
        ]
    return []


def _closed_loops(segments) -> list[list[np.ndarray]]:
    """Links segments that share vertices into closed polygons."""
    neighbours: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
    for a, b in segments:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    seen: set[tuple[int, ...]] = set()
    loops = []
    for start in neighbours:
        if start in seen:
            continue
        loop, current = [start], start
        seen.add(start)
        while unvisited := [v for v in neighbours[current] if v not in seen]:
            current = unvisited[0]
            seen.add(current)
            loop.append(current)
        loops.append([np.array(v, dtype=float) / 2 for v in loop])
    return loops


def _triangulations(indices: tuple[int, ...]):
    """All triangulations of a polygon given by its vertex indices in order."""
    if len(indices) < 3:
        yield []
        return
    first, last = indices[0], indices[-1]
    for split in range(1, len(indices) - 1):
        for left in _triangulations(indices[: split + 1]):
            for right in _triangulations(indices[split:]):
                yield left + right + [(first, indices[split], last)]


def _plane_direction(normal: np.ndarray) -> tuple[float, ...]:
    """Unit normal with a positive first non-zero component, rounded for set lookups."""
    unit = normal / np.linalg.norm(normal)
    return tuple(np.round(unit * np.sign(unit[np.flatnonzero(unit)[0]]), 9) + 0.0)


def _fewest_planes_normals(loop: list[np.ndarray]) -> list[np.ndarray]:
    """Area vectors of the triangles of the triangulation with the fewest distinct planes."""
    best, best_planes = [], None
    for triangles in _triangulations(tuple(range(len(loop)))):
        normals = [np.cross(loop[b] - loop[a], loop[c] - loop[a]) / 2 for a, b, c in triangles]
        planes = len({_plane_direction(n) for n in normals if np.any(n)})
        if best_planes is None or planes < best_planes:
            best, best_planes = normals, planes
    return best


@functools.lru_cache(maxsize=None)
def _surface_piece_normals(ndim: int) -> np.ndarray:
    """Area (2D: length) vectors of each cell code's surface pieces at unit spacing.

    Returns an array ``(2**(2**ndim), max_pieces, ndim)``, zero-padded. The measure of
    a piece under spacing ``s`` is ``|n * prod(s) / s|`` (the cofactor scaling).
    """
    corners = list(itertools.product((0, 1), repeat=ndim))
    pieces_per_code = []
    for code in range(1 << len(corners)):
        inside = {c for c in corners if code >> _corner_bit(c) & 1}
        if 2 * len(inside) > len(corners):
            inside = set(corners) - inside
        segments = [s for face in _cell_faces(ndim) for s in _face_segments(face, inside)]
        if ndim == 2:  # a segment's normal: the segment turned by 90 degrees
            pieces = [np.array([b[1] - a[1], a[0] - b[0]]) / 2 for a, b in segments]
        else:
            pieces = [n for loop in _closed_loops(segments) for n in _fewest_planes_normals(loop)]
        pieces_per_code.append(pieces)
    table = np.zeros((len(pieces_per_code), max(map(len, pieces_per_code)), ndim))
    for code, pieces in enumerate(pieces_per_code):
        if pieces:
            table[code, : len(pieces)] = pieces
    return table


@functools.lru_cache(maxsize=64)
def _surfel_measure_table(spacing: tuple[float, ...]) -> np.ndarray:
    """Surfel area (mm^2; 2D: contour length in mm) for each cell code."""
    cofactor = np.prod(spacing) / np.asarray(spacing)
    return np.linalg.norm(_surface_piece_normals(len(spacing)) * cofactor, axis=-1).sum(axis=-1)


# --------------------------------------------------------------------------- surfaces


def _exact_lengths(delta: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """sqrt(sum((delta_a * s_a)^2)) of integer offsets, summed axis by axis as scipy's EDT
    does, so that a distance equal to an NSD tolerance compares the same way."""
    delta = delta.astype(float)
    squared = (delta[:, 0] * spacing[0]) ** 2
    for axis in range(1, delta.shape[1]):
        squared += (delta[:, axis] * spacing[axis]) ** 2
    return np.sqrt(squared)


@dataclass(frozen=True)
class _Neighbourhood:
    """Grid offsets searched around an element before falling back to a k-d tree.

    The box has half-width ``half[a]`` = ceil(R / spacing[a]) voxels with R = the
    largest spacing, capped at 4x the smallest (a few hundred offsets at most), so
    anything outside it is at least ``exact_radius`` = min_a (half[a] + 1) * spacing[a]
    away. Only offsets no longer than that are kept, shortest first: the first one
    that hits the other surface gives the exact nearest distance.
    """

    half: tuple[int, ...]
    offsets: np.ndarray
    lengths: np.ndarray
    exact_radius: float


@functools.lru_cache(maxsize=64)
def _neighbourhood(spacing: tuple[float, ...]) -> _Neighbourhood:
    reach = min(max(spacing), 4 * min(spacing))
    half = tuple(max(1, math.ceil(reach / s)) for s in spacing)
    exact_radius = float(min((h + 1) * s for h, s in zip(half, spacing)))
    offsets = np.array(list(itertools.product(*[range(-h, h + 1) for h in half])))
    offsets = offsets[np.any(offsets != 0, axis=1)]
    lengths = _exact_lengths(offsets, spacing)
    order = np.argsort(lengths, kind="stable")
    keep = order[lengths[order] <= exact_radius]
    return _Neighbourhood(half, offsets[keep], lengths[keep], exact_radius)


def _union_box(prediction: np.ndarray, reference: np.ndarray) -> tuple[slice, ...] | None:
    """Bounding box of ``prediction | reference``; None when both are empty."""
    union = prediction | reference
    box = []
    for axis in range(union.ndim):
        hits = np.flatnonzero(union.any(axis=tuple(a for a in range(union.ndim) if a != axis)))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def _padded_crops(prediction, reference, spacing) -> list[np.ndarray] | None:
    """Both masks cut to the box of their union, with background around it.

    The margin (1 + the neighbourhood half-width per axis) keeps every surface element
    at least the half-width away from the array edge, so the neighbourhood search
    never leaves the grid. None when both masks are empty.
    """
    box = _union_box(prediction, reference)
    if box is None:
        return None
    margin = [(h + 1, h + 1) for h in _neighbourhood(spacing).half]
    return [np.ascontiguousarray(np.pad(mask[box], margin)) for mask in (prediction, reference)]


def _neighbour_slices(ndim: int, axis: int) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices selecting index i and index i + 1 along ``axis`` (all of the other axes)."""
    low, high = [slice(None)] * ndim, [slice(None)] * ndim
    low[axis], high[axis] = slice(None, -1), slice(1, None)
    return tuple(low), tuple(high)


def _boundary_voxels(padded: np.ndarray) -> np.ndarray:
    """Foreground voxels with a face neighbour in the background (same grid)."""
    interior = padded.copy()
    for axis in range(padded.ndim):
        low, high = _neighbour_slices(padded.ndim, axis)
        interior[low] &= padded[high]
        interior[high] &= padded[low]
    return padded & ~interior


def _cell_codes(padded: np.ndarray) -> np.ndarray:
    """Code of every 2x2(x2) cell, combined one axis at a time (cell g spans voxels g, g+1)."""
    codes = padded.view(np.uint8)
    for axis in range(padded.ndim):
        low, high = _neighbour_slices(padded.ndim, axis)
        codes = codes[low] | (codes[high] << np.uint8(1 << axis))
    return codes


@dataclass
class _Surface:
    """Surface elements on a grid shared with the other mask, plus their weights."""

    grid: np.ndarray  # bool: True at surface elements
    spacing: tuple[float, ...]
    weights: np.ndarray | None = None  # per element, in np.flatnonzero(grid) order

    @functools.cached_property
    def flat(self) -> np.ndarray:
        return np.flatnonzero(self.grid)

    def coords(self, elements: np.ndarray | None = None) -> np.ndarray:
        """Grid coordinates of the given elements (indices into ``flat``), or of all."""
        flat = self.flat if elements is None else self.flat[elements]
        return np.column_stack(np.unravel_index(flat, self.grid.shape))

    @functools.cached_property
    def tree(self) -> spatial.cKDTree:
        points = self.coords() * np.asarray(self.spacing)
        return spatial.cKDTree(points, leafsize=64, balanced_tree=False, compact_nodes=False)


def _near_distances(source: _Surface, target: _Surface) -> tuple[np.ndarray, float]:
    """Distances (mm) from the elements of ``source`` that have ``target`` elements nearby.

    Elements on both surfaces are at 0. The others search the neighbourhood on the
    grid, nearest offsets first. Elements with nothing found stay ``inf``.

    Returns:
        (distances, beyond): every ``inf`` element's true distance is >= ``beyond``,
        and every finite one is <= ``beyond``.
    """
    distances = np.zeros(source.flat.size)
    target_grid = target.grid.ravel()
    pending = np.flatnonzero(~target_grid[source.flat])
    positions = source.flat[pending]
    neighbourhood = _neighbourhood(source.spacing)
    # Offsets into the row-major (ravel) positions above: strides from the shape, never
    # from memory (a Fortran-ordered or transposed grid has other memory strides).
    strides = np.array([math.prod(target.grid.shape[axis + 1 :]) for axis in range(target.grid.ndim)])
    initially_pending = pending.size
    idle_offsets = 0  # consecutive offsets that resolved under 1% of what was pending
    for index, (step, length) in enumerate(zip(neighbourhood.offsets @ strides, neighbourhood.lengths)):
        if pending.size == 0:
            break
        if idle_offsets >= 2 * source.grid.ndim and 2 * pending.size > initially_pending:
            # Mostly far-apart surfaces: a k-d tree is cheaper than the rest of the loop.
            distances[pending] = np.inf
            return distances, float(neighbourhood.lengths[index])
        hit = target_grid[positions + step]
        distances[pending[hit]] = length
        idle_offsets = idle_offsets + 1 if np.count_nonzero(hit) * 100 < pending.size else 0
        pending, positions = pending[~hit], positions[~hit]
    # Nothing within the searched offsets, nor outside the box: beyond exact_radius.
    distances[pending] = np.inf
    return distances, neighbourhood.exact_radius


def _fill_far(source: _Surface, target: _Surface, distances: np.ndarray, within: float | None = None) -> None:
    """Replaces ``inf`` entries by exact distances from a k-d tree of ``target``.

    With ``within``, entries farther than it stay ``inf``.
    """
    far = np.flatnonzero(np.isinf(distances))
    if far.size == 0:
        return
    points = source.coords(far)
    bound = np.inf if within is None else within * (1 + 1e-9) + 1e-12
    _, nearest = target.tree.query(points * np.asarray(source.spacing), k=1, distance_upper_bound=bound)
    found = nearest < target.flat.size
    delta = points[found] - target.coords(nearest[found])
    distances[far[found]] = _exact_lengths(delta, source.spacing)


def _boundary_surfaces(prediction, reference, spacing) -> list[_Surface] | None:
    """Boundary voxels of both masks on one grid; None when both masks are empty."""
    crops = _padded_crops(prediction, reference, spacing)
    return None if crops is None else [_Surface(_boundary_voxels(crop), spacing) for crop in crops]


class SurfaceDistances(NamedTuple):
    """Directed boundary-voxel distances in mm, one per boundary voxel (raster order)."""

    prediction_to_reference: np.ndarray
    reference_to_prediction: np.ndarray


def _exact_boundary_distances(surfaces: list[_Surface]) -> SurfaceDistances:
    """Both directed distance arrays, all exact (``inf`` only towards an empty mask)."""
    if not (surfaces[0].flat.size and surfaces[1].flat.size):
        return SurfaceDistances(*(np.full(s.flat.size, np.inf) for s in surfaces))
    directed = []
    for source, target in ((surfaces[0], surfaces[1]), (surfaces[1], surfaces[0])):
        distances, _ = _near_distances(source, target)
        _fill_far(source, target, distances)
        directed.append(distances)
    return SurfaceDistances(*directed)


def surface_distances(prediction, reference, *, spacing=None) -> SurfaceDistances:
    """Distances from each boundary voxel of one mask to the other mask's boundary.

    The building block of :func:`hd95` and :func:`assd`, for other statistics (e.g.
    the full Hausdorff distance is the maximum over both arrays). An empty mask has no
    boundary voxels; the other mask's distances are then ``inf``.

    Args:
        prediction: Boolean mask, 2D or 3D.
        reference: Boolean mask of the same shape.
        spacing: Voxel size in mm per array axis; default 1.0 each.

    Returns:
        ``SurfaceDistances(prediction_to_reference, reference_to_prediction)``.
    """
    prediction, reference, spacing = _validated(prediction, reference, spacing)
    surfaces = _boundary_surfaces(prediction, reference, spacing)
    if surfaces is None:
        return SurfaceDistances(np.zeros(0), np.zeros(0))
    return _exact_boundary_distances(surfaces)


# --------------------------------------------------------------------------- surface metrics


def nsd(prediction, reference, *, tolerance: float, spacing=None) -> float:
    """Normalised surface distance (surface Dice) at ``tolerance`` mm.

    The fraction of the total surfel area of both masks lying within ``tolerance``
    (inclusive) of the other mask's surface; surfels as in DeepMind's
    ``surface-distance``. 1.0 when both masks are empty, 0.0 when exactly one is.

    Args:
        prediction: Boolean mask, 2D or 3D.
        reference: Boolean mask of the same shape.
        tolerance: Accepted distance in mm (e.g. 2.0 in the CVPR 2025 challenge).
        spacing: Voxel size in mm per array axis; default 1.0 each.

    Returns:
        NSD in [0, 1].
    """
    prediction, reference, spacing = _validated(prediction, reference, spacing)
    tolerance = _check_tolerance(tolerance)
    crops = _padded_crops(prediction, reference, spacing)
    if crops is None:
        return 1.0
    if not (crops[0].any() and crops[1].any()):
        return 0.0
    measure = _surfel_measure_table(spacing)
    all_foreground = (1 << (1 << prediction.ndim)) - 1
    surfaces = []
    for crop in crops:
        codes = _cell_codes(crop)
        # Mixed cells only: codes 1 .. all_foreground - 1 (code 0 wraps around to 255).
        surface = _Surface((codes - np.uint8(1)) < all_foreground - 1, spacing)
        surface.weights = measure[codes.ravel()[surface.flat]]
        surfaces.append(surface)
    close = 0.0
    for source, target in ((surfaces[0], surfaces[1]), (surfaces[1], surfaces[0])):
        distances, beyond = _near_distances(source, target)
        if tolerance >= beyond:
            _fill_far(source, target, distances, within=tolerance)
        close += source.weights[distances <= tolerance].sum()
    return float(close / (surfaces[0].weights.sum() + surfaces[1].weights.sum()))


def _settled_percentile_95(values: np.ndarray, beyond: float) -> float | None:
    """95th percentile of ``values`` whose ``inf`` entries are only known to be >= ``beyond``;
    None when the result depends on them (linear interpolation uses ranks floor/ceil(h))."""
    upper_rank = math.ceil(0.95 * (values.size - 1))
    if np.count_nonzero(values <= beyond) <= upper_rank:
        return None
    # the unknown entries only ever get weight 0 here, but 0 * inf is NaN (when 0.95 (n - 1) is whole): cap them
    return float(np.percentile(np.minimum(values, beyond), 95))


def hd95(prediction, reference, *, spacing=None, definition: str = DEFAULT_HD95_DEFINITION) -> float:
    """95th-percentile Hausdorff distance in mm between the boundary voxels.

    Percentiles interpolate linearly (``numpy.percentile`` default). 0.0 when both
    masks are empty; the diagonal of the array's extent in mm when exactly one is.

    Args:
        prediction: Boolean mask, 2D or 3D.
        reference: Boolean mask of the same shape.
        spacing: Voxel size in mm per array axis; default 1.0 each.
        definition: ``"max"`` (default): the larger of the two directed 95th
            percentiles, as MONAI and MetricsReloaded compute it. ``"pooled"``: the
            95th percentile of both directed distance sets together, as medpy does.

    Returns:
        HD95 in mm.
    """
    prediction, reference, spacing = _validated(prediction, reference, spacing)
    definition = _check_definition(definition)
    surfaces = _boundary_surfaces(prediction, reference, spacing)
    if surfaces is None:
        return 0.0
    if not (surfaces[0].flat.size and surfaces[1].flat.size):
        return _worst_distance(prediction.shape, spacing)
    # Far elements need a k-d tree; skip it when the percentile is settled without them.
    pairs = ((surfaces[0], surfaces[1]), (surfaces[1], surfaces[0]))
    near = [_near_distances(source, target) for source, target in pairs]
    if definition == "pooled":
        value = _settled_percentile_95(np.concatenate([d for d, _ in near]), min(b for _, b in near))
        if value is None:
            value = float(np.percentile(np.concatenate(_exact_boundary_distances(surfaces)), 95))
        return value
    percentiles = []
    for (source, target), (distances, beyond) in zip(pairs, near):
        value = _settled_percentile_95(distances, beyond)
        if value is None:
            _fill_far(source, target, distances)
            value = float(np.percentile(distances, 95))
        percentiles.append(value)
    return max(percentiles)


def assd(prediction, reference, *, spacing=None) -> float:
    """Average symmetric surface distance in mm between the boundary voxels.

    The mean, over the boundary voxels of both masks together, of the distance to the
    other mask's boundary (as MONAI ``symmetric=True`` and medpy 0.5 compute it).
    0.0 when both masks are empty; the array's diagonal in mm when exactly one is.

    Args:
        prediction: Boolean mask, 2D or 3D.
        reference: Boolean mask of the same shape.
        spacing: Voxel size in mm per array axis; default 1.0 each.

    Returns:
        ASSD in mm.
    """
    prediction, reference, spacing = _validated(prediction, reference, spacing)
    surfaces = _boundary_surfaces(prediction, reference, spacing)
    if surfaces is None:
        return 0.0
    if not (surfaces[0].flat.size and surfaces[1].flat.size):
        return _worst_distance(prediction.shape, spacing)
    return float(np.concatenate(_exact_boundary_distances(surfaces)).mean())


# --------------------------------------------------------------------------- metric objects


def exclude_ignored(prediction, reference, ignore) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, reference) with the ``ignore`` pixels/voxels (unlabelled, outside the field of view) removed.

    Both masks are cleared where ``ignore`` is True, so neither overlap nor surfaces count
    there: the ignore region is scored as if both agreed it is background. This is how
    the metric objects (``Dice()(p, r, ignore=...)`` ...) exclude a dataset's ignore mask.
    """
    prediction, reference = _as_mask(prediction, "prediction"), _as_mask(reference, "reference")
    ignore = _as_mask(ignore, "ignore")
    if ignore.shape != reference.shape:
        raise UsageError(f"ignore must have the reference's shape {reference.shape}, found {ignore.shape}")
    return prediction & ~ignore, reference & ~ignore



class Metric(abc.ABC):
    """A per-case score of a prediction against a reference mask.

    Subclasses set ``name`` (a short column name) and ``higher_is_better``, and
    implement ``__call__`` with the signature of the metric functions.
    """

    name: str
    higher_is_better: bool

    @abc.abstractmethod
    def __call__(self, prediction, reference, *, spacing=None, ignore=None) -> float:
        """Scores one case; ``ignore`` (bool mask) is excluded, see :func:`exclude_ignored`."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Dice(Metric):
    """Dice coefficient; see :func:`dice`."""

    name = "dice"
    higher_is_better = True

    def __call__(self, prediction, reference, *, spacing=None, ignore=None) -> float:
        if ignore is not None:
            prediction, reference = exclude_ignored(prediction, reference, ignore)
        return dice(prediction, reference, spacing=spacing)


class IoU(Metric):
    """Intersection over union; see :func:`iou`."""

    name = "iou"
    higher_is_better = True

    def __call__(self, prediction, reference, *, spacing=None, ignore=None) -> float:
        if ignore is not None:
            prediction, reference = exclude_ignored(prediction, reference, ignore)
        return iou(prediction, reference, spacing=spacing)


class NSD(Metric):
    """Normalised surface distance at a fixed tolerance in mm; see :func:`nsd`."""

    higher_is_better = True

    def __init__(self, tolerance: float):
        self.tolerance = _check_tolerance(tolerance)
        self.name = f"nsd_{self.tolerance:g}mm"

    def __call__(self, prediction, reference, *, spacing=None, ignore=None) -> float:
        if ignore is not None:
            prediction, reference = exclude_ignored(prediction, reference, ignore)
        return nsd(prediction, reference, tolerance=self.tolerance, spacing=spacing)

    def __repr__(self) -> str:
        return f"NSD(tolerance={self.tolerance:g})"


class HD95(Metric):
    """95th-percentile Hausdorff distance; see :func:`hd95` for the definitions."""

    higher_is_better = False

    def __init__(self, definition: str = DEFAULT_HD95_DEFINITION):
        self.definition = _check_definition(definition)
        self.name = "hd95" if definition == DEFAULT_HD95_DEFINITION else f"hd95_{definition}"

    def __call__(self, prediction, reference, *, spacing=None, ignore=None) -> float:
        if ignore is not None:
            prediction, reference = exclude_ignored(prediction, reference, ignore)
        return hd95(prediction, reference, spacing=spacing, definition=self.definition)

    def __repr__(self) -> str:
        return f"HD95(definition={self.definition!r})"


class ASSD(Metric):
    """Average symmetric surface distance; see :func:`assd`."""

    name = "assd"
    higher_is_better = False

    def __call__(self, prediction, reference, *, spacing=None, ignore=None) -> float:
        if ignore is not None:
            prediction, reference = exclude_ignored(prediction, reference, ignore)
        return assd(prediction, reference, spacing=spacing)


# --------------------------------------------------------------------------- interactive


def interaction_auc(step_values: Sequence[float], *, include_step0: bool = True, normalise: bool = False) -> float:
    """Trapezoidal area under a metric-per-interaction-step curve (x = step index).

    Args:
        step_values: The metric after each step; index 0 is the initial prompt (or
            no prompt), index t the state after interaction t.
        include_step0: False drops index 0 first (CVPR 2025 integrates the click
            steps only; autoPET IV and ToothFairy3 include step 0).
        normalise: Divide by (number of integrated steps - 1), giving a mean-like
            value in the metric's own range that does not depend on the budget.

    Returns:
        The raw or normalised AUC.
    """
    values = np.asarray(step_values, dtype=float)
    if values.ndim != 1:
        raise UsageError(f"step values must be a 1D sequence, found shape {values.shape}")
    if not include_step0:
        values = values[1:]
    if values.size < 2:
        dropped = " after dropping step 0" if not include_step0 else ""
        raise UsageError(f"an interaction AUC needs at least 2 steps, found {values.size}{dropped}")
    if not np.all(np.isfinite(values)):
        raise UsageError(f"step values must be finite, found {values.tolist()}")
    # Trapezoid rule with unit spacing, written out: np.trapz is gone in NumPy 2.4.
    auc = float(values.sum() - (values[0] + values[-1]) / 2)
    return auc / (values.size - 1) if normalise else auc


@dataclass(frozen=True)
class InteractiveScore:
    """One case's interactive result: the curve and its summaries."""

    step_values: tuple[float, ...]
    auc: float  # raw trapezoid, x = step index
    auc_normalised: float  # auc / (number of integrated steps - 1)
    final: float  # value after the last step
    include_step0: bool


class InteractiveMetric:
    """Turns a :class:`Metric` into AUC over interaction steps and Final.

    Args:
        metric: The per-step metric, e.g. ``Dice()`` or ``NSD(tolerance=2.0)``.
        include_step0: Whether the AUC integrates step 0 (default True); see
            :func:`interaction_auc`.
    """

    def __init__(self, metric: Metric, *, include_step0: bool = True):
        if not isinstance(metric, Metric):
            raise UsageError(f"InteractiveMetric needs a Metric instance, found {type(metric).__name__}")
        self.metric = metric
        self.include_step0 = bool(include_step0)
        self.name = metric.name
        self.higher_is_better = metric.higher_is_better

    def summarise(self, step_values: Sequence[float]) -> InteractiveScore:
        """Summarises metric values already recorded at each step."""
        values = tuple(float(v) for v in step_values)
        return InteractiveScore(
            step_values=values,
            auc=interaction_auc(values, include_step0=self.include_step0),
            auc_normalised=interaction_auc(values, include_step0=self.include_step0, normalise=True),
            final=values[-1],
            include_step0=self.include_step0,
        )

    def __call__(self, predictions: Sequence, reference, *, spacing=None, ignore=None) -> InteractiveScore:
        """Scores the prediction after each step against one reference (``ignore`` excluded)."""
        return self.summarise([self.metric(p, reference, spacing=spacing, ignore=ignore) for p in predictions])

    def __repr__(self) -> str:
        return f"InteractiveMetric({self.metric!r}, include_step0={self.include_step0})"


METRICS: dict[str, type[Metric]] = {"dice": Dice, "iou": IoU, "nsd": NSD, "hd95": HD95, "assd": ASSD}


def get_metric(name: str, **params) -> Metric:
    """A metric by its short name with its parameters, e.g. ``get_metric("nsd", tolerance=2.0)``."""
    cls = METRICS.get(name)
    if cls is None:
        raise UsageError(f"unknown metric {name!r}; expected one of {', '.join(METRICS)}")
    try:
        return cls(**params)
    except TypeError as exc:
        raise UsageError(f"metric {name!r}: bad parameters {params}: {exc}") from None
