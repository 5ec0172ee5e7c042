"""Writing NIfTI: one small function every converter shares.

Why not ``nibabel.save``: it cannot choose the gzip level, compresses on one core, and
stamps the current time into the gzip header, so the same volume written twice gives
different bytes. Here the level is a parameter (default chosen by measurement, see below),
chunks are deflated in threads (standard single-member gzip, see ``_ParallelGzip``) and the
header time is fixed at 0, so outputs are byte-reproducible and can be hashed.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np

from omnimedseg.converters.formats.imagedata import ImageData
from omnimedseg.errors import ConversionError

try:  # ISA-L (python-isal): the same deflate format ~4.5x faster than zlib at similar size (measured below)
    from isal import isal_zlib as _isal
except ImportError:  # pragma: no cover - depends on the environment
    _isal = None

# gzip level (zlib's 0-9 scale) for .nii.gz. Measured by benchmarks/bench_dicom.py on the real
# TotalSegmentator CT replicated to 300 x 512 x 512 int16 (157 MB), zlib: level 1 1.7 s / 72.1 MB,
# 3 3.7 s / 70.0 MB, 6 8.0 s / 70.3 MB, 9 23.5 s / 69.9 MB. Higher levels buy < 3 % for 2-14x the
# time, so 1 is the default. With ISA-L the same volume takes 0.49 s at 73.8 MB (docs/formats.md).
DEFAULT_COMPRESSION_LEVEL = 1
# zlib level -> ISA-L level (ISA-L has 0-3; its 1 and 2 cost the same, 2 is smaller). 0 stays "stored".
_ISAL_LEVEL = {1: 2, 2: 2, 3: 2, 4: 2, 5: 2, 6: 3, 7: 3, 8: 3, 9: 3}
USE_ISAL = _isal is not None


def deflate_backend() -> str:
    """Which deflate implementation writes .nii.gz here (bytes differ between backends)."""
    if USE_ISAL and _isal is not None:
        import isal

        return f"isal {isal.__version__}"
    return f"zlib {zlib.ZLIB_RUNTIME_VERSION}"


def _compressor(level: int):
    if level and USE_ISAL and _isal is not None:
        return _isal.compressobj(_ISAL_LEVEL[level], _isal.DEFLATED, -15)
    return zlib.compressobj(level, zlib.DEFLATED, -15)

# CRC-32 of the gzip trailer: ISA-L's is ~6x faster than zlib's (same value); it was 10 % of writing a mask.
_crc32 = _isal.crc32 if _isal is not None else zlib.crc32

# Uncompressed bytes per independently deflated chunk (pigz uses 128 KiB; larger loses less ratio).
GZIP_CHUNK = 4 << 20
# Threads deflating one file (env OMNIMEDSEG_GZIP_THREADS overrides, e.g. 1 in a full process pool).
GZIP_THREADS = int(os.environ.get("OMNIMEDSEG_GZIP_THREADS", 0)) or max(1, min(4, os.cpu_count() or 1))


class _ParallelGzip(io.IOBase):
    """Write-only file object producing one standard gzip member, deflated in threads.

    Why: gzip dominates writing a CT (zlib level 1: 2.4 s of 3.6 s for 300 uncompressed slices).
    zlib releases the GIL, so chunks compress in parallel the way pigz does: each chunk is an
    independent raw-deflate stream ended by a sync flush (byte aligned, not final), the last
    one by Z_FINISH; the concatenation is one valid deflate stream. Output depends on the chunk
    size and the deflate backend (:func:`deflate_backend`), never on the thread count, so files
    stay byte-reproducible in one environment.
    """

    def __init__(self, raw, level: int, threads: int | None = None):
        super().__init__()
        threads = GZIP_THREADS if threads is None else threads
        self._raw, self._level = raw, level
        self._buf = bytearray()
        self._crc, self._size = 0, 0
        self._pool = ThreadPoolExecutor(threads) if threads > 1 else None
        self._pending: deque = deque()
        # chunks waiting or deflating: one per thread keeps every thread busy; more only costs
        # memory (4 MiB in + ~2 MiB out each), which counts against the per-volume budget
        self._limit = threads
        xfl = 4 if level == 1 else 2 if level == 9 else 0
        raw.write(b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + bytes([xfl, 255]))  # mtime 0, OS unknown

    def _deflate(self, data: bytes, final: bool) -> bytes:
        c = _compressor(self._level)
        return c.compress(data) + c.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)

    def _submit(self, data: bytes, final: bool) -> None:
        if self._pool is None:
            self._raw.write(self._deflate(data, final))
            return
        self._pending.append(self._pool.submit(self._deflate, data, final))
        while len(self._pending) > (0 if final else self._limit):
            self._raw.write(self._pending.popleft().result())

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self._crc = _crc32(view, self._crc)
        self._size += len(view)
        pos = 0
        if self._buf:
            pos = GZIP_CHUNK - len(self._buf)
            self._buf += view[:pos]
            if len(self._buf) < GZIP_CHUNK:
                return len(view)
            self._submit(self._buf, False)  # handed over, not copied: a new buffer follows
            self._buf = bytearray()
        while len(view) - pos >= GZIP_CHUNK:
            self._submit(bytes(view[pos:pos + GZIP_CHUNK]), False)
            pos += GZIP_CHUNK
        self._buf += view[pos:]
        return len(view)

    def finish(self) -> None:
        """Deflate what is left and write the gzip trailer (CRC-32, size mod 2**32)."""
        self._submit(bytes(self._buf), True)
        self._raw.write(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def flush(self) -> None:  # nibabel may call it; data only leaves in whole chunks
        pass

    def tell(self) -> int:  # nibabel asks where the data starts
        return self._size

    def seek(self, pos: int, whence: int = 0) -> int:
        """Only 'seeks' that stay put or move forward (filled with zeros) are possible in a stream."""
        target = pos if whence == 0 else self._size + pos if whence == 1 else None
        if target is None or target < self._size:
            raise io.UnsupportedOperation(f"cannot seek back in a gzip stream (to {pos}, whence {whence})")
        if target > self._size:
            self.write(bytes(target - self._size))
        return self._size

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


class _DigestingWriter:
    """A binary file that also feeds every written byte to a ``hashlib`` object."""

    def __init__(self, raw, digest):
        self._raw, self._digest = raw, digest

    def write(self, data) -> int:
        self._digest.update(data)
        return self._raw.write(data)

    def tell(self) -> int:
        return self._raw.tell()


# NIfTI has no bool; a mask of 0/1 is stored as uint8. int64 is refused by many readers.
_STORED = {np.dtype(bool): np.uint8, np.dtype(np.int64): np.int32, np.dtype(np.uint64): np.uint32,
           np.dtype(np.float64): np.float32}


def write_nifti(image: ImageData, path: str | os.PathLike,
                compression_level: int = DEFAULT_COMPRESSION_LEVEL, *, digest=None) -> Path:
    """Write a 3D ``ImageData`` as NIfTI-1 (``.nii`` or ``.nii.gz``); return the path.

    The affine goes into both sform and qform with code 1 (scanner), units mm. The file
    is written to a temporary name and renamed, so a crash never leaves a half file.
    int64/float64 arrays are narrowed (only when the values survive unchanged).
    ``digest``: a ``hashlib`` object fed every byte written to the file (no second read).
    """
    path = _check_target(path, compression_level)
    if image.affine is None:
        raise ConversionError(f"{path}: image has no affine (2D data); expected a 3D ImageData for NIfTI")
    array = np.asarray(image.array)
    stored = _STORED.get(array.dtype)
    if stored is not None:
        narrowed = array.astype(stored)
        if array.dtype.kind != "b" and not np.array_equal(narrowed, array, equal_nan=array.dtype.kind == "f"):
            if array.dtype.kind != "f":
                raise ConversionError(f"{path}: {array.dtype} values do not fit {np.dtype(stored)}; "
                                      f"expected data that NIfTI readers support")
        array = narrowed
    planes = (array[(slice(None), slice(None)) + index] for index in _plane_indices(array.shape))
    return write_nifti_planes(path, array.shape, array.dtype, image.affine, planes, compression_level, digest=digest)


def _check_target(path, compression_level) -> Path:
    path = Path(path)
    name = path.name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        raise ConversionError(f"{path}: expected a .nii or .nii.gz file name, found {path.suffix or 'no suffix'}")
    if not 0 <= int(compression_level) <= 9:
        raise ConversionError(f"{path}: compression level {compression_level} out of range; expected 0..9")
    return path


def _plane_indices(shape) -> list[tuple[int, ...]]:
    """Indices over the axes after the first two, in NIfTI's (Fortran) order: k fastest, then t."""
    rest = tuple(shape[2:])
    return [tuple(reversed(i)) for i in np.ndindex(*reversed(rest))] if rest else [()]


def write_nifti_planes(path: str | os.PathLike, shape: tuple[int, ...], dtype, affine: np.ndarray,
                       planes, compression_level: int = DEFAULT_COMPRESSION_LEVEL, *, digest=None) -> Path:
    """Write a NIfTI-1 file whose voxels arrive as 2D planes ``array[:, :, k(, t)]`` in file
    order, so a volume never has to be in memory at once (DICOM series are streamed this way;
    :func:`write_nifti` uses it too: one writer, the same bytes).

    The header is nibabel's for an unscaled array of ``shape`` / ``dtype`` / ``affine`` (what
    ``Nifti1Image.to_filename`` writes: sform and qform code 1, mm, slope 1 intercept 0).
    ``digest`` (a ``hashlib`` object) is fed the file's bytes as they are written.
    """
    path = _check_target(path, compression_level)
    dtype = np.dtype(dtype)
    # a zero-strided stand-in lends nibabel the shape and dtype without allocating the volume
    img = nib.Nifti1Image(np.broadcast_to(np.zeros((), dtype=dtype), tuple(shape)), affine)
    img.set_data_dtype(dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.update_header()
    header = img.header
    header.set_slope_inter(1.0, 0.0)  # what nibabel's array writer sets for an unscaled array
    plane_shape, count = tuple(shape[:2]), len(_plane_indices(shape))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")

    def write(fh) -> None:
        header.write_to(fh)
        fh.write(bytes(int(header.get_data_offset()) - fh.tell()))
        written = 0
        for plane in planes:
            plane = np.asarray(plane)
            if plane.shape != plane_shape or plane.dtype != dtype:
                raise ConversionError(f"{path}: plane {written} is {plane.shape} {plane.dtype}; expected "
                                      f"{plane_shape} {dtype}")
            fh.write(plane.tobytes(order="F"))
            written += 1
        if written != count:
            raise ConversionError(f"{path}: {written} planes written; expected {count}")

    try:
        with open(tmp, "wb") as raw:
            if digest is not None:
                raw = _DigestingWriter(raw, digest)
            if path.name.lower().endswith(".gz"):
                gz = _ParallelGzip(raw, int(compression_level))
                try:
                    write(gz)
                    gz.finish()
                finally:
                    gz.shutdown()
            else:
                write(raw)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_nifti(path: str | os.PathLike) -> ImageData:
    """Read a NIfTI file as ``ImageData`` (array in the stored dtype when unscaled)."""
    path = Path(path)
    try:
        img = nib.load(str(path))
        array = np.asanyarray(img.dataobj)
    except FileNotFoundError:
        raise ConversionError(f"{path}: file not found") from None
    except Exception as exc:  # nibabel raises many types for damaged files
        raise ConversionError(f"{path}: not a readable NIfTI ({exc}); expected a .nii/.nii.gz file") from None
    return ImageData(array, img.affine, meta={"source": str(path)})


__all__ = ["DEFAULT_COMPRESSION_LEVEL", "deflate_backend", "read_nifti", "write_nifti", "write_nifti_planes"]
