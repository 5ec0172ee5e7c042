"""DICOM series -> NIfTI throughput: omnimedseg vs dcm2niix vs dicom2nifti, same run, same input.

Input: the real TotalSegmentator CT (20 slices, 512 x 512, JPEG-2000 lossless) replicated to a
realistic series (default 300 slices, 2 mm apart; pixel data copied as stored), plus an
uncompressed copy of it (Explicit VR Little Endian). Every tool writes .nii.gz. Reported:
wall time (best of --repeats), slices/s and MB/s of raw input, single process and two
conversions at once in 2 worker processes (aggregate throughput), then the gzip level table
(size vs time) that chose ``nifti.DEFAULT_COMPRESSION_LEVEL``, and the peak resident memory of
each tool (a fresh process each, ru_maxrss). No assertions: it prints.

    python benchmarks/bench_dicom.py            # 300 slices, 3 repeats
    python benchmarks/bench_dicom.py --quick    # 60 slices, 1 repeat
    python benchmarks/bench_dicom.py --memory-only   # peak RSS table only
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REALDATA = Path(os.environ.get("OMNIMEDSEG_REALDATA", Path(__file__).resolve().parents[2] / "shared" / "realdata"))
SOURCE = REALDATA / "totalseg_ct_dicom" / "example_ct_dicom"


def replicate(src: Path, dst: Path, n: int, uncompressed: bool) -> int:
    """Write an n-slice series made from the real slices; returns the input size in bytes."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    dst.mkdir(parents=True)
    originals = [pydicom.dcmread(p) for p in sorted(src.iterdir())]
    if uncompressed:
        for ds in originals:
            ds.decompress()
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    z0 = float(originals[0].ImagePositionPatient[2])
    for k in range(n):
        ds = originals[k % len(originals)]
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.CTImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID = series, study, frame
        ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], z0 - 2.0 * k]
        ds.SliceLocation = z0 - 2.0 * k
        if uncompressed:
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(dst / f"CT{k:05d}")
    return sum(p.stat().st_size for p in dst.iterdir())


# --------------------------------------------------------------------------- one conversion per tool

def run_ours(src: str, out: str) -> None:
    from omnimedseg.converters.formats.dicom import dicom_to_nifti

    dicom_to_nifti(src, Path(out) / "ours.nii.gz")


def run_ours_j2(src: str, out: str) -> None:
    from omnimedseg.converters.formats.dicom import dicom_to_nifti

    dicom_to_nifti(src, Path(out) / "ours.nii.gz", workers=2)


def run_dicom2nifti(src: str, out: str) -> None:
    import logging

    import dicom2nifti

    logging.getLogger("dicom2nifti").setLevel(logging.ERROR)
    dicom2nifti.dicom_series_to_nifti(src, str(Path(out) / "d2n.nii.gz"), reorient_nifti=False)


def run_dcm2niix(src: str, out: str, level: int = 1) -> None:
    # -z y: internal gzip (no pigz in the venv); -<level> the same gzip level as ours
    subprocess.run(["dcm2niix", "-z", "y", f"-{level}", "-f", "dcm2niix", "-o", out, src], check=True,
                   capture_output=True)


def run_dcm2niix_6(src: str, out: str) -> None:
    run_dcm2niix(src, out, 6)


# dcm2niix-1: gzip level 1 like ours; dcm2niix-6: its default level
TOOLS = {"omnimedseg": run_ours, "omnimedseg -j 2": run_ours_j2, "dicom2nifti": run_dicom2nifti, "dcm2niix-1": run_dcm2niix,
         "dcm2niix-6": run_dcm2niix_6}


def _fresh(base: Path) -> str:
    out = Path(tempfile.mkdtemp(dir=base))
    return str(out)


def time_single(tool, src: Path, base: Path, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        out = _fresh(base)
        t = time.perf_counter()
        tool(str(src), out)
        best = min(best, time.perf_counter() - t)
        shutil.rmtree(out)
    return best


def time_two_workers(tool, src: Path, base: Path, repeats: int, pool: ProcessPoolExecutor) -> float:
    """Wall time of two conversions of the series run at once in 2 worker processes."""
    pool.submit(int, 0).result()  # workers started before timing
    best = float("inf")
    for _ in range(repeats):
        outs = [_fresh(base), _fresh(base)]
        t = time.perf_counter()
        for f in [pool.submit(tool, str(src), o) for o in outs]:
            f.result()
        best = min(best, time.perf_counter() - t)
        for o in outs:
            shutil.rmtree(o)
    return best


# A minimal launcher: ru_maxrss of a forked child starts from its parent's RSS, so the tool is
# started from this small process (a few MiB), never from the benchmark (which holds volumes).
_LAUNCHER = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def _peak_of(cmd: list[str]) -> int:
    res = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"{cmd[0]} failed: {res.stderr.strip()[-500:]}")
    return int(res.stdout.split()[-1]) * 1024  # kB on Linux


def peak_rss(name: str, src: Path, base: Path) -> int:
    """Peak resident memory (bytes) of one conversion by ``name`` in a fresh process."""
    out = _fresh(base)
    if name.startswith("dcm2niix"):
        cmd = ["dcm2niix", "-z", "y", f"-{name.split('-')[1]}", "-f", "dcm2niix", "-o", out, str(src)]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--run-one", name, str(src), out]
    try:
        return _peak_of(cmd)
    finally:
        shutil.rmtree(out)


def baseline_rss() -> int:
    """Peak RSS of a process that only imports what our conversion imports (the interpreter floor)."""
    return _peak_of([sys.executable, "-c", "import numpy, pydicom, nibabel; "
                     "import omnimedseg.converters.formats.dicom, omnimedseg.converters.formats.nifti"])


def affine_check(src: Path, base: Path) -> str:
    import nibabel as nib

    from omnimedseg.converters.formats.dicom import read_series

    out = _fresh(base)
    run_dcm2niix(str(src), out)
    ref = nib.load(next(Path(out).glob("*.nii.gz")))
    ours = read_series(src)
    same = np.array_equal(np.asanyarray(ref.dataobj), ours.array)
    return f"affine max |ours - dcm2niix| = {np.abs(ref.affine - ours.affine).max():.2e} mm, voxels equal: {same}"


def compression_table(src: Path, base: Path) -> list[tuple[str, int, float, int]]:
    from omnimedseg.converters.formats import nifti
    from omnimedseg.converters.formats.dicom import read_series

    image = read_series(src)
    rows = []
    backends = [True, False] if nifti._isal is not None else [False]
    for use_isal in backends:
        nifti.USE_ISAL = use_isal
        for level in (0, 1, 3, 6, 9):
            path = Path(_fresh(base)) / "v.nii.gz"
            t = time.perf_counter()
            nifti.write_nifti(image, path, level)
            rows.append((nifti.deflate_backend(), level, time.perf_counter() - t, path.stat().st_size))
    nifti.USE_ISAL = nifti._isal is not None
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 slices, 1 repeat")
    parser.add_argument("--slices", type=int, default=None, help="series length (default 300, quick 60)")
    parser.add_argument("--repeats", type=int, default=None, help="best of N (default 3, quick 1)")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of: " + ", ".join(TOOLS))
    parser.add_argument("--memory-only", action="store_true", help="only the peak-RSS table")
    parser.add_argument("--run-one", nargs=3, metavar=("TOOL", "SRC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_one:  # child process of peak_rss
        TOOLS[args.run_one[0]](args.run_one[1], args.run_one[2])
        return 0
    n = args.slices or (60 if args.quick else 300)
    repeats = args.repeats or (1 if args.quick else 3)
    tools = {name: TOOLS[name] for name in args.tools.split(",") if name}
    if not SOURCE.is_dir():
        print(f"real series not found at {SOURCE} (set OMNIMEDSEG_REALDATA)")
        return 1
    if shutil.which("dcm2niix") is None:
        tools = {k: v for k, v in tools.items() if not k.startswith("dcm2niix")}
        print("dcm2niix not on PATH (pip install dcm2niix): left out")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    from omnimedseg.converters.formats.nifti import GZIP_THREADS, deflate_backend

    print(f"# DICOM -> NIfTI, {n} slices of 512 x 512 from the real TotalSegmentator CT; best of {repeats}; "
          f"{os.cpu_count()} CPUs, load average {load:.1f} at start; our gzip: {deflate_backend()}, "
          f"{GZIP_THREADS} thread(s)")
    with tempfile.TemporaryDirectory(prefix="bench_dicom_") as tmp:
        base = Path(tmp)
        results = {}
        with ProcessPoolExecutor(2) as pool:
            for variant, uncompressed in (("JPEG-2000 lossless (as stored)", False), ("uncompressed", True)):
                src = base / ("raw" if uncompressed else "j2k")
                size = replicate(SOURCE, src, n, uncompressed)
                mb = size / 1e6
                print(f"\n## {variant}: {mb:.1f} MB input; {affine_check(src, base)}")
                volume = n * 512 * 512 * 2  # the int16 output volume
                print(f"peak RSS (fresh process per tool; output volume {volume / 2**20:.0f} MiB, "
                      f"python+imports alone {baseline_rss() / 2**20:.0f} MiB):")
                for name in tools:
                    rss = peak_rss(name, src, base)
                    print(f"  {name:22s} {rss / 2**20:7.0f} MiB  {rss / volume:5.2f}x the volume", flush=True)
                if args.memory_only:
                    continue
                print(f"{'tool':24s} {'1 proc s':>9s} {'slices/s':>9s} {'MB/s':>7s} | "
                      f"{'2 workers s':>11s} {'slices/s':>9s} {'MB/s':>7s}")
                for name, tool in tools.items():
                    t1 = time_single(tool, src, base, repeats)
                    t2 = time_two_workers(tool, src, base, repeats, pool)
                    results[(variant, name)] = (t1, t2)
                    print(f"{name:24s} {t1:9.2f} {n / t1:9.1f} {mb / t1:7.1f} | "
                          f"{t2:11.2f} {2 * n / t2:9.1f} {2 * mb / t2:7.1f}")
                ours = results.get((variant, "omnimedseg"))
                if ours:
                    for ref in ("dicom2nifti", "dcm2niix-1", "dcm2niix-6"):
                        if (variant, ref) in results:
                            r = results[(variant, ref)]
                            print(f"  time ours / {ref}: 1 proc {ours[0] / r[0]:.2f}x, 2 workers {ours[1] / r[1]:.2f}x")
        if args.memory_only:
            return 0
        print("\n## gzip level for .nii.gz (our writer, the uncompressed variant's volume; level on zlib's scale)")
        print(f"{'backend':14s} {'level':>5s} {'write s':>8s} {'MB':>7s} {'ratio':>6s}")
        for backend, level, seconds, size in compression_table(base / "raw", base):
            print(f"{backend:14s} {level:5d} {seconds:8.2f} {size / 1e6:7.1f} {size / (n * 512 * 512 * 2):6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
