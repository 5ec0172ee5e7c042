"""Property: every public function that takes masks or images gives the same result for any
memory layout of the same values.

nibabel returns Fortran-ordered arrays, users pass transposed or flipped views and strided
slices; an implementation that reads memory strides (or ``ravel``s one array and indexes it
with offsets from another) silently changes its result for them. The masks are smooth blobs
cut by the array border on every axis (organs cut by the field of view), so bounding boxes
span whole axes. NSD is also compared with DeepMind surface-distance on each layout.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from omnimedseg import metrics
from omnimedseg.data import preprocessing
from omnimedseg.interactive import eligibility, find_components, get_robot_user, list_robot_users, make_rng
from omnimedseg.interactive.polygons import contour_loops, outer_contour
from omnimedseg.interactive.scribbles import thin_2d

PROPERTY = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def _permuted_view(a: np.ndarray, perm) -> np.ndarray:
    """The same values as ``a``, stored with the axes in ``perm`` order (a transposed view)."""
    return np.ascontiguousarray(a.transpose(perm)).transpose(np.argsort(perm))


def _flipped_view(a: np.ndarray) -> np.ndarray:
    """The same values as ``a``, held by a view with negative strides on every axis."""
    flip = (slice(None, None, -1),) * a.ndim
    return np.ascontiguousarray(a[flip])[flip]


def _strided_view(a: np.ndarray) -> np.ndarray:
    """The same values as ``a``, a non-contiguous slice (every other element) of a bigger array."""
    big = np.zeros(tuple(2 * n + 1 for n in a.shape) + a.shape[a.ndim:], a.dtype)
    big[(slice(1, None, 2),) * a.ndim] = a
    return big[(slice(1, None, 2),) * a.ndim]


LAYOUTS = {
    "fortran": np.asfortranarray,
    "transposed": lambda a: _permuted_view(a, tuple(reversed(range(a.ndim)))),
    "permuted": lambda a: _permuted_view(a, (1, 0) + tuple(range(2, a.ndim))),
    "negative_stride": _flipped_view,
    "strided_slice": _strided_view,
}


def test_layouts_hold_the_same_values_in_another_memory_layout():
    a = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    for name, layout in LAYOUTS.items():
        b = layout(a)
        assert np.array_equal(a, b), name
        assert not b.flags.c_contiguous, name  # else the test would prove nothing


def _border_blob(shape, seed, threshold=0.0):
    """A smooth random mask forced to touch every face of the array."""
    rng = np.random.default_rng(seed)
    mask = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0, mode="wrap") > threshold
    for axis, n in enumerate(shape):
        for index in (0, n - 1):
            plane = [slice(None)] * len(shape)
            plane[axis] = index
            centre = [slice(max(0, m // 2 - 2), m // 2 + 2) for m in shape]
            centre[axis] = index
            mask[tuple(centre)] = True
    return mask


def _pair(shape, seed):
    reference = _border_blob(shape, seed)
    prediction = ndimage.binary_dilation(reference) & _border_blob(shape, seed + 1, threshold=-0.7)
    return prediction, reference


SHAPES = st.sampled_from([(23, 17), (16, 21), (12, 14, 10), (9, 15, 13)])
SEEDS = st.integers(0, 10_000)


def _metric_values(prediction, reference, spacing):
    distances = metrics.surface_distances(prediction, reference, spacing=spacing)
    return {
        "dice": metrics.dice(prediction, reference),
        "iou": metrics.iou(prediction, reference),
        "nsd_1": metrics.nsd(prediction, reference, tolerance=1.0, spacing=spacing),
        "nsd_2.5": metrics.nsd(prediction, reference, tolerance=2.5, spacing=spacing),
        "hd95_max": metrics.hd95(prediction, reference, spacing=spacing),
        "hd95_pooled": metrics.hd95(prediction, reference, spacing=spacing, definition="pooled"),
        "assd": metrics.assd(prediction, reference, spacing=spacing),
        # directed distances are listed in raster order of the boundary voxels: compare sorted
        "distances": tuple(np.sort(d).tolist() for d in distances),
    }


@PROPERTY
@given(shape=SHAPES, seed=SEEDS)
def test_every_metric_is_independent_of_memory_layout(shape, seed):
    prediction, reference = _pair(shape, seed)
    spacing = (1.3, 0.7, 0.9)[: len(shape)]
    expected = _metric_values(prediction, reference, spacing)
    for name, layout in LAYOUTS.items():
        assert _metric_values(layout(prediction), layout(reference), spacing) == expected, name
        # mixed layouts: one C array against one view
        assert _metric_values(prediction, layout(reference), spacing) == expected, name


@PROPERTY
@given(shape=SHAPES, seed=SEEDS)
def test_nsd_equals_deepmind_surface_distance_on_every_layout(shape, seed):
    surface_distance = pytest.importorskip("surface_distance", reason="DeepMind surface-distance is a test oracle")
    prediction, reference = _pair(shape, seed)
    spacing = (1.3, 0.7, 0.9)[: len(shape)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # it imports scipy.ndimage.morphology
        theirs = surface_distance.compute_surface_dice_at_tolerance(
            surface_distance.compute_surface_distances(reference, prediction, spacing), 1.5)
    for name, layout in LAYOUTS.items():
        ours = metrics.nsd(layout(prediction), layout(reference), tolerance=1.5, spacing=spacing)
        assert ours == pytest.approx(theirs, abs=1e-12), name


def _prompt_key(prompt):
    """A comparable description of a prompt (its mask on the grid, polarity and kind)."""
    if prompt is None:
        return None
    return prompt.kind, prompt.positive, prompt.to_mask(prompt_shape[0]).tobytes()


prompt_shape = [None]


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(shape=SHAPES, seed=SEEDS)
def test_every_robot_user_and_eligibility_is_independent_of_memory_layout(shape, seed):
    prediction, label = _pair(shape, seed)
    prompt_shape[0] = shape
    spacing = (1.3, 0.7, 0.9)[: len(shape)]
    users = [n for n in list_robot_users() if len(shape) == 2 or n != "polygon"]

    def results(label, prediction):
        out = []
        for target_prediction in (None, prediction):
            elig = eligibility(label, target_prediction)
            out.append((elig.positive.tobytes(), elig.negative.tobytes()))
            out.append([(c.id, c.positive, c.size, c.slices, c.first_voxel) for c in find_components(elig)])
            for name in users:
                user = get_robot_user(name)
                rng = make_rng(seed, "case", "organ", 0 if target_prediction is None else 1, name)
                out.append((name, _prompt_key(user.next_prompt(label, target_prediction, rng, spacing=spacing))))
        return out

    expected = results(label, prediction)
    for name, layout in LAYOUTS.items():
        assert results(layout(label), layout(prediction)) == expected, name


@PROPERTY
@given(shape=st.sampled_from([(23, 17), (16, 21)]), seed=SEEDS)
def test_interactive_shape_helpers_are_independent_of_memory_layout(shape, seed):
    """Thinning (scribble centrelines) and contours (polygon users) as public functions."""
    mask = ndimage.binary_dilation(_border_blob(shape, seed), iterations=2)
    expected = (thin_2d(mask).tobytes(), [loop.tolist() for loop in contour_loops(mask)], outer_contour(mask).tolist())
    for name, layout in LAYOUTS.items():
        view = layout(mask)
        assert (thin_2d(view).tobytes(), [loop.tolist() for loop in contour_loops(view)],
                outer_contour(view).tolist()) == expected, name


@PROPERTY
@given(shape=st.sampled_from([(23, 17), (40, 31)]), seed=SEEDS,
       modality=st.sampled_from(["CT", "MRI", "US", "fundus"]))
def test_every_preprocessing_function_is_independent_of_memory_layout(shape, seed, modality):
    rng = np.random.default_rng(seed)
    if modality == "fundus":
        image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    elif modality == "US":
        image = rng.integers(0, 256, shape, dtype=np.uint8)
    else:
        image = rng.normal(40, 300, shape).astype(np.int16)
    mask = _border_blob(shape, seed)

    def results(image, mask):
        grey = preprocessing.intensity_to_uint8(image, modality)
        rgb, resized = preprocessing.model_input(image, mask, modality, size=32)
        box = preprocessing.box_from_mask(mask, max_shift=3, rng=np.random.default_rng(seed))
        return (grey.tobytes(), preprocessing.resize_image(grey, 19).tobytes(), rgb.tobytes(), resized.tobytes(),
                preprocessing.resize_mask(mask, 27).tobytes(), preprocessing.box_from_mask(mask).tolist(),
                box.tolist())

    expected = results(image, mask)
    for name, layout in LAYOUTS.items():
        view = layout(image)  # an RGB image's channel axis takes part in the layout too
        assert np.array_equal(view, image)
        assert results(view, layout(mask)) == expected, name
