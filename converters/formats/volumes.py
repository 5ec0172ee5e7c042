"""3D containers and label volumes: NIfTI, MHA/MHD, NRRD, HDF5, MATLAB, stacked slice masks.

Everything comes out as :class:`ImageData` indexed (i, j, k) like nibabel, with a
voxel -> RAS+ affine. NIfTI is read by nibabel (it applies the sform/qform rules and
scl_slope/scl_inter); MHA/MHD/NRRD by SimpleITK, whose world frame is LPS: its
direction cosines, spacing and origin give an LPS affine that is turned into RAS by
negating the first two rows. No array is flipped or resampled; an LPS-stored file
keeps its voxel order and gets a RAS affine with negative axes, so orientation is
preserved exactly.

HDF5 and MATLAB files carry no geometry: the converter states the axis order and the
spacing / affine, or names a reference image whose grid the data lies on.

Readers that need a reference image take it as the second positional path, so a
converter writes ``Source((mask_file, image_file), partial(reader, ...))`` and both
files are recorded in provenance.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from omnimedseg.converters.formats.geometry import check_binary, check_slice_count
from omnimedseg.converters.formats.imagedata import ImageData
from omnimedseg.errors import ConversionError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")
VOLUME_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES
# ITK's world frame is LPS; NIfTI / ImageData affines are RAS+.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# Float label values within this distance of an integer are that integer (float32 scaling noise).
LABEL_INTEGRAL_TOLERANCE = 1e-4

PathLike = str | os.PathLike


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(ITK_SUFFIXES):
        return "itk"
    return "other"


def _missing(path: Path) -> None:
    if not path.is_file():
        raise ConversionError(f"{path}: file not found")


def read_itk_image(path: Path, expected: str):
    """SimpleITK image of ``path``; ITK's failure becomes one line naming the file and ``expected``.

    SimpleITK raises RuntimeError whose last line is ITK's own reason (e.g. a .mhd's missing data file).
    """
    import SimpleITK as sitk

    _missing(path)
    try:
        return sitk.ReadImage(str(path))
    except Exception as exc:  # SimpleITK raises RuntimeError with ITK's message
        message = str(exc).strip().splitlines()
        raise ConversionError(f"{path}: not readable by SimpleITK ({message[-1] if message else exc}); "
                              f"expected {expected}") from None


def itk_affine(direction: Sequence[float], spacing: Sequence[float], origin: Sequence[float]) -> np.ndarray:
    """RAS+ voxel->world affine (i, j, k order) from ITK's LPS direction cosines, spacing and origin."""
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(direction, dtype=np.float64).reshape(3, 3) * np.asarray(spacing, dtype=np.float64)
    lps[:3, 3] = origin
    return LPS_TO_RAS @ lps


def read_geometry(path: PathLike) -> tuple[tuple[int, ...], np.ndarray | None]:
    """(spatial shape in i, j, k order, RAS affine) from the header only; 2D files give affine None."""
    path = Path(path)
    _missing(path)
    kind = _kind(path)
    try:
        if kind == "nifti":
            import nibabel as nib

            img = nib.load(str(path))
            shape = tuple(int(s) for s in img.shape[:3])
            return shape, (np.asarray(img.affine, dtype=np.float64) if len(img.shape) >= 3 else None)
        if kind == "itk":
            import SimpleITK as sitk

            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            size = tuple(int(s) for s in reader.GetSize())
            if len(size) == 2:
                return (size[1], size[0]), None
            return size[:3], itk_affine(reader.GetDirection(), reader.GetSpacing(), reader.GetOrigin())
    except ConversionError:
        raise
    except Exception as exc:  # readers raise many types for damaged headers
        raise ConversionError(f"{path}: unreadable header ({exc}); expected NIfTI/MHA/MHD/NRRD") from None
    from omnimedseg.converters.formats.image2d import read_image

    return tuple(read_image(path).array.shape[:2]), None


def load_nifti(path: PathLike):
    """nibabel image of a .nii / .nii.gz file; gzip is inflated by ISA-L when available.

    Why not plain ``nib.load``: nibabel inflates .nii.gz with Python's gzip (zlib), which was
    the largest cost of converting TotalSegmentator-like masks (117 files per case);
    python-isal's igzip inflates the same stream ~3x faster. The image is then parsed from
    memory by nibabel itself (NIfTI-1 or NIfTI-2 by the header size), so nothing else changes.
    """
    import nibabel as nib

    path = Path(path)
    if not path.name.lower().endswith(".gz"):
        return nib.load(str(path))
    try:
        from isal import igzip
    except ImportError:  # pragma: no cover - depends on the environment
        return nib.load(str(path))
    with igzip.open(path, "rb") as fh:
        data = fh.read()
    sizeof_hdr = int.from_bytes(data[:4], "little") if len(data) >= 4 else 0
    if sizeof_hdr not in (348, 540):
        sizeof_hdr = int.from_bytes(data[:4], "big")
    return (nib.Nifti2Image if sizeof_hdr == 540 else nib.Nifti1Image).from_bytes(data)


def _read_nifti(path: Path) -> ImageData:
    try:
        img = load_nifti(path)
        array = np.asanyarray(img.dataobj)  # applies scl_slope / scl_inter when set
    except Exception as exc:  # nibabel raises many types for damaged files
        raise ConversionError(f"{path}: not a readable NIfTI ({exc}); expected a .nii/.nii.gz file") from None
    while array.ndim > 3 and array.shape[-1] == 1:  # (x, y, z, 1) as some tools write it
        array = array[..., 0]
    slope, inter = img.header.get_slope_inter()
    meta = {"source": str(path), "format": "nifti", "stored_dtype": str(img.get_data_dtype())}
    if slope is not None:
        meta["scl_slope"], meta["scl_inter"] = float(slope), float(inter or 0.0)
    if array.ndim == 2:
        # 2D NIfTI: array (i, j) is kept as (rows, cols), so the spacing is (zoom_i, zoom_j)
        return ImageData(array, spacing=tuple(float(z) for z in img.header.get_zooms()[:2]), meta=meta)
    return ImageData(array, img.affine, meta=meta)


def _read_itk(path: Path) -> ImageData:
    import SimpleITK as sitk

    img = read_itk_image(path, "MHA/MHD(+RAW)/NRRD; check that a .mhd's data file is beside it")
    array = sitk.GetArrayFromImage(img)  # (k, j, i[, c]) for 3D, (rows, cols[, c]) for 2D
    dim = img.GetDimension()
    meta = {"source": str(path), "format": "itk", "components": img.GetNumberOfComponentsPerPixel()}
    if dim == 2:
        direction = np.asarray(img.GetDirection()).reshape(2, 2)
        if not np.allclose(direction, np.eye(2), atol=1e-6):
            raise ConversionError(f"{path}: 2D image with direction {direction.tolist()}; expected identity "
                                  f"(2D outputs keep no orientation); flip the array in the converter explicitly")
        sx, sy = img.GetSpacing()
        return ImageData(array, spacing=(float(sy), float(sx)), meta=meta)
    if dim != 3:
        raise ConversionError(f"{path}: {dim}D image; expected a 2D or 3D image (split 4D series in the converter)")
    order = (2, 1, 0) + tuple(range(3, array.ndim))
    return ImageData(np.transpose(array, order), itk_affine(img.GetDirection(), img.GetSpacing(), img.GetOrigin()),
                     meta=meta)


def read_volume(path: PathLike) -> ImageData:
    """Read NIfTI (nibabel) or MHA/MHD/NRRD (SimpleITK) as ImageData (i, j, k) with a RAS affine.

    A 2D MHA/NRRD/NIfTI gives a 2D ImageData (rows, cols) with (row, col) spacing. Values
    keep the stored dtype unless the NIfTI header scales them (then float).
    """
    path = Path(path)
    _missing(path)
    kind = _kind(path)
    if kind == "nifti":
        return _read_nifti(path)
    if kind == "itk":
        return _read_itk(path)
    raise ConversionError(f"{path}: unknown volume type; expected one of {', '.join(VOLUME_SUFFIXES)}")


def read_volume_channel(path: PathLike, index: int) -> ImageData:
    """Channel ``index`` (0-based) of a 4D or multi-component volume, as a 3D ImageData.

    Multi-sequence images are often one 4D file (MSD Task01: FLAIR, T1w, T1gd, T2w along
    the 4th NIfTI axis; MHA/NRRD as a 4th dimension or as vector components). A converter
    names each channel ``Source(path, partial(read_volume_channel, index=i))``; the core
    writes one 3D file per channel on the same grid. NIfTI channels are sliced through
    nibabel's array proxy, so the other channels are never held in memory.
    """
    path = Path(path)
    _missing(path)
    kind = _kind(path)
    if kind == "nifti":
        try:
            img = load_nifti(path)
            shape = img.shape
            if len(shape) < 4 or any(s != 1 for s in shape[4:]):
                raise ConversionError(f"{path}: shape {shape}; expected a 4D volume (i, j, k, channel) to take "
                                      f"channel {index} from")
            if not 0 <= index < shape[3]:
                raise ConversionError(f"{path}: no channel {index}; expected index 0..{shape[3] - 1} "
                                      f"(the file has {shape[3]} channels)")
            array = np.asanyarray(img.dataobj[(slice(None),) * 3 + (index,) + (0,) * (len(shape) - 4)])
        except ConversionError:
            raise
        except Exception as exc:  # nibabel raises many types for damaged files
            raise ConversionError(f"{path}: not a readable NIfTI ({exc}); expected a 4D .nii/.nii.gz file") from None
        meta = {"source": str(path), "format": "nifti", "channel": index, "stored_dtype": str(img.get_data_dtype())}
        return ImageData(array, img.affine, meta=meta)
    if kind != "itk":
        raise ConversionError(f"{path}: unknown volume type; expected a 4D NIfTI/MHA/NRRD file")
    import SimpleITK as sitk

    img = read_itk_image(path, "a 4D MHA/MHD/NRRD")
    dim, components = img.GetDimension(), img.GetNumberOfComponentsPerPixel()
    array = sitk.GetArrayFromImage(img)  # 4D: (t, k, j, i); vector 3D: (k, j, i, c)
    if dim == 4 and components == 1:
        count, take = array.shape[0], (lambda a: a[index])
        size = 3
    elif dim == 3 and components > 1:
        count, take = components, (lambda a: a[..., index])
        size = 3
    else:
        raise ConversionError(f"{path}: {dim}D image with {components} component(s); expected a 4D volume or a "
                              f"3D volume of vectors to take channel {index} from")
    if not 0 <= index < count:
        raise ConversionError(f"{path}: no channel {index}; expected index 0..{count - 1} "
                              f"(the file has {count} channels)")
    direction = np.asarray(img.GetDirection()).reshape(dim, dim)[:size, :size]
    affine = itk_affine(direction.ravel(), img.GetSpacing()[:size], img.GetOrigin()[:size])
    channel = np.ascontiguousarray(np.transpose(take(array), (2, 1, 0)))
    return ImageData(channel, affine, meta={"source": str(path), "format": "itk", "channel": index})


def _read_any(path: Path) -> ImageData:
    """Volume formats through :func:`read_volume`, everything else as a 2D image (TIFF, PNG)."""
    if _kind(Path(path)) == "other":
        from omnimedseg.converters.formats.image2d import read_image

        return read_image(Path(path))
    return read_volume(path)


def integral_labels(array: np.ndarray, path: PathLike) -> np.ndarray:
    """Integer label array; float arrays are accepted only when every value is an integer.

    Float labels come from scaled storage (NIfTI scl_slope/scl_inter) or from tools that
    save masks as float. A non-integral value (e.g. a resampled, interpolated label map)
    would be split arbitrarily, so it is refused.
    """
    array = np.asarray(array)
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype.kind in "iu":
        return array
    if array.dtype.kind != "f":
        raise ConversionError(f"{path}: label values of type {array.dtype}; expected integer labels")
    if not np.isfinite(array).all():
        raise ConversionError(f"{path}: label map contains NaN/inf; expected integer labels")
    rounded = np.rint(array)
    off = np.abs(array - rounded)
    if off.max(initial=0) > LABEL_INTEGRAL_TOLERANCE:
        bad = np.unique(array[off > LABEL_INTEGRAL_TOLERANCE])[:5].tolist()
        raise ConversionError(f"{path}: non-integral label values {bad} (e.g. an interpolated label map); "
                              f"expected integer labels; use the original label file, not a resampled one")
    low, high = (int(rounded.min()), int(rounded.max())) if rounded.size else (0, 0)
    for dtype in (np.uint8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return rounded.astype(dtype)
    raise ConversionError(f"{path}: label values {low}..{high} do not fit int32; expected label ids")


def read_label_volume(path: PathLike) -> ImageData:
    """Label map (NIfTI/MHA/MHD/NRRD, or a 2D TIFF/PNG) with integer values; see :func:`integral_labels`."""
    image = _read_any(Path(path))
    if image.array.ndim != (3 if image.is_3d else 2):
        raise ConversionError(f"{path}: label map of shape {image.array.shape} has several components; "
                              f"expected one integer value per voxel")
    return ImageData(integral_labels(image.array, path), image.affine, image.spacing, dict(image.meta))


def read_label_class(path: PathLike, *, values: Sequence[int], known: Sequence[int] | None = None) -> ImageData:
    """Bool mask of the voxels whose label is in ``values`` (several ids may make one class).

    Use through ``functools.partial(read_label_class, values=(2, 3))`` when a dataset's
    label ids do not map one-to-one onto the card's classes. ``known`` lists every id the
    dataset defines (all classes together): a value outside it (and 0) is an error, so an
    undocumented label is never dropped silently.
    """
    label = read_label_volume(path)
    if known is not None:
        unknown = sorted(set(np.unique(label.array).tolist()) - set(known) - {0})
        if unknown:
            raise ConversionError(f"{path}: label values {unknown[:10]} are not among the dataset's documented "
                                  f"label ids; expected only {_ranges(known)} (0 = background)")
    values = list(values)
    # One id (a binary mask file): a comparison keeps the memory layout; np.isin copies the volume first.
    mask = label.array == values[0] if len(values) == 1 else np.isin(label.array, values)
    return ImageData(mask, label.affine, label.spacing, label.meta)


def _ranges(values: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"`` for error messages."""
    out, run = [], []
    for v in sorted(set(int(x) for x in values)):
        if run and v != run[-1] + 1:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(v)
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(out)


def labels_to_masks(labels: np.ndarray, classes: Mapping[int, str] | None, path: PathLike,
                    keep_empty: bool = True) -> dict[str, np.ndarray]:
    """Class name -> bool mask; ``classes`` maps label id -> name (e.g. a card's ``classes``).

    Without ``classes`` every non-zero label present becomes ``label_<id>``. A label id
    present in the volume but not in ``classes`` is an error, never silently dropped.
    """
    present = [int(v) for v in np.unique(labels) if v != 0]
    if classes is None:
        classes = {v: f"label_{v}" for v in present}
    unknown = sorted(set(present) - set(classes))
    if unknown:
        raise ConversionError(f"{path}: label values {unknown} have no class (known: {sorted(classes)}, "
                              f"0 = background); add them to the card's classes")
    return {name: labels == value for value, name in sorted(classes.items())
            if keep_empty or value in present}


def instances_to_semantic(instances: np.ndarray, instance_classes: Mapping[int, int] | None = None,
                          path: PathLike = "<array>") -> np.ndarray:
    """Instance-id map -> semantic label map (uint8 class ids; 0 stays background).

    Without ``instance_classes`` every instance is class 1 (e.g. "nucleus"). With it,
    each non-zero instance id must be mapped; an unmapped instance is an error.
    """
    instances = integral_labels(instances, path)
    if instance_classes is None:
        return (instances != 0).astype(np.uint8)
    ids = [int(v) for v in np.unique(instances) if v != 0]
    unmapped = [i for i in ids if i not in instance_classes]
    if unmapped:
        raise ConversionError(f"{path}: instance ids {unmapped[:10]} have no class; expected every instance "
                              f"in the instance -> class table")
    if not ids:
        return np.zeros(instances.shape, dtype=np.uint8)
    lut_ids = np.array(ids, dtype=np.int64)
    classes = np.array([instance_classes[i] for i in ids], dtype=np.uint8)
    index = np.clip(np.searchsorted(lut_ids, instances), 0, len(ids) - 1)  # every non-zero id is in lut_ids
    return np.where(instances != 0, classes[index], 0).astype(np.uint8)


def read_instance_mask(path: PathLike) -> ImageData:
    """Bool mask of all instances (value != 0) of an instance-label map, 2D or 3D."""
    label = read_label_volume(path)
    return ImageData(instances_to_semantic(label.array, path=path).astype(bool), label.affine, label.spacing,
                     label.meta)


# ---------------------------------------------------------------- containers without geometry

def _reorder(array: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """Put stored axes (named by ``axes``, e.g. "kji") into i, j, k order."""
    if sorted(axes) != ["i", "j", "k"] or array.ndim != 3:
        raise ConversionError(f"{path}: axes {axes!r} for an array of shape {array.shape}; expected a 3D array and "
                              f"a permutation of 'ijk' naming each stored axis")
    return np.transpose(array, [axes.index(c) for c in "ijk"])


def _with_geometry(array: np.ndarray, path: Path, reference: PathLike | None, spacing: Sequence[float] | None,
                   affine: Sequence[Sequence[float]] | None, binary: bool) -> ImageData:
    given = sum(x is not None for x in (reference, spacing, affine))
    if given != 1:
        raise ConversionError(f"{path}: this container has no geometry; expected exactly one of a reference image, "
                              f"spacing or affine (found {given})")
    if reference is not None:
        shape, ref_affine = read_geometry(reference)
        if tuple(array.shape[:3]) != tuple(shape):
            raise ConversionError(f"{path}: array shape {array.shape} differs from reference {Path(reference).name} "
                                  f"{shape} after axis reordering; expected the same grid (check axes=)")
        geometry = ref_affine
    elif spacing is not None:
        geometry = np.diag([*map(float, spacing), 1.0])
    else:
        geometry = np.asarray(affine, dtype=np.float64)
    if geometry is None or geometry.shape != (4, 4):
        raise ConversionError(f"{path}: no usable 3D affine (reference 2D or affine not 4x4)")
    if binary:
        array = check_binary(array, path)
    return ImageData(np.ascontiguousarray(array), geometry, meta={"source": str(path)})


def read_hdf5_volume(path: PathLike, reference: PathLike | None = None, *, dataset: str, axes: str = "ijk",
                     spacing: Sequence[float] | None = None, affine: Sequence[Sequence[float]] | None = None,
                     binary: bool = False) -> ImageData:
    """3D dataset from an HDF5 file; ``axes`` names the stored axes (e.g. "kji" for z, y, x).

    Geometry: a reference image (second positional path), ``spacing`` (diagonal affine,
    origin 0) or a full ``affine``. ``binary=True`` refuses values other than 0/1 and
    returns a bool mask.
    """
    path = Path(path)
    array = read_hdf5_dataset(path, dataset)
    return _with_geometry(_reorder(array, axes, path), path, reference, spacing, affine, binary)


def read_hdf5_dataset(path: PathLike, dataset: str) -> np.ndarray:
    """The array of one HDF5 dataset (``group/name`` paths work); one-line errors naming the file."""
    import h5py

    path = Path(path)
    _missing(path)
    try:
        with h5py.File(path, "r") as f:
            if dataset not in f or not isinstance(f[dataset], h5py.Dataset):
                found = []
                f.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
                raise ConversionError(f"{path}: no dataset {dataset!r}; found datasets {sorted(found)}")
            return np.asarray(f[dataset][()])
    except ConversionError:
        raise
    except OSError as exc:
        raise ConversionError(f"{path}: not a readable HDF5 file ({exc})") from None


def read_hdf5_slice(path: PathLike, *, dataset: str, transpose: bool = False, binary: bool = False,
                    label: bool = False) -> ImageData:
    """One 2D slice stored in an HDF5 file, as a 2D ImageData (rows, cols).

    Many preprocessed releases keep one slice per file with an image and a label dataset
    (e.g. ``image`` float32 and ``label`` uint8 of shape (rows, cols)); ``dataset`` names the one
    to read. A stored (1, rows, cols) or (rows, cols, 1) array is accepted (the unit axis is
    dropped); anything else that is not 2D is refused. ``transpose=True`` for arrays stored
    (cols, rows) (MATLAB/Fortran writers). ``binary=True`` returns a bool mask (0/1 only);
    ``label=True`` an integer label map (integral values only), for ``Case(label=...)``.
    """
    path = Path(path)
    array = read_hdf5_dataset(path, dataset)
    if array.ndim == 3 and 1 in (array.shape[0], array.shape[2]):
        array = array[0] if array.shape[0] == 1 else array[..., 0]
    if array.ndim != 2:
        raise ConversionError(f"{path}: dataset {dataset!r} has shape {array.shape}; expected one 2D slice "
                              f"(rows, cols); for volumes use read_hdf5_volume")
    if transpose:
        array = array.T
    if binary and label:
        raise ConversionError(f"{path}: binary=True and label=True; expected at most one")
    if binary:
        array = check_binary(array, path)
    elif label:
        array = integral_labels(array, path)
    return ImageData(np.ascontiguousarray(array), meta={"source": str(path), "dataset": dataset})


def _is_hdf5_mat(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(128)
    if head.startswith(b"MATLAB 7.3") or head.startswith(b"\x89HDF\r\n\x1a\n"):
        return True
    import h5py

    return bool(h5py.is_hdf5(str(path)))


def _load_mat_variable(path: Path, variable: str) -> np.ndarray:
    """A variable (``a/b`` for struct fields) in MATLAB's own index order."""
    parts = [p for p in variable.split("/") if p]
    if _is_hdf5_mat(path):
        import h5py

        with h5py.File(path, "r") as f:
            if variable not in f:
                raise ConversionError(f"{path}: no variable {variable!r} in this v7.3 MAT file; "
                                      f"found {sorted(f.keys())}")
            array = np.asarray(f[variable][()])
            is_logical = f[variable].attrs.get("MATLAB_class", b"") in (b"logical", "logical")
        # MATLAB writes column-major; h5py shows the axes reversed. Undo it.
        array = array.T
        return array.astype(bool) if is_logical else array
    import scipy.io

    try:
        data = scipy.io.loadmat(str(path), variable_names=[parts[0]], simplify_cells=True)
    except (ValueError, NotImplementedError, OSError) as exc:
        raise ConversionError(f"{path}: not a readable MAT file ({exc})") from None
    value = data
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            raise ConversionError(f"{path}: no variable {variable!r} in this MAT file; found "
                                  f"{sorted(k for k in data if not k.startswith('__'))}")
        value = value[part]
    return np.asarray(value)


def read_mat_volume(path: PathLike, reference: PathLike | None = None, *, variable: str, axes: str = "ijk",
                    spacing: Sequence[float] | None = None, affine: Sequence[Sequence[float]] | None = None,
                    binary: bool = False) -> ImageData:
    """3D variable from a MATLAB file: v5/v7 via scipy.io, v7.3 (HDF5) via h5py.

    Both give the array as MATLAB indexes it (``A(i, j, k)``): scipy does this itself,
    and for v7.3 the reversed (column-major) axes that h5py shows are transposed back.
    ``axes`` and the geometry arguments work as in :func:`read_hdf5_volume`.
    """
    path = Path(path)
    _missing(path)
    array = _load_mat_variable(path, variable)
    return _with_geometry(_reorder(array, axes, path), path, reference, spacing, affine, binary)


def read_mat_array(path: PathLike, variable: str) -> np.ndarray:
    """A MATLAB variable (``a/b`` for struct fields) in MATLAB's index order, v5/v7 or v7.3.

    For small side files (fold indices, tables); images go through :func:`read_mat_image` or
    :func:`read_mat_volume`.
    """
    path = Path(path)
    _missing(path)
    return _load_mat_variable(path, variable)


def _image_dtype(array: np.ndarray, path: Path, variable: str) -> np.ndarray:
    """Integer pixels as uint8/uint16 (what PNG stores); signed MATLAB images must be non-negative."""
    if array.dtype in (np.uint8, np.uint16):
        return array
    if array.dtype.kind in "iu" or (array.dtype.kind == "f" and np.array_equal(array, np.rint(array))):
        low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
        if low >= 0 and high <= 65535:
            return array.astype(np.uint8 if high <= 255 and array.dtype.itemsize == 1 else np.uint16)
        raise ConversionError(f"{path}: {variable} holds values {low:g}..{high:g}; expected 0..65535 grey levels")
    raise ConversionError(f"{path}: {variable} is {array.dtype} with fractional values; expected integer grey levels")


def read_mat_image(path: PathLike, *, variable: str, binary: bool = False,
                   only_if: Mapping[str, float] | None = None) -> ImageData:
    """2D variable from a MATLAB file as (rows, cols) exactly as MATLAB indexes it (``A(row, col)``).

    v7.3 files are HDF5, where h5py shows MATLAB's column-major arrays transposed; they are
    transposed back (see :func:`read_mat_volume`), so the PNG looks like MATLAB's ``imshow(A)``.
    ``binary=True`` returns a bool mask (values must be 0/1). ``only_if`` maps other scalar
    variables to the value they must hold for the mask to be returned; otherwise the mask is
    empty (e.g. a per-type class from one tumour mask plus a type code).
    """
    path = Path(path)
    _missing(path)
    array = np.squeeze(_load_mat_variable(path, variable))
    if array.ndim != 2:
        raise ConversionError(f"{path}: {variable} has shape {array.shape}; expected a 2D image")
    if not binary:
        return ImageData(_image_dtype(array, path, variable))
    mask = check_binary(array, f"{path}:{variable}")
    for other, value in (only_if or {}).items():
        found = np.asarray(_load_mat_variable(path, other)).ravel()
        if found.size != 1:
            raise ConversionError(f"{path}: {other} has {found.size} values; expected one scalar")
        if float(found[0]) != float(value):
            mask = np.zeros_like(mask)
    return ImageData(mask)


def stack_slice_masks(reference: PathLike, *slices: PathLike, axis: int = 2, transpose: bool = False,
                      flip_rows: bool = False, flip_cols: bool = False) -> ImageData:
    """Per-slice 2D masks (PNG/JPEG/TIFF, in slice order) stacked onto ``reference``'s grid.

    Slice n becomes index n along ``axis`` (0, 1, 2 = i, j, k). By default a slice's rows
    are the first remaining axis and its columns the second (as ``volume[:, :, k]`` saved
    directly); ``transpose``/``flip_rows``/``flip_cols`` are applied to each slice first
    for datasets exported in display orientation. Each slice is thresholded by
    :func:`read_binary_mask`'s rule. The slice count must equal the reference's.
    """
    from omnimedseg.converters.formats.image2d import read_binary_mask

    reference = Path(reference)
    shape, affine = read_geometry(reference)
    if affine is None or axis not in (0, 1, 2):
        raise ConversionError(f"{reference}: reference must be a 3D volume and axis 0, 1 or 2 (found {axis})")
    check_slice_count(len(slices), shape[axis], slices[0] if slices else reference)
    plane = tuple(s for a, s in enumerate(shape) if a != axis)
    planes = []
    for path in slices:
        mask = read_binary_mask(Path(path)).array
        if transpose:
            mask = mask.T
        if flip_rows:
            mask = mask[::-1, :]
        if flip_cols:
            mask = mask[:, ::-1]
        if mask.shape != plane:
            raise ConversionError(f"{path}: slice shape {mask.shape} differs from the reference plane {plane} of "
                                  f"{reference.name}; expected the image's grid (check transpose=)")
        planes.append(mask)
    return ImageData(np.stack(planes, axis=axis), affine, meta={"source": str(reference)})


__all__ = ["ITK_SUFFIXES", "LPS_TO_RAS", "NIFTI_SUFFIXES", "VOLUME_SUFFIXES", "instances_to_semantic",
           "integral_labels", "itk_affine", "labels_to_masks", "load_nifti", "read_geometry", "read_hdf5_dataset",
           "read_hdf5_slice", "read_hdf5_volume", "read_instance_mask", "read_itk_image", "read_label_class",
           "read_label_volume", "read_mat_array", "read_mat_image", "read_mat_volume", "read_volume",
           "read_volume_channel", "stack_slice_masks"]
