"""PNG compression level for converted 2D images: write time vs file size.

Measured on the real HC18 ultrasound images (../shared/realdata) and on a 16-bit
synthetic CT-like slice. Prints one row per level and the ratio to Pillow's default
(level 6), which is what a plain ``Image.save`` (the usual conversion script) uses.

    python benchmarks/bench_png.py [--repeat N]
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "hc18_ellipse" / "training_set"


def images() -> dict[str, list[np.ndarray]]:
    found = {"hc18 ultrasound (uint8)": [np.asarray(Image.open(p)) for p in sorted(REALDATA.glob("*_HC.png"))]}
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:512, :512]
    body = ((yy - 256) ** 2 + (xx - 256) ** 2 < 200 ** 2) * 1000
    ct = (body + 24 + rng.normal(0, 20, (512, 512))).clip(0, 4095).astype(np.uint16)
    found["synthetic CT slice (uint16)"] = [ct]
    return {k: v for k, v in found.items() if v}


def measure(arrays: list[np.ndarray], level: int, repeat: int) -> tuple[float, int]:
    best = float("inf")
    for _ in range(repeat):
        size = 0
        start = time.perf_counter()
        for a in arrays:
            buffer = io.BytesIO()
            Image.fromarray(a).save(buffer, format="PNG", compress_level=level)
            size += buffer.tell()
        best = min(best, time.perf_counter() - start)
    return best / len(arrays), size // len(arrays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for name, arrays in images().items():
        base_t, base_s = measure(arrays, 6, args.repeat)
        print(f"\n{name}: {len(arrays)} image(s); ratios vs level 6 (Pillow default)")
        print(f"{'level':>5} {'ms/image':>9} {'KiB/image':>10} {'speed x':>8} {'size x':>7}")
        for level in (0, 1, 3, 6, 9):
            t, s = measure(arrays, level, args.repeat)
            print(f"{level:>5} {t * 1000:>9.1f} {s / 1024:>10.1f} {base_t / t:>8.2f} {s / base_s:>7.2f}")


if __name__ == "__main__":
    main()
