"""Clicks per second for center clicks: omnimedseg's cropped EDT vs a naive full-image EDT.

Both sides do the same job per click: connected components of the label (full
connectivity), pick the largest, place a click at a voxel maximising the EDT of that
component (image border counts as background), ties broken with the same generator.

* ours  = ``get_robot_user("click_largest_center").next_prompt(label, None, rng)``
          (components labelled inside the label's bounding box, EDT on the component's
          bounding box + 1 voxel).
* naive = ``scipy.ndimage.label`` on the whole array + ``distance_transform_edt`` of the
          whole (1-voxel padded) component mask.

Usage: ``python benchmarks/bench_clicks.py [--quick] [--repeats N]``. Prints a table; it
also checks that both give the same set of arg-max voxels. No assertions on time.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from scipy import ndimage

from omnimedseg.interactive import get_robot_user, make_rng


def naive_center_click(label: np.ndarray, rng: np.random.Generator):
    structure = ndimage.generate_binary_structure(label.ndim, label.ndim)
    labels, n = ndimage.label(label, structure=structure)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    comp = labels == int(np.argmax(sizes))
    d = ndimage.distance_transform_edt(np.pad(comp, 1))[(slice(1, -1),) * label.ndim]
    cands = np.flatnonzero(d >= d.max() * (1 - 1e-12))
    return np.unravel_index(int(cands[int(rng.integers(cands.size))]), label.shape), cands


def ellipsoid(shape, center, radii) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center, radii)) <= 1.0


def make_cases(ndim: int, n: int, radius_range, seed: int, size: int):
    """Organ-like blobs: a random ellipsoid plus a small satellite component."""
    rng = np.random.default_rng(seed)
    shape = (size,) * ndim
    cases = []
    for _ in range(n):
        radii = rng.uniform(*radius_range, size=ndim)
        center = [rng.uniform(r, s - r) for r, s in zip(radii, shape)]
        m = ellipsoid(shape, center, radii)
        sat = [rng.uniform(4, s - 4) for s in shape]
        m |= ellipsoid(shape, sat, [3] * ndim)
        cases.append(m)
    return cases


def make_near_full(ndim: int, n: int, seed: int, size: int):
    """Near-full-volume masks: the whole array minus a border slab and a few holes (a body
    outline filling the field of view); the component's box is the whole array."""
    rng = np.random.default_rng(seed)
    shape = (size,) * ndim
    cases = []
    for _ in range(n):
        m = np.ones(shape, dtype=bool)
        m[(slice(0, int(rng.integers(1, 4))),)] = False
        for _ in range(3):
            lo = [int(rng.integers(0, s - size // 8)) for s in shape]
            m[tuple(slice(a, a + int(rng.integers(2, size // 8))) for a in lo)] = False
        cases.append(m)
    return cases


def timed(fn, m, i) -> float:
    t0 = time.perf_counter()
    fn(m, i)
    return time.perf_counter() - t0


def run(quick: bool, repeats: int):
    user = get_robot_user("click_largest_center")
    configs = [
        ("2D 512x512, r 20-120", 2, 512, (20, 120), 20 if not quick else 8),
        ("2D 512x512, near-full", 2, 512, None, 20 if not quick else 8),
        ("3D 256^3, r 15-40 (organ)", 3, 256, (15, 40), 4 if not quick else 2),
        ("3D 256^3, r 40-80 (large)", 3, 256, (40, 80), 3 if not quick else 1),
        ("3D 256^3, r 100-128 (huge)", 3, 256, (100, 128), 3 if not quick else 1),
        ("3D 256^3, near-full", 3, 256, None, 3 if not quick else 1),
    ]
    if quick:
        configs = [c for c in configs if "large" not in c[0] and "huge" not in c[0]]
    print(f"# center clicks/s, median per click over {repeats} interleaved rounds; python {platform.python_version()}, numpy {np.__version__}")
    print(f"{'case':32s} {'ours/s':>10s} {'naive/s':>10s} {'ratio':>8s}  same argmax set")
    for title, ndim, size, radius, n in configs:
        cases = make_cases(ndim, n, radius, seed=ndim, size=size) if radius else \
            make_near_full(ndim, n, seed=ndim, size=size)
        agree = True
        for i, m in enumerate(cases):
            ours = user.next_prompt(m, None, make_rng(0, i, "fg", 0, user.name))
            coord, cands = naive_center_click(m, make_rng(0, i, "fg", 0, user.name))
            agree &= np.ravel_multi_index(ours.coord, m.shape) in set(cands.tolist())
        ours = lambda m, i: user.next_prompt(m, None, make_rng(0, i, "fg", 0, user.name))  # noqa: E731
        naive = lambda m, i: naive_center_click(m, make_rng(0, i, "fg", 0, user.name))  # noqa: E731
        # interleaved (ours, naive, ours, ...) so machine load hits both sides alike; medians
        ours_t, naive_t = [], []
        for _ in range(repeats):
            for i, m in enumerate(cases):
                ours_t.append(timed(ours, m, i))
                naive_t.append(timed(naive, m, i))
        ours_rate, naive_rate = 1 / np.median(ours_t), 1 / np.median(naive_t)
        print(f"{title:32s} {ours_rate:10.2f} {naive_rate:10.2f} {ours_rate / naive_rate:7.1f}x  {agree}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer cases, skip the large-volume row")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    run(args.quick, args.repeats)


if __name__ == "__main__":
    main()
