"""Fake Cheng brain tumour release (figshare 1512427): four zips of ``N.mat`` files and ``cvind.mat``.

Each ``N.mat`` is written as MATLAB v7.3 writes it: an HDF5 file with a 512-byte "MATLAB 7.3 MAT-file"
user block, a group ``cjdata`` (``MATLAB_class`` "struct") whose fields are stored column-major, i.e.
the HDF5 dataset is the transpose of the MATLAB array: ``image`` int16, ``label`` double 1x1, ``PID``
char (uint16 codes), ``tumorBorder`` double 1x2K, ``tumorMask`` logical. ``cvind.mat`` is v7.3 too (HDF5, a
double 3064x1 column stored as a 1x3064 HDF5 dataset): public loaders open it with ``h5py.File`` or reach it only
in their h5py fallback after ``scipy.io.loadmat`` refuses v7.3, and its published size (5,736 B, licences.md) is
that of a compressed HDF5 file, not of a v5 MAT file.
The mask is an asymmetric "L" in MATLAB (row, col) coordinates so a transposed read is caught.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np

from tests.converters.fake._common import zip_folder

# slice number -> (zip, tumour type 1/2/3, fold, side)
SLICES = {1: ("1-766", 1, 1, 32), 2: ("1-766", 2, 2, 32), 3: ("767-1532", 3, 3, 32),
          4: ("1533-2298", 1, 4, 32), 5: ("2299-3064", 2, 5, 32), 6: ("2299-3064", 3, 1, 16)}
HEADER = b"MATLAB 7.3 MAT-file, Platform: PCWIN64, Created on: Mon Apr 13 10:00:00 2015 HDF5 schema 1.00 ."


def mask_rows_cols(side: int) -> np.ndarray:
    """The tumour mask as MATLAB indexes it: a vertical bar plus a foot to the right (an "L")."""
    mask = np.zeros((side, side), np.uint8)
    mask[2:side // 2, 3:5] = 1
    mask[side // 2 - 2:side // 2, 3:side - 2] = 1
    return mask


def image_rows_cols(n: int, side: int) -> np.ndarray:
    rows, cols = np.mgrid[:side, :side]
    return (rows * 40 + cols * 3 + n).astype(np.int16)  # brighter downwards: orientation visible in QA


def _field(group, name, matlab_array, matlab_class):
    data = np.asarray(matlab_array)
    ds = group.create_dataset(name, data=data.T)  # column-major on disk: h5py sees the transpose
    ds.attrs["MATLAB_class"] = np.bytes_(matlab_class)


def _matlab_header(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.write(HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")


def write_v73(path: Path, n: int, tumour_type: int, side: int) -> None:
    with h5py.File(path, "w", userblock_size=512) as f:
        group = f.create_group("cjdata")
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        _field(group, "image", image_rows_cols(n, side), "int16")
        _field(group, "label", np.array([[float(tumour_type)]]), "double")
        _field(group, "PID", np.array([[ord(c) for c in f"MR0{n:04d}"]], np.uint16), "char")
        _field(group, "tumorBorder", np.array([[3.0, 2.0, 4.0, 2.0, 4.0, 8.0]]), "double")
        _field(group, "tumorMask", mask_rows_cols(side), "logical")
    _matlab_header(path)


def write_cvind_v73(path: Path, folds: list[int]) -> None:
    """``cvind`` as MATLAB -v7.3 saves a double N x 1 column (HDF5 sees 1 x N)."""
    with h5py.File(path, "w", userblock_size=512) as f:
        _field(f, "cvind", np.array([[float(fold)] for fold in folds]), "double")
    _matlab_header(path)


def make_remote_files(folder: Path) -> None:
    work = folder / "_work"
    for n, (part, tumour_type, _, side) in SLICES.items():
        (work / part).mkdir(parents=True, exist_ok=True)
        write_v73(work / part / f"{n}.mat", n, tumour_type, side)
    for part in sorted({p for p, *_ in SLICES.values()}):
        zip_folder(folder / f"brainTumorDataPublic_{part}.zip", work / part)
    write_cvind_v73(folder / "cvind.mat", [fold for _, _, fold, _ in SLICES.values()])
    (folder / "README 2024.txt").write_text("This brain tumor dataset containing 3064 T1-weighted contrast-inhanced "
                                            "images ... (fake README)\n")
    shutil.rmtree(work)
