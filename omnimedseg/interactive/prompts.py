"""Prompt value types produced by robot users, and coordinate helpers.

Coordinates are **array indices in array axis order** everywhere in this package:
``(row, col)`` for a 2D ``(H, W)`` image and ``(i, j, k)`` for a 3D ``(D, H, W)`` volume,
i.e. exactly what ``array[coord]`` indexes. SAM-style models want ``(x, y)`` (column first);
convert with :func:`index_to_xy` / :func:`xy_to_index` / :meth:`Box.to_xyxy` at the model
boundary, never inside the simulation.

Prompts are frozen dataclasses; their arrays are made read-only so a prompt cannot change
after it was recorded in an evaluation log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from omnimedseg.errors import UsageError

__all__ = [
    "Prompt",
    "Click",
    "Scribble",
    "Box",
    "Polygon",
    "NoInteraction",
    "index_to_xy",
    "xy_to_index",
    "polygon_to_mask",
    "prompt_to_dict",
    "prompt_from_dict",
]


def _frozen_array(a, dtype) -> np.ndarray:
    a = np.array(a, dtype=dtype, copy=True)
    a.setflags(write=False)
    return a


def _check_shape(shape: Sequence[int], ndim: int, what: str) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != ndim:
        raise UsageError(f"{what}: expected a shape with {ndim} axes, found {shape}")
    return shape


@dataclass(frozen=True, eq=False, kw_only=True)
class Prompt:
    """Base of every prompt: its polarity (positive = "this is the object")."""

    positive: bool

    @property
    def kind(self) -> str:
        return type(self).__name__.lower()

    @property
    def label(self) -> int:
        """1 for positive, 0 for negative (the SAM/nnInteractive point-label convention)."""
        return int(bool(self.positive))

    def to_mask(self, shape: Sequence[int]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True, eq=False, kw_only=True)
class Click(Prompt):
    """One point. ``coord`` is an array index tuple; ``component_id`` says which eligible
    component it came from (1-based, raster order of the component's first voxel)."""

    coord: tuple[int, ...] = ()
    component_id: int = 0

    def __post_init__(self):
        object.__setattr__(self, "coord", tuple(int(c) for c in self.coord))
        object.__setattr__(self, "positive", bool(self.positive))

    def __eq__(self, other):
        return (isinstance(other, Click) and self.coord == other.coord
                and self.positive == other.positive and self.component_id == other.component_id)

    def __hash__(self):
        return hash((self.coord, self.positive, self.component_id))

    @property
    def xy(self) -> tuple[int, ...]:
        """The coordinate in SAM's ``(x, y[, z])`` order."""
        return index_to_xy(self.coord)

    def to_mask(self, shape):
        shape = _check_shape(shape, len(self.coord), "Click.to_mask")
        m = np.zeros(shape, dtype=bool)
        m[self.coord] = True
        return m


@dataclass(frozen=True, eq=False, kw_only=True)
class Scribble(Prompt):
    """A scribble stored sparsely: ``coords`` is an ``(n, ndim)`` int array of voxel indices
    (raster order), ``shape`` the array it lives in. In 3D slice mode every voxel lies on
    ``slice_index`` along ``slice_axis`` (both ``None`` for 2D or volume scribbles)."""

    coords: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    shape: tuple[int, ...] = ()
    component_id: int = 0
    slice_axis: int | None = None
    slice_index: int | None = None

    def __post_init__(self):
        coords = np.asarray(self.coords, dtype=np.int64).reshape(-1, len(self.shape))
        object.__setattr__(self, "coords", _frozen_array(coords, np.int64))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "positive", bool(self.positive))

    def __eq__(self, other):
        return (isinstance(other, Scribble) and self.shape == other.shape
                and self.positive == other.positive and np.array_equal(self.coords, other.coords)
                and (self.slice_axis, self.slice_index) == (other.slice_axis, other.slice_index))

    __hash__ = None  # arrays inside: not hashable

    @property
    def mask(self) -> np.ndarray:
        """Dense boolean mask of the scribble, shape ``self.shape``."""
        return self.to_mask(self.shape)

    def to_mask(self, shape=None):
        shape = self.shape if shape is None else _check_shape(shape, len(self.shape), "Scribble.to_mask")
        m = np.zeros(shape, dtype=bool)
        if len(self.coords):
            m[tuple(self.coords.T)] = True
        return m

    def __len__(self) -> int:
        return int(self.coords.shape[0])


@dataclass(frozen=True, eq=False, kw_only=True)
class Box(Prompt):
    """Axis-aligned box with **inclusive** corners ``lo`` and ``hi`` (array index order).

    ``style`` is ``"3d"`` (full box; also used for 2D), ``"cvpr25"`` (range along
    ``slice_axis`` plus the in-plane box taken on ``slice_index``) or ``"2d_slice"`` (extent 1
    along ``slice_axis``, nnInteractive's 2D box in a volume).
    """

    lo: tuple[int, ...] = ()
    hi: tuple[int, ...] = ()
    component_id: int = 0
    style: str = "3d"
    slice_axis: int | None = None
    slice_index: int | None = None

    def __post_init__(self):
        lo = tuple(int(v) for v in self.lo)
        hi = tuple(int(v) for v in self.hi)
        if len(lo) != len(hi) or any(a > b for a, b in zip(lo, hi)):
            raise UsageError(f"Box: expected lo <= hi on every axis, found lo={lo}, hi={hi}")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)
        object.__setattr__(self, "positive", bool(self.positive))

    def __eq__(self, other):
        return (isinstance(other, Box) and (self.lo, self.hi, self.positive, self.style,
                                            self.slice_axis, self.slice_index)
                == (other.lo, other.hi, other.positive, other.style, other.slice_axis, other.slice_index))

    def __hash__(self):
        return hash((self.lo, self.hi, self.positive, self.style))

    @property
    def extent(self) -> tuple[int, ...]:
        return tuple(h - l + 1 for l, h in zip(self.lo, self.hi))

    def to_slices(self) -> tuple[slice, ...]:
        """Half-open slices (what numpy indexing and nnInteractive's boxes use)."""
        return tuple(slice(l, h + 1) for l, h in zip(self.lo, self.hi))

    def to_mask(self, shape):
        shape = _check_shape(shape, len(self.lo), "Box.to_mask")
        m = np.zeros(shape, dtype=bool)
        m[self.to_slices()] = True
        return m

    def to_xyxy(self, half_open: bool = False) -> tuple[int, ...]:
        """SAM/MedSAM order ``(x_min, y_min, x_max, y_max)`` (3D: ``(x0, y0, z0, x1, y1, z1)``).

        Inclusive maxima by default (MedSAM's convention); ``half_open=True`` adds 1 to the maxima.
        """
        hi = tuple(h + (1 if half_open else 0) for h in self.hi)
        return index_to_xy(self.lo) + index_to_xy(hi)


@dataclass(frozen=True, eq=False, kw_only=True)
class Polygon(Prompt):
    """Closed polygon with ``vertices`` as an ``(N, 2)`` float array of ``(row, col)``
    positions (in-plane order of ``plane_axes`` for a polygon on a slice of a volume)."""

    vertices: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    component_id: int = 0
    slice_axis: int | None = None
    slice_index: int | None = None

    def __post_init__(self):
        v = np.asarray(self.vertices, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != 2:
            raise UsageError(f"Polygon: expected vertices of shape (N, 2), found {v.shape}")
        object.__setattr__(self, "vertices", _frozen_array(v, np.float64))
        object.__setattr__(self, "positive", bool(self.positive))

    def __eq__(self, other):
        return (isinstance(other, Polygon) and self.positive == other.positive
                and np.array_equal(self.vertices, other.vertices)
                and (self.slice_axis, self.slice_index) == (other.slice_axis, other.slice_index))

    __hash__ = None

    def __len__(self) -> int:
        return int(self.vertices.shape[0])

    def to_mask(self, shape):
        """Rasterise (even-odd rule on pixel centres); embeds into the slice for 3D."""
        shape = tuple(int(s) for s in shape)
        if self.slice_axis is None:
            return polygon_to_mask(self.vertices, _check_shape(shape, 2, "Polygon.to_mask"))
        shape = _check_shape(shape, 3, "Polygon.to_mask")
        plane = tuple(s for a, s in enumerate(shape) if a != self.slice_axis)
        m = np.zeros(shape, dtype=bool)
        index = [slice(None)] * 3
        index[self.slice_axis] = self.slice_index
        m[tuple(index)] = polygon_to_mask(self.vertices, plane)
        return m


@dataclass(frozen=True)
class NoInteraction:
    """Recorded instead of a prompt when the eligibility region is empty; the evaluation
    loop carries the previous prediction (and its metrics) forward so curves keep their length."""

    reason: str = "empty_eligibility"


def prompt_to_dict(prompt: Prompt | NoInteraction) -> dict:
    """JSON-friendly record of one interaction with all its geometry, so what was scored can be
    drawn later exactly (:func:`prompt_from_dict` is the inverse)."""
    if isinstance(prompt, NoInteraction):
        return {"kind": "NoInteraction", "reason": prompt.reason}
    out = {"kind": type(prompt).__name__, "positive": bool(prompt.positive),
           "component_id": int(prompt.component_id)}
    if isinstance(prompt, Click):
        out["coord"] = list(prompt.coord)
    elif isinstance(prompt, Box):
        out.update(lo=list(prompt.lo), hi=list(prompt.hi), style=prompt.style)
    elif isinstance(prompt, Scribble):
        out.update(coords=prompt.coords.tolist(), shape=list(prompt.shape), n_voxels=len(prompt))
    elif isinstance(prompt, Polygon):
        out.update(vertices=prompt.vertices.tolist(), n_vertices=len(prompt))
    for attr in ("slice_axis", "slice_index"):
        if getattr(prompt, attr, None) is not None:
            out[attr] = int(getattr(prompt, attr))
    return out


def prompt_from_dict(data: dict) -> Prompt | NoInteraction:
    """The interaction recorded by :func:`prompt_to_dict`."""
    kind = data.get("kind")
    if kind == "NoInteraction":
        return NoInteraction(data.get("reason", "empty_eligibility"))
    common = {"positive": data["positive"], "component_id": data.get("component_id", 0)}
    plane = {k: data[k] for k in ("slice_axis", "slice_index") if k in data}
    if kind == "Click":
        return Click(coord=tuple(data["coord"]), **common)
    if kind == "Box":
        return Box(lo=tuple(data["lo"]), hi=tuple(data["hi"]), style=data.get("style", "3d"), **common, **plane)
    if kind == "Scribble":
        return Scribble(coords=np.asarray(data["coords"], dtype=np.int64).reshape(-1, len(data["shape"])),
                        shape=tuple(data["shape"]), **common, **plane)
    if kind == "Polygon":
        return Polygon(vertices=np.asarray(data["vertices"], dtype=np.float64).reshape(-1, 2), **common, **plane)
    raise UsageError(f"prompt record: expected kind Click, Box, Scribble, Polygon or NoInteraction, found {kind!r}")


def index_to_xy(coord: Sequence) -> tuple:
    """Array-index order ``(row, col)`` / ``(i, j, k)`` -> SAM order ``(x, y)`` / ``(x, y, z)``.

    This is a pure axis reversal: ``x`` is the last array axis (column). The same function
    works on floats (polygon vertices)."""
    return tuple(reversed(tuple(coord)))


def xy_to_index(xy: Sequence) -> tuple:
    """Inverse of :func:`index_to_xy`."""
    return tuple(reversed(tuple(xy)))


def polygon_to_mask(vertices, shape: Sequence[int]) -> np.ndarray:
    """Fill a closed ``(row, col)`` polygon: a pixel is inside when its centre is (even-odd
    rule, half-open in rows so shared vertices count once). Equivalent in purpose to
    ``skimage.draw.polygon2mask`` without the dependency."""
    v = np.asarray(vertices, dtype=np.float64)
    shape = tuple(int(s) for s in shape)
    if v.ndim != 2 or v.shape[1] != 2 or len(shape) != 2:
        raise UsageError(f"polygon_to_mask: expected (N, 2) vertices and a 2D shape, found {v.shape} and {shape}")
    out = np.zeros(shape, dtype=bool)
    if len(v) < 3:
        return out
    r0, c0 = v[:, 0], v[:, 1]
    r1, c1 = np.roll(r0, -1), np.roll(c0, -1)
    lo, hi = np.minimum(r0, r1), np.maximum(r0, r1)
    # rows (pixel-centre y) crossed by each edge: lo <= r < hi
    first = np.maximum(np.ceil(lo), 0).astype(np.int64)
    last = np.minimum(np.ceil(hi) - 1, shape[0] - 1).astype(np.int64)
    count = np.maximum(last - first + 1, 0)
    if count.sum() == 0:
        return out
    edge = np.repeat(np.arange(len(v)), count)
    rows = first[edge] + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
    t = (rows - r0[edge]) / (r1[edge] - r0[edge])
    xs = c0[edge] + t * (c1[edge] - c0[edge])
    order = np.lexsort((xs, rows))
    rows, xs = rows[order], xs[order]
    # crossings pair up within each row (even-odd rule)
    a_rows, xa, xb = rows[0::2], xs[0::2], xs[1::2]
    start = np.clip(np.ceil(xa), 0, shape[1]).astype(np.int64)
    stop = np.clip(np.floor(xb) + 1, 0, shape[1]).astype(np.int64)
    keep = stop > start
    diff = np.zeros((shape[0], shape[1] + 1), dtype=np.int32)
    np.add.at(diff, (a_rows[keep], start[keep]), 1)
    np.add.at(diff, (a_rows[keep], stop[keep]), -1)
    out[:] = np.cumsum(diff, axis=1)[:, :-1] > 0
    return out
