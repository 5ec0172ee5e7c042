"""4D DICOM series (positions repeated per time point: fMRI, DCE, multi-phase) against dcm2niix
and against first principles (each generated slice's pixels encode its time point and position)."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from omnimedseg.converters.formats.dicom import dicom_to_nifti, read_series, read_series_time_point
from omnimedseg.errors import ConversionError
from tests.formats.test_dicom import AXIAL, dcm2niix, needs_dcm2niix, oblique_iop, stack, write_series
from tests.helpers import run_cli

pytestmark = [pytest.mark.filterwarnings("ignore:'FileDataset.is_:DeprecationWarning")]

N_POS, N_T = 4, 3


def write_4d(folder, *, tags=("TemporalPositionIdentifier", "AcquisitionNumber", "AcquisitionTime", "InstanceNumber"),
             instance="time_major", iop=AXIAL, positions=None, seed=0):
    """N_T time points x N_POS positions, files in a shuffled order with meaningless names.

    Stored value of slice (t, k) = 100 * t + 10 * k + (row + col) % 7: every voxel says where and
    when it was acquired. ``instance``: InstanceNumber counting time-major, slice-major, or
    restarting at 1 for each time point (as many scanners write per acquisition).
    """
    positions = positions if positions is not None else [[-10, -20, 5 + 2 * k] for k in range(N_POS)]
    ramp = np.add.outer(np.arange(40), np.arange(50)) % 7
    pixels = [100 * t + 10 * k + ramp for t in range(N_T) for k in range(N_POS)]
    files = write_series(folder, iop, [p for _ in range(N_T) for p in positions], series_uid=generate_uid(),
                         pixels=pixels, intercept=0)
    order = np.random.default_rng(seed).permutation(len(files))
    for idx, path in enumerate(files):
        t, k = divmod(idx, N_POS)
        ds = pydicom.dcmread(path)
        del ds.InstanceNumber
        if "TemporalPositionIdentifier" in tags:
            ds.TemporalPositionIdentifier, ds.NumberOfTemporalPositions = t + 1, N_T
        if "AcquisitionNumber" in tags:
            ds.AcquisitionNumber = t + 1
        if "AcquisitionTime" in tags:
            ds.AcquisitionTime = f"0959{50 + 5 * t:02d}.250000"  # crosses a minute: 09:59:50, 09:59:55, 10:00:00
        if "InstanceNumber" in tags:
            ds.InstanceNumber = {"time_major": t * N_POS + k, "slice_major": k * N_T + t, "restart": k}[instance] + 1
        ds.save_as(path)
        path.rename(path.with_name(f"f{order[idx]:03d}"))
    return folder


def expected_volume(ramp_shape=(40, 50)) -> np.ndarray:
    """The (i, j, k, t) array the generated series must give (dcm2niix layout: j = rows reversed)."""
    ramp = np.add.outer(np.arange(ramp_shape[0]), np.arange(ramp_shape[1])) % 7
    planes = np.array([[100 * t + 10 * k + ramp for k in range(N_POS)] for t in range(N_T)])  # (t, k, row, col)
    return planes[:, :, ::-1, :].transpose(3, 2, 1, 0)


@needs_dcm2niix
@pytest.mark.parametrize("tags, instance", [
    (("TemporalPositionIdentifier", "AcquisitionNumber", "AcquisitionTime", "InstanceNumber"), "time_major"),
    (("InstanceNumber",), "time_major"),
    (("InstanceNumber",), "slice_major"),
])
def test_4d_series_equals_dcm2niix(tmp_path, tags, instance):
    folder = write_4d(tmp_path / "dicom", tags=tags, instance=instance)
    image = read_series(folder)
    assert image.array.shape == (50, 40, N_POS, N_T)
    assert np.array_equal(image.array, expected_volume())
    assert image.meta["time_points"]["ordered_by"] == tags[0] and image.meta["time_points"]["count"] == N_T
    (reference,) = dcm2niix(folder, tmp_path / "dcm2niix").values()
    assert reference.shape == image.array.shape
    assert np.array_equal(np.asarray(reference.dataobj), image.array)
    assert np.allclose(reference.affine, image.affine, atol=1e-4)


@pytest.mark.parametrize("tags", [("AcquisitionNumber", "InstanceNumber"), ("AcquisitionTime", "InstanceNumber"),
                                  ("TemporalPositionIdentifier", "InstanceNumber"), ("TemporalPositionIdentifier",),
                                  ("AcquisitionTime",)])
def test_4d_order_when_instance_numbers_restart_or_are_absent(tmp_path, tags):
    """InstanceNumber 1..N_POS in every time point (or none) cannot order a position's slices; the
    temporal tag does. (dcm2niix 1.0.20260724 mixes time points up on these series: it orders by
    InstanceNumber and file order, checked by hand; so first principles are the reference here.)"""
    folder = write_4d(tmp_path / "dicom", tags=tags, instance="restart")
    image = read_series(folder)
    assert np.array_equal(image.array, expected_volume()) and image.meta["time_points"]["ordered_by"] == tags[0]


def test_4d_oblique_series_keeps_the_3d_geometry(tmp_path):
    iop = oblique_iop()
    folder = write_4d(tmp_path / "dicom", iop=iop, positions=stack(iop, N_POS, 2.5))
    image = read_series(folder)
    assert np.array_equal(image.array, expected_volume())
    first = read_series(sorted(folder.iterdir(), key=lambda p: pydicom.dcmread(p).InstanceNumber)[:N_POS])
    assert np.allclose(image.affine, first.affine) and np.array_equal(image.array[..., 0], first.array)


@pytest.mark.parametrize("tags", [(), ("AcquisitionNumber",)])
def test_repeated_positions_with_nothing_ordering_them_stay_refused(tmp_path, tags):
    folder = write_4d(tmp_path / "dicom", tags=tags)
    if tags:  # one acquisition number for all: it cannot order the slices of a position
        for path in folder.iterdir():
            ds = pydicom.dcmread(path)
            ds.AcquisitionNumber = 1
            ds.save_as(path)
    with pytest.raises(ConversionError, match=r"3 slices at each position .* nothing orders them; expected one "
                                              r"slice per position, or a 4D series whose slices at one position "
                                              r"differ in TemporalPositionIdentifier"):
        read_series(folder)


def test_one_duplicated_slice_is_refused_as_before(tmp_path):
    files = write_series(tmp_path / "dicom", AXIAL, [[0, 0, 2 * k] for k in range(5)])
    shutil.copy(files[2], tmp_path / "dicom" / "copy_of_slice_3")
    with pytest.raises(ConversionError, match=r"1 slice\(s\) at 0.000 mm but 2 at 4.000 mm .*remove duplicate"):
        read_series(tmp_path / "dicom")


def test_dicom_to_nifti_writes_4d_or_splits_per_time_point(tmp_path):
    folder = write_4d(tmp_path / "dicom")
    (whole,) = dicom_to_nifti(folder, tmp_path / "out" / "dce.nii.gz")
    assert whole["shape"] == [50, 40, N_POS, N_T] and whole["time_points"]["count"] == N_T
    assert np.array_equal(np.asarray(nib.load(whole["file"]).dataobj), expected_volume())
    parts = dicom_to_nifti(folder, tmp_path / "split", split=True)
    assert [p["file"].rsplit("/", 1)[1] for p in parts] == [f"3_gen_t00{t}.nii.gz" for t in (1, 2, 3)]
    for t, part in enumerate(parts):
        written = nib.load(part["file"])
        assert written.shape == (50, 40, N_POS) and np.allclose(written.affine, nib.load(whole["file"]).affine)
        assert np.array_equal(np.asarray(written.dataobj), expected_volume()[..., t])
        assert part["time_points"] == {"index": t + 1, "count": N_T, "ordered_by": "TemporalPositionIdentifier",
                                       "values": [t + 1] * N_POS}


def test_one_time_point_as_a_channel_source(tmp_path):
    import functools
    import pickle

    from omnimedseg.converters._base import Source

    folder = write_4d(tmp_path / "dicom", tags=("AcquisitionTime", "InstanceNumber"), instance="restart")
    for t in range(N_T):
        source = pickle.loads(pickle.dumps(Source(folder, functools.partial(read_series_time_point, index=t))))
        image = source.load()
        assert np.array_equal(image.array, expected_volume()[..., t]) and len(image.meta["files"]) == N_POS
        assert image.meta["time_points"]["index"] == t + 1 and image.meta["time_points"]["ordered_by"] == "AcquisitionTime"
    with pytest.raises(ConversionError, match="time point 3 requested; the series has 3 \\(0..2\\)"):
        read_series_time_point(folder, 3)
    flat = write_series(tmp_path / "flat", AXIAL, [[0, 0, 2 * k] for k in range(3)])
    with pytest.raises(ConversionError, match="a 3D series\\); expected a 4D series"):
        read_series_time_point(flat[0].parent, 0)


def test_cli_split(tmp_path):
    folder = write_4d(tmp_path / "dicom", tags=("InstanceNumber",))
    result = run_cli("formats", "dicom-to-nifti", str(folder), str(tmp_path / "out.nii.gz"), "--split")
    assert result.exit_code == 0, result.output
    assert "time point 2 of 3, ordered by InstanceNumber" in result.output
    assert sorted(p.name for p in tmp_path.glob("out_t*.nii.gz")) == ["out_t001.nii.gz", "out_t002.nii.gz",
                                                                      "out_t003.nii.gz"]


def _copy_as_time_points(source: list, out, n_times: int):
    """A real series copied ``n_times`` as one 4D series: new UIDs, TemporalPositionIdentifier,
    time-major InstanceNumbers, and the stored pixels of time point t rolled by 3 t columns."""
    out.mkdir()
    series_uid = generate_uid()
    for t in range(n_times):
        for k, path in enumerate(source):
            ds = pydicom.dcmread(path)
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.TemporalPositionIdentifier, ds.NumberOfTemporalPositions = t + 1, n_times
            ds.InstanceNumber = t * len(source) + k + 1
            ds.PixelData = np.roll(ds.pixel_array, 3 * t, axis=1).tobytes()
            ds.save_as(out / f"t{t}_{path.name}")


@needs_dcm2niix
def test_real_series_copied_as_time_points(realdata, tmp_path):
    source = sorted(p for p in (realdata("rtutils_phantom_rtstruct") / "sample").iterdir()
                    if p.name != "rt.dcm" and pydicom.dcmread(p, stop_before_pixels=True).Modality == "CT")
    assert len(source) == 5
    _copy_as_time_points(source, tmp_path / "dicom", 3)
    image = read_series(tmp_path / "dicom")
    original = read_series(source)
    assert image.array.shape == original.array.shape + (3,) and np.allclose(image.affine, original.affine)
    for t in range(3):  # the column roll of time point t is an i roll in the (i, j, k) layout
        assert np.array_equal(image.array[..., t], np.roll(original.array, 3 * t, axis=0))
    (reference,) = dcm2niix(tmp_path / "dicom", tmp_path / "dcm2niix").values()
    scale = reference.dataobj.slope, reference.dataobj.inter
    assert np.array_equal(np.asarray(reference.dataobj) if scale == (1.0, 0.0) else reference.get_fdata(), image.array)
    assert np.allclose(reference.affine, image.affine, atol=1e-4)
