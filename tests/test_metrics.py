"""Metric values against reference packages and an independent brute force.

Oracles (each skipped with a reason when not installed): DeepMind ``surface-distance``
(NSD, surfel table; non-empty masks only), MONAI (Dice, NSD with subvoxels, HD95 "max",
ASSD) and medpy (HD95 "pooled", ASSD, Dice). The brute force below always runs: it
uses scipy's erosion and correlate for the surfaces and ``cdist`` for the distances,
none of the code paths of ``omnimedseg.metrics``.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import ndimage
from scipy.integrate import trapezoid
from scipy.spatial.distance import cdist

from omnimedseg import metrics
from omnimedseg.errors import UsageError
from omnimedseg.metrics import (
    ASSD,
    HD95,
    NSD,
    Dice,
    InteractiveMetric,
    IoU,
    Metric,
    assd,
    dice,
    hd95,
    interaction_auc,
    iou,
    nsd,
    surface_distances,
)

SPACINGS_2D = [(1.0, 1.0), (0.7, 1.3)]
SPACINGS_3D = [(1.0, 1.0, 1.0), (2.5, 0.8, 0.9)]


# --------------------------------------------------------------------------- fixtures


def blob(shape, seed, sigma=2.5, threshold=0.0):
    """A smooth random mask with several lobes."""
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.standard_normal(shape), sigma) > threshold


def blob_pair(shape, seed):
    """A reference and a nearby imperfect prediction (over- and under-segmented parts)."""
    reference = blob(shape, seed)
    prediction = (ndimage.binary_dilation(reference) | blob(shape, seed + 100, threshold=1.0)) & blob(
        shape, seed + 200, threshold=-0.6
    )
    return prediction, reference


def ball(shape, centre, radius):
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2


@pytest.fixture
def hc18_masks(realdata):
    """Two filled HC18 head outlines (different subjects), as prediction and reference."""
    Image = pytest.importorskip("PIL.Image", reason="Pillow reads the HC18 PNG annotations")
    folder = realdata("hc18_ellipse") / "training_set"
    masks = [
        ndimage.binary_fill_holes(np.array(Image.open(folder / f"{i:03d}_HC_Annotation.png")) > 0) for i in (0, 1)
    ]
    assert masks[0].shape == masks[1].shape and masks[0].mean() > 0.05
    return masks[1], masks[0]


@pytest.fixture
def brain_masks(realdata):
    """pyradiomics brain1 tumour label (6.5 x 0.78 x 0.78 mm) and a perturbed copy."""
    sitk = pytest.importorskip("SimpleITK", reason="SimpleITK reads the NRRD label")
    image = sitk.ReadImage(str(realdata("pyradiomics_nrrd") / "brain1_label.nrrd"))
    reference = sitk.GetArrayFromImage(image) > 0
    spacing = tuple(reversed(image.GetSpacing()))  # SimpleITK (x, y, z) -> array (z, y, x)
    in_plane = np.ones((1, 3, 3), bool)
    prediction = ndimage.binary_dilation(reference, in_plane, iterations=2)  # 2 voxels wider in-plane
    half = int(np.argwhere(reference)[:, 2].mean())
    prediction[:, :, :half] &= np.roll(reference, 1, axis=0)[:, :, :half]  # one half shifted by a slice
    return prediction, reference, spacing


@pytest.fixture
def totalseg_masks(realdata):
    """TotalSegmentator CT label 5; prediction: it eroded and shifted, plus label 1 as a false positive."""
    nibabel = pytest.importorskip("nibabel", reason="nibabel reads the NIfTI labels")
    labels = np.asarray(nibabel.load(realdata("totalseg_nifti") / "example_seg.nii.gz").dataobj)
    reference = labels == 5
    prediction = np.roll(ndimage.binary_erosion(reference), (2, -1, 1), axis=(0, 1, 2)) | (labels == 1)
    return prediction, reference


# --------------------------------------------------------------------------- brute force


def _chunked_min_distances(points, others):
    return np.concatenate([cdist(points[i : i + 2000], others).min(axis=1) for i in range(0, len(points), 2000)])


def brute_boundary_distances(prediction, reference, spacing):
    """Boundary voxels by scipy erosion (outside = background) and cdist distances."""
    structure = ndimage.generate_binary_structure(prediction.ndim, 1)
    points = [
        np.argwhere(m & ~ndimage.binary_erosion(m, structure, border_value=0)) * np.asarray(spacing)
        for m in (prediction, reference)
    ]
    return _chunked_min_distances(points[0], points[1]), _chunked_min_distances(points[1], points[0])


def brute_nsd(prediction, reference, tolerance, spacing):
    """Surfels from scipy's correlate over 2x2(x2) cells, cdist distances, our area table."""
    ndim = prediction.ndim
    kernel = np.zeros((2,) * ndim, np.int64)
    for corner in itertools.product((0, 1), repeat=ndim):
        kernel[corner] = 1 << sum(o << axis for axis, o in enumerate(corner))
    table = metrics._surfel_measure_table(tuple(spacing))
    surfels = []
    for mask in (prediction, reference):
        codes = ndimage.correlate(np.pad(mask, 1).astype(np.int64), kernel, mode="constant", cval=0)
        mixed = (codes != 0) & (codes != (1 << 2**ndim) - 1)
        surfels.append((np.argwhere(mixed) * np.asarray(spacing), table[codes[mixed]]))
    (p_points, p_areas), (r_points, r_areas) = surfels
    close = p_areas[_chunked_min_distances(p_points, r_points) <= tolerance].sum()
    close += r_areas[_chunked_min_distances(r_points, p_points) <= tolerance].sum()
    return close / (p_areas.sum() + r_areas.sum())


# --------------------------------------------------------------------------- oracles


def deepmind_surface_distances(prediction, reference, spacing):
    surface_distance = pytest.importorskip("surface_distance", reason="DeepMind surface-distance is a test oracle")
    with warnings.catch_warnings():  # it imports scipy.ndimage.filters / .morphology
        warnings.simplefilter("ignore", DeprecationWarning)
        return surface_distance, surface_distance.compute_surface_distances(reference, prediction, spacing)


def deepmind_nsd(prediction, reference, tolerance, spacing):
    surface_distance, distances = deepmind_surface_distances(prediction, reference, spacing)
    return surface_distance.compute_surface_dice_at_tolerance(distances, tolerance)


def _monai_one_hot(mask):
    torch = pytest.importorskip("torch")
    tensor = torch.from_numpy(np.ascontiguousarray(mask))[None, None]
    return torch.cat([~tensor, tensor], dim=1).float()


def monai_metric(name, prediction, reference, spacing, **kwargs):
    monai_metrics = pytest.importorskip("monai.metrics", reason="MONAI is a test oracle")
    function = getattr(monai_metrics, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spacing is not None:
            kwargs["spacing"] = spacing
        return float(function(_monai_one_hot(prediction), _monai_one_hot(reference), **kwargs).item())


def medpy_binary():
    return pytest.importorskip("medpy.metric.binary", reason="medpy is a test oracle (pooled HD95)")


# --------------------------------------------------------------------------- surfel table


def _deepmind_code(code, ndim):
    """Our cell code (corner o owns bit sum(o_a << a)) in DeepMind's bit order."""
    n_corners, converted = 1 << ndim, 0
    for corner in itertools.product((0, 1), repeat=ndim):
        if code >> sum(o << axis for axis, o in enumerate(corner)) & 1:
            converted |= 1 << (n_corners - 1 - sum(o << (ndim - 1 - axis) for axis, o in enumerate(corner)))
    return converted


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.7, 1.9, 3.1), (2.5, 0.8, 0.8)])
def test_surfel_areas_equal_deepmind_table_for_every_3d_code(spacing):
    surface_distance = pytest.importorskip("surface_distance", reason="DeepMind surface-distance is a test oracle")
    theirs = surface_distance.lookup_tables.create_table_neighbour_code_to_surface_area(spacing)
    ours = metrics._surfel_measure_table(spacing)
    np.testing.assert_allclose(ours, [theirs[_deepmind_code(c, 3)] for c in range(256)], rtol=0, atol=1e-12)


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.7, 1.9)])
def test_contour_lengths_equal_deepmind_table_for_every_2d_code(spacing):
    surface_distance = pytest.importorskip("surface_distance", reason="DeepMind surface-distance is a test oracle")
    theirs = surface_distance.lookup_tables.create_table_neighbour_code_to_contour_length(spacing)
    ours = metrics._surfel_measure_table(spacing)
    np.testing.assert_allclose(ours, [theirs[_deepmind_code(c, 2)] for c in range(16)], rtol=0, atol=1e-12)


def test_surfel_areas_match_hand_derived_geometry():
    s0, s1, s2 = spacing = (0.7, 1.9, 3.1)
    table = metrics._surfel_measure_table(spacing)
    cofactor = np.array([s1 * s2, s0 * s2, s0 * s1])
    corner = 1  # corner (0, 0, 0): a triangle cutting it off, area vector (1, 1, 1) / 8
    assert table[corner] == pytest.approx(np.linalg.norm(cofactor) / 8)
    edge_along_0 = 0b11  # corners (0,0,0), (1,0,0): a rectangle s0 x half the (1, 2) face diagonal
    assert table[edge_along_0] == pytest.approx(s0 * math.hypot(s1, s2) / 2)
    face_at_0 = 0b01010101  # the 4 corners with o_0 = 0: the mid-plane across axis 0
    assert table[face_at_0] == pytest.approx(s1 * s2)
    # L of 3 corners on the face o_0 = 1 (corner (1,1,1) plus (1,1,0), (1,0,1)): a half-face
    # triangle across axis 0 plus a planar quad on x + y + z = 3/2 (area vector 3/8 (1, 1, 1)).
    l_shape = (1 << 0b111) | (1 << 0b011) | (1 << 0b101)
    assert table[l_shape] == pytest.approx(s1 * s2 / 2 + 0.375 * np.linalg.norm(cofactor))
    assert all(table[c] == pytest.approx(table[255 - c]) for c in range(256))  # complement symmetry
    t0, t1 = spacing_2d = (0.7, 1.9)
    table_2d = metrics._surfel_measure_table(spacing_2d)
    assert table_2d[0b0001] == pytest.approx(math.hypot(t0, t1) / 2)
    assert table_2d[0b0011] == pytest.approx(t0)  # corners (0,0), (1,0): a segment along axis 0
    assert table_2d[0b1001] == pytest.approx(math.hypot(t0, t1))  # diagonal pair: two cuts
    assert table[0] == table[255] == table_2d[0] == table_2d[15] == 0


def test_single_voxel_shifted_by_one_voxel_is_within_exactly_that_distance():
    mask = np.zeros((5, 5, 5), bool)
    mask[2, 2, 2] = True
    # Shifted by one voxel along axis 1 every surfel moves by 1 mm: NSD is 1 exactly at 1 mm.
    shifted = np.roll(mask, 1, axis=1)
    assert nsd(shifted, mask, tolerance=1.0, spacing=(2.0, 1.0, 3.0)) == 1.0
    assert nsd(shifted, mask, tolerance=0.999, spacing=(2.0, 1.0, 3.0)) < 1.0


# --------------------------------------------------------------------------- NSD


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "shape, spacing", [((48, 64), s) for s in SPACINGS_2D] + [((18, 22, 26), s) for s in SPACINGS_3D]
)
def test_nsd_equals_brute_force(shape, spacing, seed):
    prediction, reference = blob_pair(shape, seed)
    for tolerance in (0.0, 1.0, 2.0, 3.3):
        expected = brute_nsd(prediction, reference, tolerance, spacing)
        assert nsd(prediction, reference, tolerance=tolerance, spacing=spacing) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape, spacing", [((64, 80), (0.7, 1.3)), ((30, 36, 40), (2.5, 0.8, 0.9))])
def test_nsd_equals_deepmind_and_monai(shape, spacing, seed):
    prediction, reference = blob_pair(shape, seed)
    for tolerance in (0.0, 1.0, 2.0):
        ours = nsd(prediction, reference, tolerance=tolerance, spacing=spacing)
        assert ours == pytest.approx(deepmind_nsd(prediction, reference, tolerance, spacing), abs=1e-12)
        monai = monai_metric(
            "compute_surface_dice", prediction, reference, spacing, class_thresholds=[tolerance], use_subvoxels=True
        )
        assert ours == pytest.approx(monai, abs=1e-6)  # MONAI accumulates in float32


def test_nsd_at_tolerances_equal_to_lattice_distances_matches_deepmind():
    """A distance equal to the tolerance counts (<=) and rounds exactly as in DeepMind."""
    spacing = (0.8, 0.6)
    prediction, reference = blob_pair((40, 50), 3)
    lattice = sorted({math.sqrt((i * 0.8) ** 2 + (j * 0.6) ** 2) for i in range(4) for j in range(4)})
    for tolerance in lattice:
        ours = nsd(prediction, reference, tolerance=tolerance, spacing=spacing)
        assert ours == pytest.approx(deepmind_nsd(prediction, reference, tolerance, spacing), abs=1e-12)


def test_nsd_far_parts_use_the_tree_fallback_and_stay_exact():
    reference = ball((40, 60, 60), (20, 20, 20), 8)
    prediction = ball((40, 60, 60), (21, 20, 19), 8) | ball((40, 60, 60), (20, 48, 48), 3)
    spacing = (2.0, 0.9, 0.9)
    for tolerance in (1.0, 4.0, 30.0):  # below and above the neighbourhood's exact radius
        expected = brute_nsd(prediction, reference, tolerance, spacing)
        assert nsd(prediction, reference, tolerance=tolerance, spacing=spacing) == pytest.approx(expected, abs=1e-12)


def test_nsd_limits_and_symmetry():
    prediction, reference = blob_pair((30, 34, 38), 5)
    spacing = (1.5, 1.0, 0.7)
    value = nsd(prediction, reference, tolerance=2.0, spacing=spacing)
    assert 0.3 < value < 1.0
    assert nsd(reference, prediction, tolerance=2.0, spacing=spacing) == pytest.approx(value, abs=1e-15)
    assert nsd(reference, reference, tolerance=0.0, spacing=spacing) == 1.0
    assert nsd(prediction, reference, tolerance=100.0, spacing=spacing) == 1.0
    far = np.zeros_like(reference)
    far[:5, :5, :5] = True
    near = np.zeros_like(reference)
    near[-5:, -5:, -5:] = True
    assert nsd(far, near, tolerance=1.0, spacing=spacing) == 0.0


# --------------------------------------------------------------------------- HD95 / ASSD


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "shape, spacing", [((48, 64), s) for s in SPACINGS_2D] + [((22, 26, 30), s) for s in SPACINGS_3D]
)
def test_boundary_distances_equal_brute_force(shape, spacing, seed):
    prediction, reference = blob_pair(shape, seed)
    to_reference, to_prediction = brute_boundary_distances(prediction, reference, spacing)
    ours = surface_distances(prediction, reference, spacing=spacing)
    np.testing.assert_allclose(ours.prediction_to_reference, to_reference, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.reference_to_prediction, to_prediction, rtol=0, atol=1e-12)
    pooled = np.concatenate([to_reference, to_prediction])
    assert hd95(prediction, reference, spacing=spacing, definition="pooled") == pytest.approx(np.percentile(pooled, 95))
    assert hd95(prediction, reference, spacing=spacing) == pytest.approx(
        max(np.percentile(to_reference, 95), np.percentile(to_prediction, 95))
    )
    assert assd(prediction, reference, spacing=spacing) == pytest.approx(pooled.mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape, spacing", [((64, 80), (0.7, 1.3)), ((30, 36, 40), (2.5, 0.8, 0.9))])
def test_hd95_and_assd_equal_monai_and_medpy(shape, spacing, seed):
    prediction, reference = blob_pair(shape, seed)
    hd_max = hd95(prediction, reference, spacing=spacing, definition="max")
    hd_pooled = hd95(prediction, reference, spacing=spacing, definition="pooled")
    monai_hd = monai_metric("compute_hausdorff_distance", prediction, reference, spacing, percentile=95)
    assert hd_max == pytest.approx(monai_hd, rel=1e-5)  # MONAI's quantile runs in float32
    monai_assd = monai_metric("compute_average_surface_distance", prediction, reference, spacing, symmetric=True)
    assert assd(prediction, reference, spacing=spacing) == pytest.approx(monai_assd, rel=1e-5)
    medpy = medpy_binary()
    assert hd_pooled == pytest.approx(medpy.hd95(prediction, reference, voxelspacing=spacing), abs=1e-10)
    assert assd(prediction, reference, spacing=spacing) == pytest.approx(
        medpy.assd(prediction, reference, voxelspacing=spacing), abs=1e-10
    )


@pytest.mark.parametrize("far_radius", [1, 3, 6, 12])
@pytest.mark.parametrize("shape, spacing", [((90, 100), (0.6, 1.1)), ((30, 40, 44), (2.0, 0.8, 0.9))])
def test_hd95_with_far_false_positives_equals_brute_force(shape, spacing, far_radius):
    """Far parts of different sizes: the percentile is settled by near voxels or needs the tree."""
    reference = ball(shape, [n // 3 for n in shape], min(shape) // 4)
    prediction = ball(shape, [n // 3 + 1 for n in shape], min(shape) // 4) | ball(
        shape, [n - far_radius - 2 for n in shape], min(far_radius, min(shape) // 3 - 2)
    )
    to_reference, to_prediction = brute_boundary_distances(prediction, reference, spacing)
    expected_max = max(np.percentile(to_reference, 95), np.percentile(to_prediction, 95))
    expected_pooled = np.percentile(np.concatenate([to_reference, to_prediction]), 95)
    for first, second in ((prediction, reference), (reference, prediction)):
        assert hd95(first, second, spacing=spacing) == pytest.approx(expected_max, abs=1e-12)
        assert hd95(first, second, spacing=spacing, definition="pooled") == pytest.approx(expected_pooled, abs=1e-12)


def _line_with_far_voxels(length: int, far_columns: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros((10, 40), bool)
    mask[2, :length] = True
    for column in far_columns:
        mask[8, column] = True
    return mask


@pytest.mark.parametrize("prediction, reference", [
    ((20, (35,)), (20, ())),  # 21 boundary voxels, 1 far: 0.95 * 20 is whole, the next rank unknown (inf)
    ((19, ()), (20, (35,))),
    ((19, (30, 36)), (20, ())),
])
def test_hd95_when_the_percentile_rank_is_whole_and_the_next_distance_unknown(prediction, reference):
    """numpy interpolates with weight 0 against the next value; unknown (inf) far distances made that NaN, and
    max() of the two directions then dropped it silently (an underestimate)."""
    prediction, reference = _line_with_far_voxels(*prediction), _line_with_far_voxels(*reference)
    to_reference, to_prediction = brute_boundary_distances(prediction, reference, (1.0, 1.0))
    expected_max = max(np.percentile(to_reference, 95), np.percentile(to_prediction, 95))
    expected_pooled = np.percentile(np.concatenate([to_reference, to_prediction]), 95)
    for first, second in ((prediction, reference), (reference, prediction)):
        assert hd95(first, second) == pytest.approx(expected_max, abs=1e-12)
        assert hd95(first, second, definition="pooled") == pytest.approx(expected_pooled, abs=1e-12)


def test_hd95_of_shifted_balls_is_the_shift():
    reference = ball((40, 40, 40), (20, 20, 20), 10)
    shifted = ball((40, 40, 40), (22, 20, 20), 10)
    for definition in metrics.HD95_DEFINITIONS:
        assert hd95(shifted, reference, definition=definition) == pytest.approx(2.0)
    assert assd(shifted, reference, spacing=(1.0, 0.5, 0.5)) < assd(shifted, reference)  # shrinks with spacing


def test_hd95_definitions_differ_as_documented():
    """A far-off false positive: pooled dilutes it with the other direction, max does not."""
    reference = ball((48, 48, 48), (20, 20, 20), 10)
    prediction = reference.copy()
    prediction[38:46, 38:46, 38:46] = True
    distances = surface_distances(prediction, reference)
    assert np.all(distances.reference_to_prediction == 0)
    expected_max = np.percentile(distances.prediction_to_reference, 95)
    expected_pooled = np.percentile(np.concatenate(distances), 95)
    assert hd95(prediction, reference) == pytest.approx(expected_max)
    assert hd95(prediction, reference, definition="pooled") == pytest.approx(expected_pooled)
    assert expected_pooled < expected_max


def test_distance_metrics_are_symmetric():
    prediction, reference = blob_pair((24, 28, 32), 7)
    spacing = (1.7, 0.6, 0.9)
    for function in (hd95, assd):
        assert function(prediction, reference, spacing=spacing) == pytest.approx(
            function(reference, prediction, spacing=spacing)
        )


# --------------------------------------------------------------------------- Dice / IoU


def test_dice_and_iou_hand_computed():
    prediction = np.zeros((4, 5), bool)
    reference = np.zeros((4, 5), bool)
    prediction[0, :4] = True  # 4 voxels
    reference[0, 2:] = True  # 3 voxels, 2 shared
    assert dice(prediction, reference) == pytest.approx(2 * 2 / 7)
    assert iou(prediction, reference) == pytest.approx(2 / 5)


def test_dice_matches_monai_and_medpy_and_iou_relation():
    prediction, reference = blob_pair((30, 36, 40), 4)
    value = dice(prediction, reference)
    monai = monai_metric("compute_dice", prediction, reference, None, include_background=False)
    assert value == pytest.approx(monai, rel=1e-6)
    assert value == pytest.approx(medpy_binary().dc(prediction, reference), abs=1e-12)
    assert iou(prediction, reference) == pytest.approx(value / (2 - value))


# --------------------------------------------------------------------------- real masks


def check_against_brute_force(prediction, reference, spacing, tolerance):
    """NSD, both HD95 definitions and ASSD equal the brute force (no oracle package needed)."""
    assert nsd(prediction, reference, tolerance=tolerance, spacing=spacing) == pytest.approx(
        brute_nsd(prediction, reference, tolerance, spacing), abs=1e-12
    )
    to_reference, to_prediction = brute_boundary_distances(prediction, reference, spacing)
    pooled = np.concatenate([to_reference, to_prediction])
    assert hd95(prediction, reference, spacing=spacing) == pytest.approx(
        max(np.percentile(to_reference, 95), np.percentile(to_prediction, 95)), abs=1e-12
    )
    assert hd95(prediction, reference, spacing=spacing, definition="pooled") == pytest.approx(
        np.percentile(pooled, 95), abs=1e-12
    )
    assert assd(prediction, reference, spacing=spacing) == pytest.approx(pooled.mean(), abs=1e-12)


def check_against_oracles(prediction, reference, spacing, tolerance):
    """The same values from surface-distance, MONAI and medpy (each skips when absent)."""
    assert nsd(prediction, reference, tolerance=tolerance, spacing=spacing) == pytest.approx(
        deepmind_nsd(prediction, reference, tolerance, spacing), abs=1e-12
    )
    assert hd95(prediction, reference, spacing=spacing) == pytest.approx(
        monai_metric("compute_hausdorff_distance", prediction, reference, spacing, percentile=95), rel=1e-5
    )
    medpy = medpy_binary()
    assert hd95(prediction, reference, spacing=spacing, definition="pooled") == pytest.approx(
        medpy.hd95(prediction, reference, voxelspacing=spacing), abs=1e-10
    )
    assert assd(prediction, reference, spacing=spacing) == pytest.approx(
        medpy.assd(prediction, reference, voxelspacing=spacing), abs=1e-10
    )
    assert dice(prediction, reference) == pytest.approx(medpy.dc(prediction, reference), abs=1e-12)


REAL_CHECKS = pytest.mark.parametrize(
    "check", [check_against_brute_force, check_against_oracles], ids=["brute_force", "oracles"]
)


@REAL_CHECKS
def test_real_2d_hc18_heads(hc18_masks, check):
    prediction, reference = hc18_masks
    spacing = (0.15, 0.11)  # anisotropic pixels (the HC18 pixel size varies per image)
    assert 0 < nsd(prediction, reference, tolerance=2.0, spacing=spacing) < 1
    check(prediction, reference, spacing, tolerance=2.0)


@REAL_CHECKS
def test_real_3d_anisotropic_brain_tumour(brain_masks, check):
    prediction, reference, spacing = brain_masks
    assert spacing[0] > 5 * spacing[1]
    for tolerance in (2.0, 6.5):  # below and above the slice thickness
        check(prediction, reference, spacing, tolerance)


@REAL_CHECKS
def test_real_3d_organ_labels(totalseg_masks, check):
    prediction, reference = totalseg_masks
    spacing = (3.0, 1.5, 0.8)  # the file is 3 mm isotropic; declared anisotropic on purpose
    check(prediction, reference, spacing, tolerance=3.0)


@pytest.mark.slow
def test_real_3d_all_totalseg_labels_against_oracles(realdata):
    nibabel = pytest.importorskip("nibabel")
    labels = np.asarray(nibabel.load(realdata("totalseg_nifti") / "example_seg.nii.gz").dataobj)
    spacing = (3.0, 1.5, 0.8)
    medpy = medpy_binary()
    present = [int(v) for v in np.unique(labels) if v]
    for reference_label, prediction_label in zip(present, present[1:] + present[:1]):
        reference = labels == reference_label
        prediction = np.roll(reference, 1, axis=2) | (labels == prediction_label)
        assert nsd(prediction, reference, tolerance=2.0, spacing=spacing) == pytest.approx(
            deepmind_nsd(prediction, reference, 2.0, spacing), abs=1e-12
        )
        assert hd95(prediction, reference, spacing=spacing, definition="pooled") == pytest.approx(
            medpy.hd95(prediction, reference, voxelspacing=spacing), abs=1e-10
        )


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_large_volumes_against_oracles(seed):
    prediction, reference = blob_pair((96, 112, 128), seed)
    spacing = (2.0, 0.7, 0.9)
    assert nsd(prediction, reference, tolerance=2.0, spacing=spacing) == pytest.approx(
        deepmind_nsd(prediction, reference, 2.0, spacing), abs=1e-12
    )
    assert hd95(prediction, reference, spacing=spacing) == pytest.approx(
        monai_metric("compute_hausdorff_distance", prediction, reference, spacing, percentile=95), rel=1e-5
    )
    assert hd95(prediction, reference, spacing=spacing, definition="pooled") == pytest.approx(
        medpy_binary().hd95(prediction, reference, voxelspacing=spacing), abs=1e-10
    )


# --------------------------------------------------------------------------- empty masks


SHAPE = (6, 7, 8)
SPACING = (2.0, 1.0, 0.5)
DIAGONAL = math.sqrt((6 * 2.0) ** 2 + (7 * 1.0) ** 2 + (8 * 0.5) ** 2)


def _some_mask():
    mask = np.zeros(SHAPE, bool)
    mask[2:4, 2:5, 3:6] = True
    return mask


@pytest.mark.parametrize(
    "function, kwargs, both_empty, one_empty",
    [
        (dice, {}, 1.0, 0.0),
        (iou, {}, 1.0, 0.0),
        (nsd, {"tolerance": 2.0}, 1.0, 0.0),
        (hd95, {}, 0.0, DIAGONAL),
        (hd95, {"definition": "pooled"}, 0.0, DIAGONAL),
        (assd, {}, 0.0, DIAGONAL),
    ],
)
def test_empty_mask_conventions(function, kwargs, both_empty, one_empty):
    empty = np.zeros(SHAPE, bool)
    assert function(empty, empty, spacing=SPACING, **kwargs) == both_empty
    assert function(empty, _some_mask(), spacing=SPACING, **kwargs) == pytest.approx(one_empty)
    assert function(_some_mask(), empty, spacing=SPACING, **kwargs) == pytest.approx(one_empty)


def test_empty_mask_diagonal_is_worse_than_any_real_distance():
    first = np.zeros(SHAPE, bool)
    last = np.zeros(SHAPE, bool)
    first[0, 0, 0] = last[-1, -1, -1] = True
    assert hd95(first, last, spacing=SPACING) < hd95(first, np.zeros(SHAPE, bool), spacing=SPACING)


def test_surface_distances_with_empty_masks():
    empty = np.zeros(SHAPE, bool)
    assert all(d.size == 0 for d in surface_distances(empty, empty))
    to_reference, to_prediction = surface_distances(_some_mask(), empty)
    assert to_reference.size > 0 and np.all(np.isinf(to_reference)) and to_prediction.size == 0


def test_masks_touching_the_array_edge_have_a_surface_there():
    reference = np.ones((5, 6), bool)  # outside the array counts as background
    prediction = reference.copy()
    prediction[0] = False
    assert hd95(prediction, reference) == pytest.approx(1.0)
    assert nsd(prediction, reference, tolerance=0.5) < 1.0


# --------------------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: dice(np.zeros((3, 4), bool), np.zeros((4, 3), bool)), "same shape"),
        (lambda: dice(np.zeros(5, bool), np.zeros(5, bool)), "2D or 3D"),
        (lambda: dice(np.zeros((2, 2, 2, 2), bool), np.zeros((2, 2, 2, 2), bool)), "2D or 3D"),
        (lambda: dice(np.full((3, 3), 2), np.zeros((3, 3), bool)), "boolean mask"),
        (lambda: dice(np.full((3, 3), 0.5), np.zeros((3, 3), bool)), "boolean mask"),
        (lambda: dice(np.full((3, 3), "a"), np.zeros((3, 3), bool)), "boolean mask"),
        (lambda: hd95(np.zeros((3, 3), bool), np.zeros((3, 3)), spacing=(1.0, 1.0, 1.0)), "2 values"),
        (lambda: hd95(np.zeros((3, 3), bool), np.zeros((3, 3), bool), spacing=1.0), "found a scalar"),
        (lambda: nsd(np.zeros((3, 3), bool), np.zeros((3, 3), bool), tolerance=1, spacing=(1, 0)), "> 0"),
        (lambda: nsd(np.zeros((3, 3), bool), np.zeros((3, 3), bool), tolerance=1, spacing=("a", 1)), "spacing"),
        (lambda: nsd(np.zeros((3, 3), bool), np.zeros((3, 3), bool), tolerance=-1.0), "tolerance"),
        (lambda: nsd(np.zeros((3, 3), bool), np.zeros((3, 3), bool), tolerance=float("nan")), "tolerance"),
        (lambda: hd95(np.zeros((3, 3), bool), np.zeros((3, 3), bool), definition="mean"), "max, pooled"),
        (lambda: HD95("medpy"), "max, pooled"),
        (lambda: NSD(tolerance="two"), "tolerance"),
        (lambda: interaction_auc([0.5]), "at least 2"),
        (lambda: interaction_auc([0.5, 0.6], include_step0=False), "after dropping step 0"),
        (lambda: interaction_auc([0.5, float("nan")]), "finite"),
        (lambda: interaction_auc([[0.5, 0.6]]), "1D"),
        (lambda: InteractiveMetric(dice), "Metric instance"),
    ],
)
def test_invalid_input_raises_usage_error(call, message):
    with pytest.raises(UsageError, match=message):
        call()


def test_zero_one_integer_masks_are_accepted():
    prediction, reference = blob_pair((20, 24), 9)
    assert hd95(prediction.astype(np.uint8), reference.astype(np.float32)) == hd95(prediction, reference)
    assert nsd(prediction.astype(int), reference, tolerance=1.0) == nsd(prediction, reference, tolerance=1.0)


# --------------------------------------------------------------------------- metric objects


def test_metric_objects_wrap_the_functions():
    prediction, reference = blob_pair((24, 28, 32), 11)
    spacing = (1.2, 0.8, 1.0)
    pairs = [
        (Dice(), dice(prediction, reference), "dice", True),
        (IoU(), iou(prediction, reference), "iou", True),
        (NSD(tolerance=2), nsd(prediction, reference, tolerance=2.0, spacing=spacing), "nsd_2mm", True),
        (HD95(), hd95(prediction, reference, spacing=spacing), "hd95", False),
        (HD95("pooled"), hd95(prediction, reference, spacing=spacing, definition="pooled"), "hd95_pooled", False),
        (ASSD(), assd(prediction, reference, spacing=spacing), "assd", False),
    ]
    for metric, expected, name, higher_is_better in pairs:
        assert isinstance(metric, Metric)
        assert metric(prediction, reference, spacing=spacing) == expected
        assert (metric.name, metric.higher_is_better) == (name, higher_is_better)
    assert repr(NSD(tolerance=1.5)) == "NSD(tolerance=1.5)" and repr(HD95()) == "HD95(definition='max')"
    with pytest.raises(TypeError):
        Metric()  # abstract


# --------------------------------------------------------------------------- interactive


CURVE = [0.5, 0.7, 0.8, 0.85, 0.9, 0.92]


def test_interaction_auc_hand_computed_trapezoids():
    # sum(y) - (y0 + y_last) / 2: 4.67 - 0.71 = 3.96 over 6 steps; over the last 5: 4.17 - 0.81 = 3.36
    assert interaction_auc(CURVE) == pytest.approx(3.96)
    assert interaction_auc(CURVE, normalise=True) == pytest.approx(3.96 / 5)
    assert interaction_auc(CURVE, include_step0=False) == pytest.approx(3.36)
    assert interaction_auc(CURVE, include_step0=False, normalise=True) == pytest.approx(0.84)
    assert interaction_auc(CURVE) == pytest.approx(trapezoid(CURVE))
    assert interaction_auc([0.3, 0.3, 0.3], normalise=True) == pytest.approx(0.3)
    assert interaction_auc([2.0, 8.0]) == pytest.approx(5.0)


def test_interactive_metric_scores_each_step():
    reference = ball((32, 32), (16, 16), 9)
    predictions = [np.zeros_like(reference), ball((32, 32), (18, 16), 6), ball((32, 32), (17, 16), 8), reference]
    expected = [dice(p, reference) for p in predictions]
    assert expected[0] == 0.0 and expected[-1] == 1.0
    score = InteractiveMetric(Dice())(predictions, reference, spacing=(1.0, 1.0))
    assert score.step_values == pytest.approx(expected)
    assert score.auc == pytest.approx(trapezoid(expected))
    assert score.auc_normalised == pytest.approx(trapezoid(expected) / 3)
    assert score.final == 1.0 and score.include_step0
    clicks_only = InteractiveMetric(Dice(), include_step0=False).summarise(expected)
    assert clicks_only.auc == pytest.approx(trapezoid(expected[1:]))
    assert clicks_only.auc_normalised == pytest.approx(trapezoid(expected[1:]) / 2)
    assert clicks_only.final == score.final


def test_interactive_metric_with_a_distance_metric_keeps_lower_is_better():
    reference = ball((32, 32), (16, 16), 9)
    predictions = [np.zeros_like(reference), ball((32, 32), (18, 16), 9), reference]
    interactive = InteractiveMetric(HD95())
    score = interactive(predictions, reference)
    assert not interactive.higher_is_better and interactive.name == "hd95"
    assert score.step_values[0] == pytest.approx(math.hypot(32, 32))  # missed: the array diagonal
    assert score.step_values[1] == pytest.approx(2.0) and score.final == 0.0


def test_non_canonical_booleans_from_pillow_1bit_pngs(tmp_path):
    """Pillow gives 1-bit PNGs as bool arrays holding bytes 0/255; metrics must not see 255."""
    from PIL import Image

    mask = np.zeros((40, 50), bool)
    mask[10:30, 12:40] = True
    Image.fromarray(mask).save(tmp_path / "m.png")
    loaded = np.asarray(Image.open(tmp_path / "m.png"))
    assert loaded.dtype == bool and loaded.view(np.uint8).max() == 255  # the quirk is real
    assert nsd(loaded, mask, tolerance=1.0) == 1.0
    assert hd95(loaded, mask) == 0.0 and dice(loaded, mask) == 1.0


def test_converted_masks_read_back_as_canonical_booleans(tmp_path):
    from omnimedseg.converters.formats.image2d import write_png
    from omnimedseg.converters.formats.outputs import read_output

    mask = np.zeros((8, 9), bool)
    mask[2:5, 3:7] = True
    write_png(mask, tmp_path / "m.png")
    back, affine = read_output(tmp_path / "m.png")
    assert affine is None and back.dtype == bool and back.view(np.uint8).max() == 1
    assert np.array_equal(back, mask)


def test_nsd_on_fortran_ordered_organ_cut_by_the_field_of_view_equals_deepmind():
    """nibabel returns Fortran-ordered arrays; an organ cut by the field of view makes the union's
    box span every axis but the last. NSD once read offsets from memory strides there (0.75
    instead of 0.67 here)."""
    rng = np.random.default_rng(0)
    reference = np.zeros((20, 18, 30), bool)
    reference[:, :, 8:20] = ndimage.gaussian_filter(rng.standard_normal((20, 18, 12)), 2) > -0.3
    prediction = np.roll(reference, 2, axis=2)
    expected = deepmind_nsd(prediction, reference, 1.0, (1.0, 1.0, 2.0))
    for layout in (np.ascontiguousarray, np.asfortranarray, lambda a: np.ascontiguousarray(a.T).T):
        assert nsd(layout(prediction), layout(reference), tolerance=1.0, spacing=(1.0, 1.0, 2.0)) == pytest.approx(
            expected, abs=1e-12)
