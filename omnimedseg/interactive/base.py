"""Shared machinery of all robot users: input checks, FN/FP policy, component selection,
cropped EDT.

A user never looks at the whole array more than a few times: components are labelled inside
the bounding box of M, and distance transforms run on one component's bounding box padded by
one voxel (the padding makes the image border count as background, as RITM and
``edt(black_border=True)`` do; without it a component touching the border would get its
"centre" on the border).
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

from omnimedseg.errors import UsageError
from omnimedseg.interactive.distance import PEAK_RTOL, edt_peak
from omnimedseg.interactive.eligibility import (
    TARGETS,
    Component,
    Eligibility,
    check_spacing,
    eligibility,
    find_components,
)
from omnimedseg.interactive.prompts import Click, Prompt
from omnimedseg.interactive.seeding import check_rng

__all__ = ["RobotUser", "COMPONENT_STRATEGIES", "FN_FP_POLICIES", "TIE_BREAKS", "EDT_UNITS",
           "component_edt_peak", "choose"]

COMPONENT_STRATEGIES = ("largest", "random", "deepest")
FN_FP_POLICIES = ("pooled", "largest_edt", "area_random")
TIE_BREAKS = ("random", "first")
EDT_UNITS = ("physical", "voxel")
WEIGHTINGS = ("uniform", "size")


def choose(name: str, value, allowed: Sequence) -> str:
    """Validate a strategy name (one-line UsageError listing the valid ones)."""
    if value not in allowed:
        raise UsageError(f"{name}: expected one of {tuple(allowed)}, found {value!r}")
    return value


def component_edt_peak(comp: Component, sampling: tuple[float, ...] | None,
                       excluded: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Largest EDT value of the component (EDT over its bounding box zero-padded by 1 voxel,
    ``excluded`` global coords left out) and the local flat indices (raster order) of the
    voxels attaining it (see :func:`~omnimedseg.interactive.distance.edt_peak`). Cached."""
    ex = _local_excluded(comp, excluded)
    key = ("edt_peak", sampling, None if ex is None else np.flatnonzero(ex).tobytes())
    if key not in comp._cache:
        comp._cache[key] = edt_peak(comp.mask(), sampling, ex)
    return comp._cache[key]


def _local_excluded(comp: Component, excluded: np.ndarray | None) -> np.ndarray | None:
    """Excluded global coords (n, ndim) that fall inside this component, as a local bool mask."""
    if excluded is None or len(excluded) == 0:
        return None
    lo = np.asarray(comp.lo)
    hi = np.asarray(comp.hi)
    inside = np.all((excluded >= lo) & (excluded <= hi), axis=1)
    if not inside.any():
        return None
    local = excluded[inside] - lo
    m = np.zeros(comp.mask().shape, dtype=bool)
    m[tuple(local.T)] = True
    return m & comp.mask()


class RobotUser:
    """Base class: turns (label, prediction) into at most one prompt per call.

    Common parameters (all keyword-only):

    * ``component``: ``"largest"`` (most voxels), ``"random"`` (uniform over components, or
      size-weighted with ``component_weighting="size"``) or ``"deepest"`` (largest EDT maximum;
      RITM parity).
    * ``fn_fp_policy``: how FN and FP compete in iterative mode. ``"pooled"`` (default): all
      components of both types are candidates together; ``"largest_edt"``: polarity whose
      deepest voxel is deeper wins, ties negative (RITM); ``"area_random"``: positive with
      probability |FN| / (|FN| + |FP|) (ScribblePrompt / RadioActive).
    * ``connectivity``: ``"full"`` (8 / 26, default) or ``"face"`` (4 / 6).
    * ``min_component_size``: smaller components are ignored (default 1).
    * ``component_tie_break``: ``"first"`` (smaller id = raster order, default) or ``"random"``.
    * ``target``, ``background_margin``: how M is built (see :func:`eligibility`).
    * ``edt_units``: ``"physical"`` (use ``spacing``, default) or ``"voxel"`` (CVPR25/RITM).
    """

    kind = "abstract"

    def __init__(self, *, component: str = "largest", fn_fp_policy: str = "pooled",
                 connectivity="full", min_component_size: int = 1, component_weighting: str = "uniform",
                 component_tie_break: str = "first", target: str = "auto",
                 background_margin: int | None = None, edt_units: str = "physical", name: str | None = None):
        self.component = choose("component", component, COMPONENT_STRATEGIES)
        self.fn_fp_policy = choose("fn_fp_policy", fn_fp_policy, FN_FP_POLICIES)
        if connectivity not in ("full", "face") and not (isinstance(connectivity, int) and connectivity >= 1):
            raise UsageError(f"connectivity: expected 'full', 'face' or an int >= 1, found {connectivity!r}")
        self.connectivity = connectivity
        if isinstance(min_component_size, bool) or not isinstance(min_component_size, (int, np.integer)) \
                or min_component_size < 1:
            raise UsageError(f"min_component_size: expected an int >= 1, found {min_component_size!r}")
        self.min_component_size = int(min_component_size)
        self.component_weighting = choose("component_weighting", component_weighting, WEIGHTINGS)
        self.component_tie_break = choose("component_tie_break", component_tie_break, TIE_BREAKS)
        self.target = choose("target", target, TARGETS)
        self.background_margin = background_margin
        self.edt_units = choose("edt_units", edt_units, EDT_UNITS)
        self._name = name

    # ------------------------------------------------------------------ public API
    @property
    def name(self) -> str:
        return self._name or self.describe()

    def describe(self) -> str:
        return f"{self.kind}(component={self.component})"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def next_prompt(self, label, prediction=None, rng=None, *, spacing=None, previous: Iterable[Prompt] = (),
                    image=None, ignore=None) -> Prompt | None:
        """One prompt for this (label, prediction), or ``None`` when M is empty.

        ``rng`` is required (see :func:`~omnimedseg.interactive.seeding.make_rng`); ``previous``
        are the prompts already given in this session (clicks are not repeated when the user
        avoids repeats); ``spacing`` is in array axis order.
        """
        rng = check_rng(rng)
        elig = eligibility(label, prediction, image, target=self.target, ignore=ignore,
                           background_margin=self.background_margin)
        return self.prompt_from_eligibility(elig, rng, spacing=spacing, previous=previous)

    def prompt_from_eligibility(self, elig: Eligibility, rng, *, spacing=None,
                                previous: Iterable[Prompt] = ()) -> Prompt | None:
        """Same as :meth:`next_prompt` for a caller-built eligibility region."""
        rng = check_rng(rng)
        if not isinstance(elig, Eligibility):
            raise UsageError(f"elig: expected an Eligibility, found {type(elig).__name__}")
        spacing = check_spacing(spacing, elig.ndim)
        clicked = _previous_clicks(previous, elig.ndim)
        comps = find_components(elig, self.connectivity, self.min_component_size)
        if not comps:
            return None
        return self._prompt(elig, comps, rng, spacing, clicked)

    def sample(self, label, k: int, rng, **kwargs) -> list[Prompt | None]:
        """``k`` independent non-iterative prompts, one spawned child generator each."""
        rng = check_rng(rng)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise UsageError(f"k: expected an int >= 0, found {k!r}")
        return [self.next_prompt(label, None, child, **kwargs) for child in rng.spawn(int(k))]

    # ------------------------------------------------------------------ helpers for subclasses
    def _prompt(self, elig, comps, rng, spacing, clicked) -> Prompt | None:  # pragma: no cover
        raise NotImplementedError

    def _sampling(self, spacing):
        return None if self.edt_units == "voxel" else tuple(spacing)

    def _edt_max(self, comp: Component, sampling, clicked) -> float:
        return component_edt_peak(comp, sampling, clicked)[0]

    def _apply_policy(self, comps, rng, sampling, clicked) -> list[Component]:
        pos = [c for c in comps if c.positive]
        neg = [c for c in comps if not c.positive]
        if self.fn_fp_policy == "pooled" or not pos or not neg:
            return comps
        if self.fn_fp_policy == "largest_edt":
            best_pos = max(self._edt_max(c, sampling, clicked) for c in pos)
            best_neg = max(self._edt_max(c, sampling, clicked) for c in neg)
            # ties -> negative (RITM); a tie is equality up to PEAK_RTOL, as for the arg-max voxels
            return pos if best_pos > best_neg and not np.isclose(best_pos, best_neg, rtol=PEAK_RTOL, atol=0) \
                else neg
        n_pos = sum(c.size for c in pos)
        n_neg = sum(c.size for c in neg)
        return pos if rng.random() < n_pos / (n_pos + n_neg) else neg

    def _select(self, comps: list[Component], rng, spacing, clicked,
                usable: Callable[[Component], bool] | None = None) -> Component | None:
        """Apply the FN/FP policy, then the component strategy; skip unusable components."""
        sampling = self._sampling(spacing)
        cands = self._apply_policy(comps, rng, sampling, clicked)
        if usable is not None:
            cands = [c for c in cands if usable(c)]
        if not cands:
            return None
        if self.component == "random":
            if self.component_weighting == "size":
                w = np.array([c.size for c in cands], dtype=np.float64)
                return cands[int(rng.choice(len(cands), p=w / w.sum()))]
            return cands[int(rng.integers(len(cands)))]
        if self.component == "largest":
            score = np.array([c.size for c in cands], dtype=np.float64)
            tied = [c for c, s in zip(cands, score) if s == score.max()]
            if len(tied) == 1 or self.component_tie_break == "first":
                return tied[0]  # cands are sorted by id
            return tied[int(rng.integers(len(tied)))]
        # deepest: the component holding the deepest voxel
        score = np.array([self._edt_max(c, sampling, clicked) for c in cands])
        tied = [c for c, s in zip(cands, score) if np.isclose(s, score.max(), rtol=PEAK_RTOL, atol=0)]
        if len(tied) == 1:
            return tied[0]
        if self.component_tie_break == "random":
            return tied[int(rng.integers(len(tied)))]
        # raster-first arg-max over all tied components (RITM's first arg-max of the whole map)
        return min(tied, key=lambda c: _first_argmax_flat(c, sampling, clicked))


def _first_argmax_flat(comp: Component, sampling, clicked) -> tuple[int, ...]:
    """Global index of the component's raster-first EDT arg-max (tuples compare in raster order)."""
    top, flat = component_edt_peak(comp, sampling, clicked)
    local = np.unravel_index(int(flat[0]), comp.mask().shape) if len(flat) else (0,) * len(comp.lo)
    return tuple(int(a) + b for a, b in zip(local, comp.lo))


def _previous_clicks(previous, ndim: int) -> np.ndarray:
    coords = []
    for p in previous or ():
        if isinstance(p, Click):
            if len(p.coord) != ndim:
                raise UsageError(f"previous: expected clicks with {ndim} coordinates, found {p.coord}")
            coords.append(p.coord)
        elif not isinstance(p, Prompt):
            raise UsageError(f"previous: expected Prompt objects, found {type(p).__name__}")
    return np.asarray(coords, dtype=np.int64).reshape(-1, ndim)
