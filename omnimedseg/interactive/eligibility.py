"""Eligibility region M = f(image, label, prediction) and its connected components.

M says where a robot user may interact and with which polarity:

* ``target="label"`` (non-iterative, positive): M = label.
* ``target="background"`` (non-iterative, negative): M = not label, optionally limited to the
  label's bounding box grown by ``background_margin`` voxels.
* ``target="errors"`` (iterative): false negatives FN = label & ~prediction (positive) and false
  positives FP = ~label & prediction (negative), **kept as two separate masks** so a touching
  FN/FP pair never becomes one component (CVPR25's XOR map merges them; RITM/SAM do not).
* ``target="auto"`` (default): ``"label"`` when ``prediction is None``, else ``"errors"``.

Components are labelled per polarity, only inside the bounding box of that polarity's mask,
which is what keeps 256^3 volumes fast.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Sequence

import cc3d
import numpy as np
from scipy import ndimage

from omnimedseg.errors import UsageError

__all__ = ["Eligibility", "Component", "eligibility", "find_components", "as_binary",
           "check_spacing", "bounding_box", "TARGETS"]

TARGETS = ("auto", "label", "errors", "background")


def canonical_bool(a: np.ndarray) -> np.ndarray:
    """``a`` (bool) with every byte 0 or 1. A bool array over other bytes is valid NumPy (``.view(bool)``,
    ``np.frombuffer``; Pillow's 1-bit images hold 0/255), but the word-wise passes here and in
    :mod:`.distance` compare bytes with 1; the check reads the bytes once, a copy is made only when needed."""
    return a.view(np.uint8) != 0 if a.size and a.view(np.uint8).max() > 1 else a


def as_binary(a, name: str, ndim: Sequence[int] = (2, 3), shape=None) -> np.ndarray:
    """Return ``a`` as a bool array; integers/floats must hold only 0 and 1 (a multi-class map
    passed by mistake would otherwise silently become "any class")."""
    a = np.asarray(a)
    if a.ndim not in ndim:
        raise UsageError(f"{name}: expected a {' or '.join(map(str, ndim))}D array, found shape {a.shape}")
    if shape is not None and a.shape != tuple(shape):
        raise UsageError(f"{name}: expected shape {tuple(shape)} (same as label), found {a.shape}")
    if a.dtype == bool:
        return canonical_bool(a)
    if a.dtype.kind not in "iuf":
        raise UsageError(f"{name}: expected a bool or 0/1 numeric array, found dtype {a.dtype}")
    b = a != 0
    if np.any(a[b] != 1):
        raise UsageError(f"{name}: expected values in {{0, 1}} (one binary class), found values "
                         f"{np.unique(a)[:6].tolist()}; compare with the class id or threshold first")
    return b


def check_spacing(spacing, ndim: int) -> tuple[float, ...]:
    """Spacing in array axis order; ``None`` means 1.0 on every axis."""
    if spacing is None:
        return (1.0,) * ndim
    try:
        sp = tuple(float(s) for s in spacing)
    except TypeError:
        raise UsageError(f"spacing: expected a sequence of {ndim} positive floats, found {spacing!r}") from None
    if len(sp) != ndim or not all(np.isfinite(s) and s > 0 for s in sp):
        raise UsageError(f"spacing: expected {ndim} positive finite floats (array axis order), found {sp}")
    return sp


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """Half-open bounding box of the True voxels, or ``None`` when empty. Per axis: when its
    first and last slabs both hold a True voxel the range is the whole side (two slab reads),
    otherwise one pass over the box found so far, on uint64 words (8 bools each) when the last
    side allows it: 8x fewer elements to reduce."""
    words = mask.dtype == bool and mask.ndim and mask.shape[-1] % 8 == 0 and mask.flags.c_contiguous
    data = mask.view(np.uint64) if words else mask
    slices = []
    for axis in range(mask.ndim):
        n = mask.shape[axis]
        ends = (slice(None),) * axis
        if n and mask[ends + (0,)].any() and mask[ends + (n - 1,)].any():
            slices.append(slice(0, n))
            continue
        other = tuple(a for a in range(mask.ndim) if a != axis)
        if not other:
            hit = np.flatnonzero(data.view(np.uint8) if words else data)
        elif words:  # OR of words (2x faster than np.any of them); bytes of the last axis
            some = np.bitwise_or.reduce(data, axis=other)
            hit = np.flatnonzero(some.view(np.uint8) if axis == mask.ndim - 1 else some)
        else:
            hit = np.flatnonzero(np.any(data, axis=other))
        if hit.size == 0:
            return None
        slices.append(slice(int(hit[0]), int(hit[-1]) + 1))
        if axis < mask.ndim - 1:  # later axes search the box found so far (the words' last axis is not narrowed)
            mask, data = mask[ends + (slices[-1],)], data[ends + (slices[-1],)]
    return tuple(slices)


@dataclass(frozen=True)
class Eligibility:
    """Where a robot user may interact: ``positive`` (label or FN) and ``negative`` (FP or
    background) masks, never overlapping."""

    positive: np.ndarray
    negative: np.ndarray
    target: str

    @property
    def shape(self) -> tuple[int, ...]:
        return self.positive.shape

    @property
    def ndim(self) -> int:
        return self.positive.ndim

    @property
    def labels(self) -> np.ndarray:
        """The 2-label map (0 = not eligible, 1 = positive/FN, 2 = negative/FP)."""
        out = self.positive.astype(np.uint8)
        out[self.negative] = 2
        return out

    @property
    def is_empty(self) -> bool:
        return not (self.positive.any() or self.negative.any())


def eligibility(label, prediction=None, image=None, *, target: str = "auto", ignore=None,
                background_margin: int | None = None) -> Eligibility:
    """Compute M from the ground truth ``label`` and optional ``prediction``.

    ``image`` is accepted so that M = f(image, label, prediction) has one signature for every
    user; none of the built-in users reads intensities. ``ignore`` (bool mask, e.g. RITM's
    label -1 pixels) is removed from M. Where M is the label itself, ``positive`` is a
    read-only view of a bool ``label`` (it follows later changes of that array).
    """
    if target not in TARGETS:
        raise UsageError(f"target: expected one of {TARGETS}, found {target!r}")
    label = as_binary(label, "label")
    if image is not None and np.shape(image)[:label.ndim] != label.shape:
        raise UsageError(f"image: expected leading shape {label.shape} (same as label), found {np.shape(image)}")
    pred = None if prediction is None else as_binary(prediction, "prediction", shape=label.shape)
    if target == "auto":
        target = "label" if pred is None else "errors"
    # read-only all-False view without memory (a fresh zero array faults its pages in)
    empty = np.broadcast_to(np.False_, label.shape)
    # M = label: a read-only view, not a copy (a full pass over the array on every call)
    whole = label.view()
    whole.flags.writeable = False
    if target == "label":
        pos, neg = whole, empty
    elif target == "errors":
        if pred is None:
            pos, neg = whole, empty
        else:
            pos, neg = label & ~pred, pred & ~label
    else:  # background
        pos, neg = empty, ~label
        if background_margin is not None:
            if int(background_margin) < 0:
                raise UsageError(f"background_margin: expected an int >= 0, found {background_margin}")
            box = bounding_box(label)
            keep = np.zeros(label.shape, dtype=bool)
            if box is not None:
                m = int(background_margin)
                keep[tuple(slice(max(s.start - m, 0), s.stop + m) for s in box)] = True
            neg &= keep
    if ignore is not None:
        ign = as_binary(ignore, "ignore", shape=label.shape)
        pos = pos & ~ign
        neg = neg & ~ign
    return Eligibility(positive=pos, negative=neg, target=target)


@functools.lru_cache(maxsize=16)
def _structure(ndim: int, connectivity) -> np.ndarray:
    if connectivity in ("full", None):
        rank = ndim
    elif connectivity == "face":
        rank = 1
    elif isinstance(connectivity, (int, np.integer)) and 1 <= int(connectivity) <= ndim:
        rank = int(connectivity)
    else:
        raise UsageError(f"connectivity: expected 'full', 'face' or an int in 1..{ndim}, found {connectivity!r}")
    structure = ndimage.generate_binary_structure(ndim, rank)
    structure.setflags(write=False)  # cached: shared between calls
    return structure


def _label(mask: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components of a 2D/3D bool mask: cc3d (connected-components-3d, the
    connectomics labeller: ~7x scipy's on a 256^3 volume, benchmarks/bench_clicks.py) for the
    connectivities it has (4/8, 6/18/26), scipy otherwise. Label values are arbitrary:
    callers order components by their first voxel."""
    rank = int(structure.sum())  # 5/9 in 2D; 7/19/27 in 3D (the centre counts)
    conn = {(2, 5): 4, (2, 9): 8, (3, 7): 6, (3, 19): 18, (3, 27): 26}.get((mask.ndim, rank))
    if conn is None:
        return ndimage.label(mask, structure=structure)
    if mask.ndim == 2 and mask.size >= _COLLAPSE_FROM and _one_component_2d(mask, conn):
        return mask.view(np.uint8), 1
    return _cc3d(mask, conn)


def _cc3d(mask: np.ndarray, conn: int) -> tuple[np.ndarray, int]:
    # uint8, not bool: cc3d 4.1 labels background pixels of 2D bool images at 8-connectivity
    # (tests/interactive/test_edt_peak.py checks every connectivity against scipy)
    data = mask.view(np.uint8)
    if not data.flags.writeable:
        # cc3d's Cython signature wants a writable buffer (it only reads): our read-only view of
        # a writable label becomes writable here; a truly read-only array is copied
        try:
            data.flags.writeable = True
        except ValueError:
            data = data.copy()
    labels, n = cc3d.connected_components(data, connectivity=conn, return_N=True)
    return labels, int(n)


#: 2D masks from this many pixels try :func:`_one_component_2d` first (below, labelling costs
#: < 0.1 ms: not worth a failed try on a mask of distinct rows)
_COLLAPSE_FROM = 65_536


def _one_component_2d(mask: np.ndarray, conn: int) -> bool:
    """True when a 2D mask is one component (4- or 8-connectivity), found on the image with
    every run of equal consecutive rows, then columns, collapsed into one line: each voxel
    of such a run is connected to its copies, so the components are the same (a near-full
    512^2 mask collapses to ~10^2 pixels: ~0.05 ms against ~0.3 ms to label its voxels).
    False too when the rows are mostly distinct (the caller then labels every voxel)."""
    h, w = mask.shape
    lines = mask.view(np.uint64) if w % 8 == 0 and mask.flags.c_contiguous else mask
    probe = lines[h // 2 - 16:h // 2 + 16]  # mostly distinct rows (a disc): give up early
    if np.count_nonzero(np.any(probe[1:] != probe[:-1], axis=1)) > 16:
        return False
    starts = np.ones(h, dtype=bool)
    starts[1:] = np.any(lines[1:] != lines[:-1], axis=1)
    rows = np.flatnonzero(starts)
    if len(rows) * 2 > h:
        return False
    small = mask[rows]
    starts = np.ones(w, dtype=bool)
    starts[1:] = np.any(small[:, 1:] != small[:, :-1], axis=0)
    return _cc3d(np.ascontiguousarray(small[:, starts]), conn)[1] == 1


@dataclass(eq=False)
class Component:
    """One connected component of M. ``slices`` is its half-open bounding box in the full
    array; :meth:`mask` returns the boolean crop over that box."""

    id: int
    positive: bool
    size: int
    slices: tuple[slice, ...]
    first_voxel: int  # flat index (raster order) of its first voxel in the full array
    _labels: np.ndarray = field(repr=False)
    _offset: tuple[int, ...] = field(repr=False)
    _k: int = field(repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def lo(self) -> tuple[int, ...]:
        return tuple(s.start for s in self.slices)

    @property
    def hi(self) -> tuple[int, ...]:
        """Inclusive upper corner."""
        return tuple(s.stop - 1 for s in self.slices)

    def mask(self) -> np.ndarray:
        if "mask" not in self._cache:
            local = tuple(slice(s.start - o, s.stop - o) for s, o in zip(self.slices, self._offset))
            self._cache["mask"] = self._labels[local] == self._k
        return self._cache["mask"]

    def coords(self) -> np.ndarray:
        """``(n, ndim)`` global indices in raster order."""
        return np.argwhere(self.mask()) + np.asarray(self.lo)


#: up to this many components, each one's mask is made over its own box (size, first voxel,
#: cached mask) instead of a bincount over the whole crop
_FEW_COMPONENTS = 4


def find_components(elig: Eligibility, connectivity="full", min_size: int = 1) -> list[Component]:
    """Connected components of each polarity separately (FN and FP never merge).

    Ids are 1-based in raster order of each component's first voxel, across both polarities,
    so "ties go to the smaller id" is a deterministic, position-based rule.
    """
    if int(min_size) < 1:
        raise UsageError(f"min_component_size: expected an int >= 1, found {min_size}")
    structure = _structure(elig.ndim, connectivity)
    strides = [math.prod(elig.shape[a + 1:]) for a in range(elig.ndim)]
    found = []
    for positive, mask in ((True, elig.positive), (False, elig.negative)):
        if mask.ndim and not any(mask.strides) and not mask.flat[0]:
            continue  # a broadcast False (an empty polarity): no pass over it
        box = bounding_box(mask)
        if box is None:
            continue
        offset = tuple(s.start for s in box)
        crop = mask[box]
        labels, n = _label(crop, structure)
        if n == 1:
            # one component (the usual organ / body outline): its box is the mask's box and its
            # mask the crop itself (read-only view), no per-label pass over the volume
            objects = [tuple(slice(0, s.stop - s.start) for s in box)]
            whole = crop.view()
            whole.flags.writeable = False
            masks = {1: whole}
        else:
            objects = ndimage.find_objects(labels, max_label=n)  # (no pass for the max)
            masks = {}
            if n <= _FEW_COMPONENTS:
                # each component's mask over its own box: its size, first voxel and (cached)
                # mask, instead of a bincount over the whole crop (an int64 copy of the labels)
                masks = {k: labels[sl] == k for k, sl in enumerate(objects, start=1) if sl is not None}
                sizes = {k: np.count_nonzero(m) for k, m in masks.items()}
            else:
                sizes = np.bincount(labels.ravel(), minlength=n + 1)
        for k, sl in enumerate(objects, start=1):
            own = masks.get(k)
            size = int(np.count_nonzero(own) if n == 1 else sizes[k]) if sl is not None else 0
            if sl is None or size < min_size:
                continue
            # first voxel in raster order lies in the first plane (along axis 0) of its box
            plane = own[0] if own is not None else labels[(sl[0].start,) + tuple(sl[1:])] == k
            first_local = np.unravel_index(int(np.argmax(plane)), plane.shape) if plane.ndim else ()
            first = (sl[0].start + offset[0],) + tuple(
                int(f) + s.start + o for f, s, o in zip(first_local, sl[1:], offset[1:]))
            glob = tuple(slice(s.start + o, s.stop + o) for s, o in zip(sl, offset))
            found.append(Component(id=0, positive=positive, size=size, slices=glob,
                                   first_voxel=sum(int(f) * s for f, s in zip(first, strides)), _labels=labels,
                                   _offset=offset, _k=k, _cache={} if own is None else {"mask": own}))
    found.sort(key=lambda c: c.first_voxel)
    for i, c in enumerate(found, start=1):
        c.id = i
    return found
