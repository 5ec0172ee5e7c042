"""DICOM-SEG -> masks, compared with highdicom on real and on highdicom-generated objects."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from omnimedseg.converters.formats.dicom import find_series, series_geometry
from omnimedseg.converters.formats.dicom_seg import read_seg, seg_to_masks
from omnimedseg.errors import ConversionError

try:
    import highdicom as hd
except ImportError:  # the reference tool: tests that need it are skipped, the others still run
    hd = None
needs_highdicom = pytest.mark.skipif(hd is None, reason="highdicom not installed (pip install highdicom)")

# rt-utils uses pydicom attributes pydicom 3 deprecates; highdicom warns about the phantom's one-part name.
pytestmark = [pytest.mark.filterwarnings("ignore:'FileDataset.is_:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:The string .* is unlikely to represent:UserWarning")]


def sources_in_order(folder: Path) -> list[pydicom.Dataset]:
    """Source datasets in our slice order (k), so highdicom frame stacks line up with our k."""
    geom = series_geometry(find_series(folder)[0])
    by_sop = {}
    for path in dict.fromkeys(s.path for s in geom.slices):
        ds = pydicom.dcmread(path)
        by_sop[ds.SOPInstanceUID] = ds
    return [by_sop[s.sop_uid] for s in geom.slices]


def make_seg(path: Path, sources, mask, seg_type="BINARY", labels=None, **kw) -> Path:
    """highdicom SEG; ``mask`` is (k, rows, cols, segments) or (k, rows, cols) labels for LABELMAP."""
    n_seg = int(mask.max()) if seg_type == "LABELMAP" else mask.shape[-1]
    labels = labels or [f"segment {i + 1}" for i in range(n_seg)]
    descriptions = [hd.seg.SegmentDescription(
        segment_number=i + 1, segment_label=labels[i], segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Organ, algorithm_type="AUTOMATIC",
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="test", version="1", family=codes.cid7162.ArtificialIntelligence)) for i in range(n_seg)]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=mask, segmentation_type=seg_type, segment_descriptions=descriptions,
        series_instance_uid=generate_uid(), series_number=99, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="omnimedseg tests", manufacturer_model_name="tests", software_versions="1",
        device_serial_number="1", **kw)
    seg.save_as(path)
    return path


def rowcol(mask):
    return mask[:, ::-1, :].transpose(2, 1, 0)  # our (i, j, k) -> (k, row, col)


def highdicom_stack(seg_path: Path, folder: Path, fractional=True) -> np.ndarray:
    geom = series_geometry(find_series(folder)[0])
    seg = hd.seg.segread(seg_path)
    return seg.get_pixels_by_source_instance([s.sop_uid for s in geom.slices], rescale_fractional=fractional)


def shuffle_frames(src: Path, dst: Path, seed=0) -> Path:
    """Same SEG with frames (pixels + per-frame groups) in a random order."""
    ds = pydicom.dcmread(src)
    frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    order = np.random.default_rng(seed).permutation(len(frames))
    ds.PerFrameFunctionalGroupsSequence = pydicom.Sequence([ds.PerFrameFunctionalGroupsSequence[i] for i in order])
    reordered = frames[order]
    if ds.BitsAllocated == 1:
        from pydicom.pixels import pack_bits

        ds.PixelData = pack_bits(reordered.ravel())
    else:
        ds.PixelData = reordered.tobytes()
    ds.save_as(dst)
    return dst


@pytest.fixture
def phantom(realdata):
    return realdata("rtutils_phantom_rtstruct") / "sample"


def overlapping_mask():
    mask = np.zeros((5, 512, 512, 3), bool)
    mask[1, 100:200, 150:300, 0] = True  # segment 1 on slice 1 only
    mask[1:3, 150:250, 200:260, 1] = True  # overlaps segment 1 on slice 1
    mask[4, 0:10, 500:512, 2] = True  # corner of the last slice
    return mask


@needs_highdicom
def test_binary_overlapping_sparse_segments_match_highdicom(phantom, tmp_path):
    mask = overlapping_mask()
    seg = make_seg(tmp_path / "seg.dcm", sources_in_order(phantom), mask)
    assert pydicom.dcmread(seg).NumberOfFrames == 4  # empty frames omitted: segments absent from slices
    masks = read_seg(seg, phantom)
    assert list(masks) == ["segment 1", "segment 2", "segment 3"]
    ref = highdicom_stack(seg, phantom)
    for s, image in enumerate(masks.values()):
        assert image.array.dtype == bool
        assert np.array_equal(rowcol(image.array), mask[..., s])
        assert np.array_equal(rowcol(image.array), ref[..., s].astype(bool))
    assert masks["segment 2"].meta["slices"] == [1, 2] and masks["segment 2"].meta["frames"] == 2
    assert (masks["segment 1"].array & masks["segment 2"].array).sum() == 50 * 60


@needs_highdicom
def test_frames_in_any_order(phantom, tmp_path):
    mask = overlapping_mask()
    seg = make_seg(tmp_path / "seg.dcm", sources_in_order(phantom), mask)
    expected = read_seg(seg, phantom)
    for seed in (1, 2):
        shuffled = shuffle_frames(seg, tmp_path / f"shuffled{seed}.dcm", seed)
        got = read_seg(shuffled, phantom)
        for key in expected:
            assert np.array_equal(got[key].array, expected[key].array)
        ref = highdicom_stack(shuffled, phantom)
        assert np.array_equal(rowcol(got["segment 2"].array), ref[..., 1].astype(bool))


@needs_highdicom
def test_fractional_probability_and_threshold(phantom, tmp_path):
    rng = np.random.default_rng(0)
    prob = np.zeros((5, 512, 512, 2), np.float32)
    prob[2, 200:260, 100:180, 0] = rng.uniform(0, 1, (60, 80))
    prob[0:2, 10:40, 10:40, 1] = 0.5
    seg = make_seg(tmp_path / "frac.dcm", sources_in_order(phantom), prob, "FRACTIONAL", max_fractional_value=200)
    ref = highdicom_stack(seg, phantom)
    probs = read_seg(seg, phantom, fractional="probability")
    binary = read_seg(seg, phantom)
    for s, key in enumerate(probs):
        assert probs[key].array.dtype == np.float32
        assert np.allclose(rowcol(probs[key].array), ref[..., s], atol=1e-6)
        assert np.abs(rowcol(probs[key].array) - prob[..., s]).max() <= 0.5 / 200 + 1e-6
        assert np.array_equal(rowcol(binary[key].array), ref[..., s] >= 0.5)
    assert binary["segment 2"].array.sum() == 2 * 30 * 30  # exactly 0.5 is in
    assert binary["segment 1"].meta["fractional_output"] == "fraction >= 0.5"


@needs_highdicom
def test_labelmap_segmentation(phantom, tmp_path):
    labels = np.zeros((5, 512, 512), np.uint8)
    labels[1, 10:60, 10:60] = 1
    labels[1, 30:90, 30:90] = 2
    labels[3, 300:310, 300:400] = 3
    seg = make_seg(tmp_path / "lab.dcm", sources_in_order(phantom), labels, "LABELMAP")
    masks = read_seg(seg, phantom)
    for n, image in enumerate(masks.values(), start=1):
        assert np.array_equal(rowcol(image.array), labels == n)


@needs_highdicom
def test_seg_on_enhanced_multiframe_source(phantom, tmp_path):
    """A SEG whose frames reference frames of a multi-frame source (ReferencedFrameNumber)."""
    from highdicom.legacy import LegacyConvertedEnhancedCTImage

    legacy = [pydicom.dcmread(p) for p in sorted(phantom.glob("2.*.dcm"))]
    mf = LegacyConvertedEnhancedCTImage(legacy_datasets=legacy, series_instance_uid=hd.UID(), series_number=9,
                                        sop_instance_uid=hd.UID(), instance_number=1)
    (tmp_path / "mf").mkdir()
    mf.save_as(tmp_path / "mf" / "mf.dcm")
    source = pydicom.dcmread(tmp_path / "mf" / "mf.dcm")
    geom = series_geometry(find_series(tmp_path / "mf")[0])
    frame_of_k = [s.frame for s in geom.slices]
    mask = np.zeros((5, 512, 512, 1), bool)
    mask[3, 50:70, 60:90, 0] = True  # our slice k = 3 (z = 75 mm)
    mask_by_frame = np.zeros_like(mask)
    for k, f in enumerate(frame_of_k):
        mask_by_frame[f] = mask[k]
    seg = make_seg(tmp_path / "seg.dcm", [source], mask_by_frame)
    got = read_seg(seg, tmp_path / "mf")["segment 1"]
    assert np.array_equal(rowcol(got.array), mask[..., 0])
    assert got.meta["slices"] == [3]


@pytest.fixture
def totalseg_with_uids(realdata, tmp_path):
    """The real TotalSegmentator CT with the UIDs its anonymisation blanked filled in (highdicom
    needs them); pixel data (JPEG-2000) and geometry untouched."""
    src = realdata("totalseg_ct_dicom")
    dst = tmp_path / "ct"
    dst.mkdir()
    study, series = generate_uid(), generate_uid()
    for path in sorted((src / "example_ct_dicom").iterdir()):
        ds = pydicom.dcmread(path)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.CTImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID, ds.PatientName = study, series, "ts", "ts^"
        ds.save_as(dst / path.name)
    return dst, src / "example_seg_dicom.nii.gz"


@needs_highdicom
def test_real_totalsegmentator_label_as_seg(totalseg_with_uids, tmp_path):
    """Real CT + real 31-class TotalSegmentator label -> SEG (highdicom) -> our masks equal the
    label voxel for voxel, and equal highdicom's reading; NIfTI files on the CT's grid."""
    ct, label_path = totalseg_with_uids
    label = np.asanyarray(nib.load(label_path).dataobj)
    classes = [int(v) for v in np.unique(label) if v]
    stack = label[:, ::-1, :].transpose(2, 1, 0)
    mask = np.stack([stack == v for v in classes], axis=-1)
    seg = make_seg(tmp_path / "ts_seg.dcm", sources_in_order(ct), mask, labels=[f"class {v}" for v in classes])
    shuffled = shuffle_frames(seg, tmp_path / "ts_shuffled.dcm")
    ref = highdicom_stack(shuffled, ct)
    summary = seg_to_masks(shuffled, ct, tmp_path / "out")
    assert len(summary["masks"]) == len(classes) == 31
    label_affine = nib.load(label_path).affine
    for s, (v, entry) in enumerate(zip(classes, summary["masks"])):
        img = nib.load(tmp_path / "out" / entry["file"])
        got = np.asanyarray(img.dataobj).astype(bool)
        assert np.array_equal(got, label == v), v
        assert np.array_equal(rowcol(got), ref[..., s].astype(bool))
        assert np.abs(img.affine - label_affine).max() < 1e-4
        assert entry["file"] == f"class_{v}.nii.gz" and entry["voxels"] == int((label == v).sum())


# --------------------------------------------------------------------------- bad input

def test_real_seg_referencing_a_series_we_do_not_have(phantom):
    """pydicom's liver_1frame.dcm is a real dcmqi SEG (trimmed); its CT is not here."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("liver_1frame.dcm")
    if path is None:
        pytest.skip("pydicom test file liver_1frame.dcm not available")
    with pytest.raises(ConversionError) as err:
        read_seg(path, phantom)
    message = str(err.value)
    assert "references series 1.2.392.200103.20080913.113635.1.2009.6.22.21.43.10.23430.1" in message
    assert str(path) in message and "PHANTOM_EXAMPLE" in message  # names what the folder does hold
    assert "\n" not in message


@needs_highdicom
def test_frame_off_the_series_and_disagreeing_reference(phantom, tmp_path):
    mask = overlapping_mask()
    seg = make_seg(tmp_path / "seg.dcm", sources_in_order(phantom), mask)
    ds = pydicom.dcmread(seg)
    moved = ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0]
    moved.ImagePositionPatient = [moved.ImagePositionPatient[0], moved.ImagePositionPatient[1], 62.5]
    ds.save_as(tmp_path / "off.dcm")
    with pytest.raises(ConversionError, match=r"frame 1 at .* is on no slice of series"):
        read_seg(tmp_path / "off.dcm", phantom)
    ds = pydicom.dcmread(seg)
    moved = ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0]
    moved.ImagePositionPatient = [moved.ImagePositionPatient[0], moved.ImagePositionPatient[1], 80.0]
    ds.save_as(tmp_path / "disagree.dcm")
    with pytest.raises(ConversionError, match="frame 1 references slice 1 but its position is slice 4"):
        read_seg(tmp_path / "disagree.dcm", phantom)
    for item in ds.PerFrameFunctionalGroupsSequence:
        del item.DerivationImageSequence  # position only: a frame at slice 4 is simply put there
    ds.save_as(tmp_path / "position_only.dcm")
    got = read_seg(tmp_path / "position_only.dcm", phantom)["segment 1"]
    assert got.meta["slices"] == [4]


@needs_highdicom
def test_truncated_and_wrong_kind(phantom, tmp_path):
    seg = make_seg(tmp_path / "seg.dcm", sources_in_order(phantom), overlapping_mask())
    data = seg.read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[:-5000])
    with pytest.raises(ConversionError) as err:
        read_seg(tmp_path / "cut.dcm", phantom)
    assert str(tmp_path / "cut.dcm") in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConversionError, match="expected a DICOM Segmentation"):
        read_seg(phantom / "rt.dcm", phantom)
    (tmp_path / "empty").mkdir()
    shutil.copy(seg, tmp_path / "empty" / "seg.dcm")  # the SEG alone: its series is missing
    with pytest.raises(ConversionError, match="SEG references series .* holds no image series"):
        read_seg(tmp_path / "empty" / "seg.dcm", tmp_path / "empty")
