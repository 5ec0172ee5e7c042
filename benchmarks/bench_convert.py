"""Conversion throughput: `omnimedseg convert` against a straightforward nibabel / Pillow loop.

Two generated datasets in their raw layout:

* 3D: TotalSegmentator-like cases, ``<case>/ct.nii.gz`` (512 x 512 x 300 int16) and
  ``<case>/segmentations/<structure>.nii.gz`` (117 binary uint8 masks, one blob each), as
  the TotalSegmentator release ships them (``--small``: 128 x 128 x 75).
* 2D: PNG image + PNG mask pairs (HC18's real ultrasound images replicated when
  ``../shared/realdata`` is present, else speckle images; masks 0/255 8-bit as released).

For each: cases/min and MB/s (raw bytes read per second) of ``convert_dataset`` at
-j 1 and -j 2, the reference loop at 1 process, the ratio per core (ours at -j 1 / loop),
and the peak RSS of the converting processes. The reference loop does what the converter
must do, the plain way: load with nibabel / Pillow, binarise masks, check shapes, save
with the library defaults (``nib.save``, ``Image.save``) and sha256 every input and
output file for provenance. Not a test: it prints figures.

    python benchmarks/bench_convert.py [--small] [--pairs N] [--cases N] [--only 2d|3d]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.image2d import read_binary_mask, read_image
from omnimedseg.converters.formats.volumes import read_label_class, read_volume

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "hc18_ellipse" / "training_set"
N_STRUCTURES = 117


# ------------------------------------------------------------------------------- converters

class TotalSegLike(Converter):
    def cases(self, raw_dir: Path):
        for folder in sorted(p for p in raw_dir.iterdir() if p.is_dir()):
            segs = folder / "segmentations"
            yield Case(case_id=folder.name, image=Source(folder / "ct.nii.gz", read_volume), split="train",
                       masks={p.name[:-7]: Source(p, _binary_volume) for p in sorted(segs.glob("*.nii.gz"))})


class PairsLike(Converter):
    def cases(self, raw_dir: Path):
        for image in sorted((raw_dir / "images").glob("*.png")):
            yield Case(case_id=image.stem, image=Source(image, read_image), split="train",
                       masks={"lesion": Source(raw_dir / "masks" / image.name, read_binary_mask)})


def _binary_volume(path):
    return read_label_class(path, values=(1,))


CONVERTERS = {"bench3d": TotalSegLike, "bench2d": PairsLike}


def _use_converters() -> None:
    from omnimedseg.converters import _run

    _run.converter_for = lambda card: CONVERTERS[card.id](card)


# ------------------------------------------------------------------------------- generated data

def make_3d(raw: Path, n_cases: int, shape: tuple[int, int, int]) -> None:
    from omnimedseg.converters.formats.imagedata import ImageData
    from omnimedseg.converters.formats.nifti import write_nifti

    rng = np.random.default_rng(0)
    affine = np.diag([-0.8, -0.8, 1.5, 1.0])
    first = raw / "s0000"
    (first / "segmentations").mkdir(parents=True)
    body = np.zeros(shape, bool)
    ii, jj = np.ogrid[:shape[0], :shape[1]]
    body[((ii - shape[0] / 2) ** 2 + (jj - shape[1] / 2) ** 2 < (0.42 * shape[0]) ** 2)] = True
    ct = np.where(body, 40, -1000).astype(np.int16) + rng.normal(0, 15, shape).astype(np.int16)
    write_nifti(ImageData(ct, affine), first / "ct.nii.gz")
    del ct
    mask = np.zeros(shape, np.uint8)
    for k in range(N_STRUCTURES):  # one ellipsoid per structure, computed in its bounding box only
        centre = rng.uniform(0.25, 0.75, 3) * shape
        radii = rng.uniform(0.03, 0.10, 3) * shape
        lo = [max(int(c - r), 0) for c, r in zip(centre, radii)]
        hi = [min(int(c + r) + 1, n) for c, r, n in zip(centre, radii, shape)]
        axes = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
        d = sum(((g - c) / r) ** 2 for g, c, r in zip(axes, centre, radii))
        mask[:] = 0
        mask[tuple(slice(a, b) for a, b in zip(lo, hi))] = d <= 1
        write_nifti(ImageData(mask, affine), first / "segmentations" / f"structure_{k:03d}.nii.gz")
    for n in range(1, n_cases):  # more cases: the same files under other names (hard links)
        shutil.copytree(first, raw / f"s{n:04d}", copy_function=os.link)


def make_2d(raw: Path, n_pairs: int) -> None:
    from PIL import Image

    (raw / "images").mkdir(parents=True)
    (raw / "masks").mkdir(parents=True)
    real = sorted(REALDATA.glob("*_HC.png"))
    rng = np.random.default_rng(1)
    sources = []
    if real:
        for path in real:
            image = np.asarray(Image.open(path).convert("L"))
            annotation = np.asarray(Image.open(path.with_name(path.stem + "_Annotation.png")).convert("L"))
            from scipy import ndimage

            sources.append((image, ndimage.binary_fill_holes(annotation > 0)))
    else:
        yy, xx = np.mgrid[:540, :800]
        fan = (np.hypot(yy, xx - 400) < 520) & (np.abs(np.arctan2(xx - 400, yy)) < 0.7)
        for _ in range(3):
            speckle = rng.rayleigh(40, (540, 800)) * fan
            sources.append((speckle.clip(0, 255).astype(np.uint8), np.hypot(yy - 300, xx - 400) < 120))
    for n in range(n_pairs):
        image, mask = sources[n % len(sources)]
        shift = n // len(sources) % 50  # every pair differs
        Image.fromarray(np.roll(image, shift, axis=1)).save(raw / "images" / f"p{n:05d}.png")
        Image.fromarray((np.roll(mask, shift, axis=1) * 255).astype(np.uint8)).save(raw / "masks" / f"p{n:05d}.png")


# ------------------------------------------------------------------------------- reference loops

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def loop_case_3d(folder: Path, out: Path) -> None:
    import nibabel as nib

    (out / "masks" / folder.name).mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    ct = nib.load(folder / "ct.nii.gz")
    target = out / "images" / f"{folder.name}.nii.gz"
    nib.save(nib.Nifti1Image(np.asanyarray(ct.dataobj), ct.affine), target)
    hashes = [_sha256(folder / "ct.nii.gz"), _sha256(target)]
    for seg in sorted((folder / "segmentations").glob("*.nii.gz")):
        img = nib.load(seg)
        mask = np.asanyarray(img.dataobj) == 1
        assert mask.shape == ct.shape
        target = out / "masks" / folder.name / seg.name
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), img.affine), target)
        hashes += [_sha256(seg), _sha256(target)]


def loop_case_2d(image_path: Path, out: Path) -> None:
    from PIL import Image

    mask_path = image_path.parent.parent / "masks" / image_path.name
    image = np.asarray(Image.open(image_path))
    mask = np.asarray(Image.open(mask_path).convert("L")) > 0
    assert mask.shape == image.shape[:2]
    Image.fromarray(image).save(out / "images" / image_path.name)
    (out / "masks" / image_path.stem).mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask).save(out / "masks" / image_path.stem / "lesion.png")
    for p in (image_path, mask_path, out / "images" / image_path.name, out / "masks" / image_path.stem / "lesion.png"):
        _sha256(p)


def run_loop(kind: str, raw: Path, out: Path) -> float:
    out.mkdir(parents=True)
    start = time.perf_counter()
    if kind == "3d":
        for folder in sorted(p for p in raw.iterdir() if p.is_dir()):
            loop_case_3d(folder, out)
    else:
        (out / "images").mkdir()
        for image in sorted((raw / "images").glob("*.png")):
            loop_case_2d(image, out)
    return time.perf_counter() - start


# ------------------------------------------------------------------------------- measurement

def _card(folder: Path, dataset_id: str, dim: int, classes: list[str]):
    from omnimedseg.registry import Card

    folder.mkdir(parents=True, exist_ok=True)
    classes_toml = "\n".join(f'{i} = "{c}"' for i, c in enumerate(classes, 1))
    path = folder / f"{dataset_id}.toml"
    path.write_text(f"""schema = 1
id = "{dataset_id}"
title = "benchmark"
description = "generated"
homepage = "https://example.org/"
modality = "{'CT' if dim == 3 else 'ultrasound'}"
dimensionality = {dim}
[classes]
{classes_toml}
[source]
platform = "zenodo"
record = "1"
version = "1"
[[source.files]]
name = "x.zip"
[license]
spdx = "CC-BY-4.0"
url = "https://creativecommons.org/licenses/by/4.0/"
redistribution = true
[citation]
doi = "10.0/x"
bibtex = "@misc{{x}}"
[converter]
version = "1.0.0"
""")
    return Card.from_toml(path)


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed_child(kind: str, what: str, raw: str, out: str, card_dir: str, jobs: int, classes: list[str]) -> tuple:
    """Run one measurement in a fresh process: (wall s, CPU s, peak RSS MiB) of this process and its workers."""
    _use_converters()
    card = _card(Path(card_dir), f"bench{kind}", 3 if kind == "3d" else 2, classes)
    cpu, start = _cpu_seconds(), time.perf_counter()
    if what == "loop":
        run_loop(kind, Path(raw), Path(out))
    else:
        from omnimedseg.converters._run import convert_dataset

        convert_dataset(card, out, workers=jobs, raw=raw)
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, cpu, max(own, children)


def measure(kind: str, raw: Path, work: Path, classes: list[str], n_cases: int, repeat: int) -> None:
    raw_bytes = sum(p.stat().st_size for p in raw.rglob("*") if p.is_file())
    if kind == "3d":  # hard-linked cases: count each case's bytes
        raw_bytes = sum(p.stat().st_size for p in (raw / "s0000").rglob("*") if p.is_file()) * n_cases
    rows = []
    for what, jobs in (("loop", 1), ("omnimedseg", 1), ("omnimedseg", 2)):
        best = (float("inf"), float("inf"), 0.0)
        for r in range(repeat):
            out = work / f"{what}{jobs}_{r}"
            with ProcessPoolExecutor(1) as pool:
                wall, cpu, peak = pool.submit(_timed_child, kind, what, str(raw), str(out), str(work / "cards"),
                                              jobs, classes).result()
            shutil.rmtree(out, ignore_errors=True)
            best = (min(best[0], wall), min(best[1], cpu), max(best[2], peak))
        rows.append((what, jobs, *best))
    loop_wall, loop_cpu = rows[0][2], rows[0][3]
    print(f"{'tool':<11}{'-j':>3}{'wall s':>8}{'CPU s':>8}{'cases/min':>10}{'MB/s':>7}{'peak RSS MiB':>13}"
          f"{'x loop wall':>12}{'x loop CPU':>11}")
    for what, jobs, wall, cpu, rss in rows:
        print(f"{what:<11}{jobs:>3}{wall:>8.2f}{cpu:>8.2f}{n_cases / wall * 60:>10.1f}{raw_bytes / 1e6 / wall:>7.1f}"
              f"{rss:>13.0f}{loop_wall / wall:>12.2f}{loop_cpu / cpu:>11.2f}")
    print("x loop wall: the loop's wall time / ours (at -j 2 on 2 cores: divide by 2 for per core); "
          "x loop CPU: CPU seconds per case, the per-core ratio that other processes on the machine do not skew")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="3D 128x128x75 and 200 PNG pairs (a quick look)")
    parser.add_argument("--pairs", type=int, help="PNG pairs (default 2000, --small 200)")
    parser.add_argument("--cases", type=int, default=2, help="TotalSegmentator-like cases (default 2)")
    parser.add_argument("--only", choices=("2d", "3d"))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="where to generate data (default: a temporary folder)")
    args = parser.parse_args()
    pairs = args.pairs or (200 if args.small else 2000)
    shape = (128, 128, 75) if args.small else (512, 512, 300)
    work = Path(tempfile.mkdtemp(prefix="bench_convert_", dir=args.workdir))
    from omnimedseg.converters.formats.nifti import deflate_backend

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, deflate {deflate_backend()}")
    try:
        if args.only in (None, "3d"):
            raw = work / "raw3d"
            start = time.perf_counter()
            make_3d(raw, args.cases, shape)
            print(f"\n3D: {args.cases} TotalSegmentator-like cases, CT {shape} int16 + {N_STRUCTURES} binary "
                  f"structures (generated in {time.perf_counter() - start:.0f} s)")
            measure("3d", raw, work / "w3d", [f"structure_{k:03d}" for k in range(N_STRUCTURES)], args.cases,
                    args.repeat)
        if args.only in (None, "2d"):
            raw = work / "raw2d"
            make_2d(raw, pairs)
            source = "real HC18 images" if REALDATA.is_dir() else "synthetic speckle images"
            print(f"\n2D: {pairs} PNG pairs ({source}, 8-bit grey image + 0/255 mask)")
            measure("2d", raw, work / "w2d", ["lesion"], pairs, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
