"""The model side of a benchmark: one small interface, and baselines that need no weights.

Any model plugs in by implementing :class:`InteractiveModel` (radioactive's
``Inferer`` shape): ``set_image`` once per case, then ``predict`` after every
interaction with all prompts so far and the previous prediction. Models are found
by name: the built-ins below, then the entry-point group ``omnimedseg.models``.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Callable, ClassVar, Sequence

import numpy as np
from scipy import ndimage

from omnimedseg.errors import PluginError, UsageError
from omnimedseg.interactive.prompts import Box, Polygon, Prompt


class InteractiveModel:
    """Adapter from (image, prompts, previous prediction) to a binary prediction.

    ``needs_reference`` marks oracle baselines that cheat by design (for testing the
    protocol); the runner passes the reference mask only to those.
    """

    name: ClassVar[str] = "model"
    needs_reference: ClassVar[bool] = False

    def set_image(self, image: np.ndarray, meta: dict) -> None:
        """Called once per case: ``image`` as stored (2D (H, W[, C]) or 3D (I, J, K)), ``meta`` the sample dict."""
        self.image = np.asarray(image)
        self.meta = meta

    def predict(self, prompts: Sequence[Prompt], previous: np.ndarray | None,
                reference: np.ndarray | None = None) -> np.ndarray:
        """Bool mask on the image grid after the given prompts."""
        raise NotImplementedError(f"{type(self).__name__} must implement predict()")


def _grey(image: np.ndarray, ndim: int) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    return image.mean(axis=-1) if image.ndim == ndim + 1 else image


def _positive_seeds(prompts: Sequence[Prompt], shape: tuple[int, ...]) -> np.ndarray:
    seeds = np.zeros(shape, dtype=bool)
    for p in prompts:
        if not p.positive or isinstance(p, Box):
            continue
        seeds |= p.to_mask(shape)
    return seeds


class RegionGrowingModel(InteractiveModel):
    """Classical prompt-driven segmenter: intensity region growing from the user's input.

    Positive clicks/scribbles seed a connected region of voxels whose intensity lies
    within ``tolerance`` standard deviations of the seeds' neighbourhood; a box limits
    the region (and seeds its centre when nothing else does); a polygon is filled as
    drawn; negative prompts cut out the connected piece they touch. Cheap, weight-free,
    and it improves with more interactions, so protocol curves are meaningful.
    """

    name = "region_growing"

    def __init__(self, tolerance: float = 1.5, neighbourhood: int = 2, smoothing: float = 2.0):
        if tolerance <= 0 or neighbourhood < 0 or smoothing < 0:
            raise UsageError(f"region_growing: tolerance > 0, neighbourhood >= 0 and smoothing >= 0 expected, "
                             f"found {tolerance}, {neighbourhood}, {smoothing}")
        self.tolerance = float(tolerance)
        self.neighbourhood = int(neighbourhood)
        self.smoothing = float(smoothing)

    def set_image(self, image, meta):
        super().set_image(image, meta)
        self.ndim = 3 if meta.get("affine") is not None and np.asarray(image).ndim >= 3 else 2
        grey = _grey(self.image, self.ndim)
        # Gaussian smoothing (sigma in voxels) tames ultrasound speckle and CT noise before growing.
        self.grey = ndimage.gaussian_filter(grey, self.smoothing) if self.smoothing else grey

    def predict(self, prompts, previous, reference=None):
        shape = self.grey.shape
        polygons = [p for p in prompts if isinstance(p, Polygon)]
        if polygons:
            return np.logical_or.reduce([p.to_mask(shape) for p in polygons])
        boxes = [p for p in prompts if isinstance(p, Box)]
        seeds = _positive_seeds(prompts, shape)
        if not seeds.any() and boxes:
            seeds[tuple((lo + hi) // 2 for lo, hi in zip(boxes[-1].lo, boxes[-1].hi))] = True
        if not seeds.any():
            return np.zeros(shape, dtype=bool)
        near = ndimage.binary_dilation(seeds, iterations=self.neighbourhood) if self.neighbourhood else seeds
        values = self.grey[near]
        spread = max(float(values.std()), 0.05 * float(np.ptp(self.grey)), 1e-6)
        candidate = np.abs(self.grey - float(np.median(values))) <= self.tolerance * spread
        if boxes:
            candidate &= boxes[-1].to_mask(shape)
        negatives = np.zeros(shape, dtype=bool)
        for p in prompts:
            if not p.positive and not isinstance(p, Box):
                negatives |= p.to_mask(shape)
        if negatives.any():  # a negative prompt cuts a small ball out of the candidate region
            candidate &= ~ndimage.binary_dilation(negatives, iterations=self.neighbourhood + 1)
        candidate |= seeds
        labels, _ = ndimage.label(candidate)
        keep = np.unique(labels[seeds])
        region = np.isin(labels, keep[keep > 0])
        return ndimage.binary_fill_holes(region) if self.ndim == 2 else region


class OracleNoiseModel(InteractiveModel):
    """Testing baseline: the reference mask with structured noise that interactions remove.

    Noise is a seeded set of blobs (``noise`` = fraction of the object's size) flipped
    on the reference; every click or scribble clears the noise within ``radius`` voxels
    of it, and a box clears the noise outside it. Curves rise towards Dice 1, so a
    protocol or metric bug shows immediately.
    """

    name = "oracle_noise"
    needs_reference = True

    def __init__(self, noise: float = 0.3, radius: int = 12, seed: int = 0):
        if not 0 <= noise <= 1:
            raise UsageError(f"oracle_noise: noise must be in [0, 1], found {noise}")
        self.noise, self.radius, self.seed = float(noise), int(radius), int(seed)

    def set_image(self, image, meta):
        super().set_image(image, meta)
        self._flips = None

    def _noise_field(self, reference: np.ndarray) -> np.ndarray:
        from omnimedseg.interactive.seeding import make_rng

        rng = make_rng(self.seed, self.meta.get("case_id", ""), "oracle", 0, self.name)
        band = ndimage.binary_dilation(reference, iterations=max(2, self.radius // 2)) ^ \
            ndimage.binary_erosion(reference, iterations=max(2, self.radius // 2))
        candidates = np.argwhere(band)
        flips = np.zeros(reference.shape, dtype=bool)
        if candidates.size == 0:
            return flips
        target = self.noise * reference.sum()
        while flips.sum() < target and len(candidates):
            centre = candidates[rng.integers(len(candidates))]
            blob = tuple(slice(max(c - 3, 0), c + 4) for c in centre)
            flips[blob] = True
        return flips & band

    def predict(self, prompts, previous, reference=None):
        if reference is None:
            raise UsageError("oracle_noise needs the reference mask (it is a protocol-testing baseline)")
        reference = np.asarray(reference, dtype=bool)
        if self._flips is None:
            self._flips = self._noise_field(reference)
        flips = self._flips.copy()
        touched = np.zeros(reference.shape, dtype=bool)
        for p in prompts:
            if isinstance(p, Box):
                flips &= p.to_mask(reference.shape)
            else:
                touched |= p.to_mask(reference.shape)
        if touched.any():
            flips &= ndimage.distance_transform_edt(~touched) > self.radius
        return reference ^ flips


def _sam(**params) -> InteractiveModel:
    from omnimedseg.benchmark.sam_adapter import SamInteractiveModel  # imports torch only when used

    return SamInteractiveModel(**params)


BUILTIN_MODELS: dict[str, Callable[..., InteractiveModel]] = {
    RegionGrowingModel.name: RegionGrowingModel,
    OracleNoiseModel.name: OracleNoiseModel,
    "sam": _sam,
}


def available_models() -> dict[str, str]:
    found = {ep.name: ep.value for ep in entry_points(group="omnimedseg.models")}
    found.update({name: "built-in" for name in BUILTIN_MODELS})
    return found


def get_model(name: str, **params) -> InteractiveModel:
    """The model called ``name`` built with ``params`` (built-ins first, then entry points)."""
    factory = BUILTIN_MODELS.get(name)
    if factory is None:
        for ep in entry_points(group="omnimedseg.models"):
            if ep.name == name:
                factory = ep.load()
                break
    if factory is None:
        raise PluginError(f"no model named {name!r} (available: {', '.join(sorted(available_models()))}); "
                          f"register one in the entry-point group 'omnimedseg.models'")
    try:
        model = factory(**params)
    except TypeError as exc:
        raise UsageError(f"model {name!r}: bad parameters {params}: {exc}") from None
    if not isinstance(model, InteractiveModel):
        raise PluginError(f"model {name!r} built a {type(model).__name__}, expected an InteractiveModel")
    return model
