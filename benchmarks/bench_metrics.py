"""NSD and HD95 run time: omnimedseg.metrics vs DeepMind surface-distance, MONAI and medpy.

Each case is a smooth random "organ" and a nearby imperfect prediction (Dice about 0.95)
with anisotropic spacing: 2D 512x512 at (0.7, 0.9) mm and 3D 256^3 at (2.5, 0.8, 0.8) mm
(``--quick``: 256x256 and 96^3). Every package gets the same boolean masks and spacing:

* NSD at 2 mm: ``nsd`` vs ``compute_surface_distances`` + ``compute_surface_dice_at_tolerance``
  (surface-distance) and ``compute_surface_dice(use_subvoxels=True)`` (MONAI).
* HD95 "max": ``hd95`` vs ``compute_hausdorff_distance(percentile=95)`` (MONAI). DeepMind's
  ``compute_robust_hausdorff`` is timed too, but it weights surfels by area, a third
  definition, so its value is shown and not expected to be equal.
* HD95 "pooled": ``hd95(definition="pooled")`` vs ``medpy.metric.binary.hd95``.

Times are the best of ``--repeats`` runs (slow reference runs stop after one when they
exceed 5 s); ratio = reference time / ours. Values are checked for agreement (NSD to
1e-9 against surface-distance; 1e-5 relative against MONAI, which works in float32).
Packages that are not installed are skipped. Nothing here asserts a time.

Usage: ``python benchmarks/bench_metrics.py [--quick] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import time
import warnings

import numpy as np
from scipy import ndimage

from omnimedseg import metrics

TOLERANCE_MM = 2.0


def smooth_field(shape, seed, coarse=8):
    """Gaussian noise on a grid ``coarse`` times smaller, smoothed and zoomed up."""
    rng = np.random.default_rng(seed)
    small = ndimage.gaussian_filter(rng.standard_normal([max(4, n // coarse) for n in shape]), 1.5)
    return ndimage.zoom(small, [n / m for n, m in zip(shape, small.shape)], order=1)


def make_case(shape, seed=0):
    """(prediction, reference): one smooth blob and a slightly deformed copy of it."""
    field = smooth_field(shape, seed)
    return (field + 0.15 * smooth_field(shape, seed + 1)) > 0, field > 0


def best_time(function, repeats, give_up_after=5.0):
    """(value, best wall time in s) over up to ``repeats`` runs."""
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
        if best > give_up_after:
            break
    return value, best


def optional(module):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ImportError:
        return None


def reference_functions(spacing):
    """{(metric, package): (callable(prediction, reference) -> float, same_definition)}."""
    functions = {}
    surface_distance = optional("surface_distance")
    if surface_distance is not None:

        def deepmind(statistic):
            def run(prediction, reference):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    distances = surface_distance.compute_surface_distances(reference, prediction, spacing)
                return float(statistic(distances))

            return run

        functions["nsd", "surface-distance"] = (
            deepmind(lambda d: surface_distance.compute_surface_dice_at_tolerance(d, TOLERANCE_MM)),
            True,
        )
        functions["hd95", "surface-distance"] = (
            deepmind(lambda d: surface_distance.compute_robust_hausdorff(d, 95)),
            False,
        )
    monai_metrics = optional("monai.metrics")
    if monai_metrics is not None:
        import torch

        def one_hot(mask):
            tensor = torch.from_numpy(np.ascontiguousarray(mask))[None, None]
            return torch.cat([~tensor, tensor], dim=1)

        def monai(name, **kwargs):
            def run(prediction, reference):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    function = getattr(monai_metrics, name)
                    return float(function(one_hot(prediction), one_hot(reference), spacing=spacing, **kwargs).item())

            return run

        functions["nsd", "MONAI"] = (
            monai("compute_surface_dice", class_thresholds=[TOLERANCE_MM], use_subvoxels=True),
            True,
        )
        functions["hd95", "MONAI"] = (monai("compute_hausdorff_distance", percentile=95), True)
    medpy = optional("medpy.metric.binary")
    if medpy is not None:
        functions["hd95_pooled", "medpy"] = (lambda p, r: float(medpy.hd95(p, r, voxelspacing=spacing)), True)
    return functions


def our_functions(spacing):
    return {
        "nsd": lambda p, r: metrics.nsd(p, r, tolerance=TOLERANCE_MM, spacing=spacing),
        "hd95": lambda p, r: metrics.hd95(p, r, spacing=spacing),
        "hd95_pooled": lambda p, r: metrics.hd95(p, r, spacing=spacing, definition="pooled"),
    }


def agrees(ours, theirs, package):
    tolerance = 1e-9 if package in ("surface-distance", "medpy") else 1e-5 * max(1.0, abs(theirs))
    return abs(ours - theirs) <= tolerance


def run_case(name, shape, spacing, repeats):
    prediction, reference = make_case(shape)
    print(
        f"\n{name}: shape {shape}, spacing {spacing} mm, foreground {reference.mean():.1%}, "
        f"Dice {metrics.dice(prediction, reference):.3f}"
    )
    print(f"  {'metric':<12} {'package':<17} {'value':>12} {'time s':>9} {'ours s':>9} {'ratio':>7}  values")
    references = reference_functions(spacing)
    for metric, ours_function in our_functions(spacing).items():
        ours, ours_time = best_time(lambda: ours_function(prediction, reference), repeats)
        print(f"  {metric:<12} {'omnimedseg':<17} {ours:12.6f} {ours_time:9.3f}")
        for (reference_metric, package), (function, same_definition) in references.items():
            if reference_metric != metric:
                continue
            theirs, their_time = best_time(lambda: function(prediction, reference), repeats)
            if same_definition:
                verdict = "agree" if agrees(ours, theirs, package) else f"DIFFER by {abs(ours - theirs):.3g}"
            else:
                verdict = "other definition (surfel-area weighted), not compared"
            print(
                f"  {'':<12} {package:<17} {theirs:12.6f} {their_time:9.3f} {ours_time:9.3f} "
                f"{their_time / ours_time:6.1f}x  {verdict}"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller masks (256x256 and 96^3)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing; the best counts")
    args = parser.parse_args()
    versions = []
    for package in ("numpy", "scipy", "surface_distance", "monai", "torch", "medpy"):
        module = optional(package)
        if module is not None:
            versions.append(f"{package} {getattr(module, '__version__', '?')}")
    torch = optional("torch")
    threads = f", torch threads {torch.get_num_threads()}" if torch is not None else ""
    print(f"Python {platform.python_version()} on {platform.machine()}{threads}; " + ", ".join(versions))
    cases = (
        [("2D", (256, 256), (0.7, 0.9)), ("3D", (96, 96, 96), (2.5, 0.8, 0.8))]
        if args.quick
        else [("2D", (512, 512), (0.7, 0.9)), ("3D", (256, 256, 256), (2.5, 0.8, 0.8))]
    )
    for name, shape, spacing in cases:
        run_case(name, shape, spacing, args.repeats)


if __name__ == "__main__":
    main()
