"""Click users: component {largest, random} x placement {center, boundary, random}.

* ``center``: a voxel attaining the maximum EDT of the component (EDT on the component's
  bounding box padded by one voxel, so the image border counts as background).
* ``boundary``: a voxel of the inner boundary C & ~erode(C) (face-connected structure, image
  edge counts as outside), i.e. the voxels at EDT 1 in voxel units (autoPET's "edge" click).
  One-voxel and thin components are all boundary.
* ``random``: uniform over the component's voxels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from omnimedseg.interactive.base import TIE_BREAKS, RobotUser, _local_excluded, choose, component_edt_peak
from omnimedseg.interactive.prompts import Click

__all__ = ["ClickUser", "PLACEMENTS", "inner_boundary"]

PLACEMENTS = ("center", "boundary", "random")


def inner_boundary(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside it or outside the array."""
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    eroded = ndimage.binary_erosion(np.pad(mask, 1), structure=structure, border_value=0)
    return mask & ~eroded[(slice(1, -1),) * mask.ndim]


class ClickUser(RobotUser):
    """One click per call.

    ``avoid_repeats`` (default: ``True`` for center clicks, as RITM; ``False`` otherwise) skips
    voxels already clicked in ``previous``; a component whose every candidate was clicked is
    skipped. ``tie_break`` decides between equally good voxels: ``"random"`` (uniform with the
    generator, default) or ``"first"`` (raster order, RITM parity).
    """

    kind = "click"

    def __init__(self, component: str = "largest", placement: str = "center", *, avoid_repeats=None,
                 tie_break: str = "random", **common):
        super().__init__(component=component, **common)
        self.placement = choose("placement", placement, PLACEMENTS)
        self.avoid_repeats = (placement == "center") if avoid_repeats is None else bool(avoid_repeats)
        self.tie_break = choose("tie_break", tie_break, TIE_BREAKS)

    def describe(self) -> str:
        return f"click(component={self.component}, placement={self.placement})"

    def _candidates(self, comp, sampling, clicked) -> np.ndarray:
        """Flat local indices (raster order) of the voxels this placement may click."""
        mask = comp.mask()
        if self.placement == "center":
            return component_edt_peak(comp, sampling, clicked if self.avoid_repeats else None)[1]
        region = inner_boundary(mask) if self.placement == "boundary" else mask
        if self.avoid_repeats:
            ex = _local_excluded(comp, clicked)
            if ex is not None:
                region = region & ~ex
        return np.flatnonzero(region)

    def _prompt(self, elig, comps, rng, spacing, clicked):
        sampling = self._sampling(spacing)
        cache = {}

        def usable(c):
            cache[c.id] = self._candidates(c, sampling, clicked)
            return cache[c.id].size > 0

        if self.avoid_repeats and len(clicked):
            comp = self._select(comps, rng, spacing, clicked if self.avoid_repeats else None, usable)
        else:
            comp = self._select(comps, rng, spacing, None)
        if comp is None:
            return None
        cands = cache[comp.id] if comp.id in cache else self._candidates(comp, sampling, clicked)
        if self.tie_break == "first" and self.placement == "center":
            pick = cands[0]
        else:
            pick = cands[int(rng.integers(cands.size))]
        local = np.unravel_index(int(pick), comp.mask().shape)
        coord = tuple(int(a) + b for a, b in zip(local, comp.lo))
        return Click(coord=coord, positive=comp.positive, component_id=comp.id)
