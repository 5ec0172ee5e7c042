"""Matching a SEG/RTSTRUCT to the image (acquisition) it references, on the real rt-utils phantom,
the real JPEG-2000 TotalSegmentator CT and generated multi-phase series."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from omnimedseg.converters.formats.dicom import find_series, read_series
from omnimedseg.converters.formats.dicom_refs import (
    match_referenced_series,
    read_referenced_image,
    read_rtstruct_mask,
    split_acquisitions,
)
from omnimedseg.converters.formats.rtstruct import read_rtstruct
from omnimedseg.errors import ConversionError
from tests.converters.fake._idc import write_ct

pytestmark = [pytest.mark.filterwarnings("ignore:The string .* is unlikely to represent:UserWarning")]


def _copy_as_new_series(src: list[Path], dst: Path, frame_uid: str | None = None, offset: int = 0) -> list[Path]:
    """The same slices as another series (new Series/SOP UIDs), optionally in another frame of reference."""
    dst.mkdir(parents=True)
    series_uid, out = generate_uid(), []
    for path in src:
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series_uid, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if frame_uid:
            ds.FrameOfReferenceUID = frame_uid
        ds.PixelData = (ds.pixel_array + offset).astype(ds.pixel_array.dtype).tobytes()
        ds.save_as(dst / path.name)
        out.append(dst / path.name)
    return out


@pytest.fixture
def phantom(realdata, tmp_path):
    src = realdata("rtutils_phantom_rtstruct") / "sample"
    folder = tmp_path / "phantom"
    shutil.copytree(src, folder)
    return folder


def test_real_rtstruct_picks_its_ct_among_decoys_in_the_same_frame(phantom, tmp_path):
    ct = sorted(p for p in phantom.glob("*.dcm") if p.name != "rt.dcm")
    decoy = _copy_as_new_series(ct, tmp_path / "decoy", offset=7)  # same geometry and frame, other SOPs
    rt = phantom / "rt.dcm"
    image = read_referenced_image(rt, *decoy, *ct)
    assert np.array_equal(image.array, read_series(find_series(ct)[0]).array)
    reference = read_rtstruct(rt, phantom)
    name = next(iter(reference))
    mask = read_rtstruct_mask(rt, *decoy, *ct, rois=(name.upper(),))  # names compared case-insensitively
    assert np.array_equal(mask.array, reference[name].array) and mask.array.any()
    with pytest.raises(ConversionError, match="no ROI named Nothing; found"):
        read_rtstruct_mask(rt, *ct, rois=("Nothing",))


def test_real_rtstruct_refuses_a_ct_in_another_frame_of_reference(phantom, tmp_path):
    ct = sorted(p for p in phantom.glob("*.dcm") if p.name != "rt.dcm")
    other = _copy_as_new_series(ct, tmp_path / "other", frame_uid=generate_uid())
    ds = pydicom.dcmread(phantom / "rt.dcm")
    with pytest.raises(ConversionError, match="in none of"):
        match_referenced_series(phantom / "rt.dcm", ds, find_series(other))


def test_real_jpeg2000_ct_is_one_acquisition(realdata):
    series = find_series(realdata("totalseg_ct_dicom"))[0]
    assert split_acquisitions(series) == [series]


def test_phases_split_by_acquisition_number_and_matched_by_sop(tmp_path):
    study, frame = generate_uid(), generate_uid()
    uid, acqs = write_ct(tmp_path, "P", study, frame, [0.0, 2.0, 4.0], [1, 2, 3], "LIVER 3 PHASE", 4)
    series = find_series(tmp_path)[0]
    parts = split_acquisitions(series)
    assert [len(p.slices) for p in parts] == [3, 3, 3]
    assert [int(read_series(p).array[0, 0, 0]) for p in parts] == [100 * a - 1024 for a in (1, 2, 3)]
    ref = pydicom.Dataset()
    ref.Modality, ref.FrameOfReferenceUID = "SEG", frame
    src = []
    for path in acqs[2][:2] + acqs[0][2:]:  # two frames on acquisition 3, one on acquisition 1
        item = pydicom.Dataset()
        item.ReferencedSOPInstanceUID = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
        deriv = pydicom.Dataset()
        deriv.SourceImageSequence = [item]
        per = pydicom.Dataset()
        per.DerivationImageSequence = [deriv]
        src.append(per)
    ref.PerFrameFunctionalGroupsSequence = src
    assert match_referenced_series(Path("seg.dcm"), ref, [series]).slices == parts[2].slices
    ref.PerFrameFunctionalGroupsSequence = src[1:]  # one reference each to acquisitions 3 and 1: a tie
    with pytest.raises(ConversionError, match="expected one image series"):
        match_referenced_series(Path("seg.dcm"), ref, [series])


def test_slices_without_acquisition_number_in_a_multi_phase_series(tmp_path):
    _, acqs = write_ct(tmp_path, "P", generate_uid(), generate_uid(), [0.0, 2.0], [1, 2], "PHASES", 4)
    ds = pydicom.dcmread(acqs[1][0])
    del ds.AcquisitionNumber
    ds.save_as(acqs[1][0])
    with pytest.raises(ConversionError, match="no AcquisitionNumber"):
        split_acquisitions(find_series(tmp_path)[0])


def test_seg_segment_found_by_label_else_by_coded_type(realdata, tmp_path):
    hd = pytest.importorskip("highdicom", reason="SEG fixtures are written with highdicom (test extra)")
    from pydicom.sr.codedict import codes

    from omnimedseg.converters.formats.dicom_refs import read_seg_mask
    from omnimedseg.converters.formats.dicom_seg import read_seg

    src = realdata("rtutils_phantom_rtstruct") / "sample"
    ct = sorted(p for p in src.glob("*.dcm") if p.name != "rt.dcm")
    decoy = _copy_as_new_series(ct, tmp_path / "decoy")
    sources = [pydicom.dcmread(p) for p in ct]
    mask = np.zeros((len(ct), sources[0].Rows, sources[0].Columns, 2), bool)
    mask[1:3, 100:150, 200:260, 0] = True
    mask[2, 120:130, 210:220, 1] = True
    descriptions = [hd.seg.SegmentDescription(
        segment_number=i + 1, segment_label=label, segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=code, algorithm_type="MANUAL")
        for i, (label, code) in enumerate((("ROI one", codes.SCT.Liver), ("Mass", codes.SCT.Mass)))]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=mask, segmentation_type="BINARY", segment_descriptions=descriptions,
        series_instance_uid=generate_uid(), series_number=300, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="t", manufacturer_model_name="t", software_versions="1", device_serial_number="1")
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    reference = read_seg(path, src)
    by_type = read_seg_mask(path, *decoy, *ct, segments=("Liver",))  # no label "Liver": its coded type
    assert np.array_equal(by_type.array, reference["ROI one"].array) and by_type.array.any()
    by_label = read_seg_mask(path, *decoy, *ct, segments=("mass",))
    assert np.array_equal(by_label.array, reference["Mass"].array)
    with pytest.raises(ConversionError, match=r"no segment named Aorta; found \['Mass', 'ROI one'\] \(coded types"):
        read_seg_mask(path, *ct, segments=("Aorta",))
    # a class that is a union matches each part by label or by coded type: "ROI one" (type Liver) is not lost
    union = read_seg_mask(path, *decoy, *ct, segments=("Liver", "Mass"), known=("Liver", "Mass"))
    assert np.array_equal(union.array, reference["ROI one"].array | reference["Mass"].array)
    # a segment no class names is an error, never dropped
    with pytest.raises(ConversionError, match=r"segments \['ROI one'\] are not in the card's name table \(Mass\)"):
        read_seg_mask(path, *ct, segments=("Mass",), known=("Mass",))
