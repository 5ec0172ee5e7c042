"""Writers shared by the fake-release generators: NIfTI/MHA files and archives as releases pack them."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np

# A voxel -> RAS affine with 0.8 x 0.8 x 2.5 mm voxels, like an axial CT stored LPS-flipped by scanners.
CT_AFFINE = np.array([[-0.8, 0, 0, 100.0], [0, -0.8, 0, 120.0], [0, 0, 2.5, -300.0], [0, 0, 0, 1]])


def nifti_bytes(array: np.ndarray, affine: np.ndarray = CT_AFFINE, dtype=None, sform: bool = True,
                qform: bool = True, slope: float | None = None) -> bytes:
    """A gzipped NIfTI-1 as bytes; ``dtype`` is the stored type, ``sform``/``qform`` which codes are set."""
    img = nib.Nifti1Image(np.asarray(array), affine)
    img.set_data_dtype(dtype or np.asarray(array).dtype)
    img.set_sform(affine, code=1 if sform else 0)
    img.set_qform(affine, code=1 if qform else 0)
    if slope is not None:
        img.header.set_slope_inter(slope, 0.0)
    return gzip.compress(img.to_bytes(), mtime=0)


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray = CT_AFFINE, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(nifti_bytes(array, affine, **kw))
    return path


def write_itk(path: Path, array_kji: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
              direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)) -> Path:
    """MHA/MHD(+RAW) via SimpleITK; ``array_kji`` is indexed (k, j, i) as SimpleITK stores it."""
    import SimpleITK as sitk

    path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(array_kji)
    img.SetSpacing([float(s) for s in spacing])
    img.SetOrigin([float(o) for o in origin])
    img.SetDirection([float(d) for d in direction])
    sitk.WriteImage(img, str(path), False)
    return path


def zip_members(zip_path: Path, members: dict[str, bytes], folders: bool = True) -> Path:
    """A zip holding ``members`` (arcname -> bytes) with explicit folder entries, as zip tools write them."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        written: set[str] = set()
        for name in sorted(members):
            if folders:
                parts = name.split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    folder = "/".join(parts[:i]) + "/"
                    if folder not in written:
                        written.add(folder)
                        zf.writestr(zipfile.ZipInfo(folder, date_time=(2023, 1, 1, 0, 0, 0)), b"")
            zf.writestr(zipfile.ZipInfo(name, date_time=(2023, 1, 1, 0, 0, 0)), members[name],
                        compress_type=zipfile.ZIP_DEFLATED)
    return zip_path


def zip_folder(zip_path: Path, folder: Path, prefix: str = "") -> Path:
    """Zip every file under ``folder`` as ``<prefix><relative path>``."""
    members = {prefix + p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
               if p.is_file()}
    return zip_members(zip_path, members)


def tar_members(tar_path: Path, members: dict[str, bytes]) -> Path:
    """An uncompressed tar (as the MSD tars are) holding ``members`` with folder entries."""
    with tarfile.open(tar_path, "w") as tf:
        written: set[str] = set()
        for name in sorted(members):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                folder = "/".join(parts[:i])
                if folder not in written:
                    written.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_600_000_000
                    tf.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(members[name]), 0o644, 1_600_000_000
            tf.addfile(info, io.BytesIO(members[name]))
    return tar_path


def appledouble(name: str) -> bytes:
    """The bytes of a macOS AppleDouble companion (magic 0x00051607), as found in real tars."""
    return b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + b"\x00" * 16 + name.encode()[:8]


def blob(shape, index: tuple[slice, ...], value=1, dtype=np.uint8) -> np.ndarray:
    """A zero array of ``shape`` with ``value`` at ``index`` (a box where the test expects it)."""
    array = np.zeros(shape, dtype=dtype)
    array[index] = value
    return array


def extract_release(remote: Path, target: Path) -> Path:
    """Unpack a fake release as a user would (``unzip``/``tar x`` every archive into one folder, copy the rest),
    giving the folder ``omnimedseg convert <id> --raw DIR`` reads."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(remote.iterdir()):
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                zf.extractall(target)
        elif path.name.endswith(".tar"):
            with tarfile.open(path) as tf:
                tf.extractall(target, filter="data")
        else:
            (target / path.name).write_bytes(path.read_bytes())
    return target
