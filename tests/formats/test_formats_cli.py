"""``omnimedseg formats ...`` commands, run through click's CliRunner on the group itself."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from omnimedseg.cli.formats import formats
from omnimedseg.converters.formats.dicom import read_series
from omnimedseg.converters.formats.rtstruct import read_rtstruct
from omnimedseg.errors import ConversionError, UsageError
from tests.formats.test_dicom import AXIAL, write_series

# rt-utils uses pydicom attributes pydicom 3 deprecates; highdicom warns about the phantom's one-part name.
pytestmark = [pytest.mark.filterwarnings("ignore:'FileDataset.is_:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:The string .* is unlikely to represent:UserWarning")]


def run(*args):
    return CliRunner().invoke(formats, [str(a) for a in args])


def test_dicom_to_nifti_real_series_json(realdata, tmp_path):
    src = realdata("totalseg_ct_dicom")
    result = run("dicom-to-nifti", src, tmp_path / "ct.nii.gz", "--json", "--compression-level", "3")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    (item,) = summary["outputs"]
    assert item["file"] == str(tmp_path / "ct.nii.gz") and item["shape"] == [512, 512, 20]
    assert item["transfer_syntax"] == "1.2.840.10008.1.2.4.90" and item["skipped_files"] == 2  # SOURCE.md, label
    img = nib.load(tmp_path / "ct.nii.gz")
    assert np.array_equal(np.asanyarray(img.dataobj), read_series(src).array)
    # -j 2: the JPEG-2000 slices decoded in 2 processes, same bytes
    result = run("dicom-to-nifti", src, tmp_path / "ct2.nii.gz", "-j", "2", "--compression-level", "3")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ct2.nii.gz").read_bytes() == (tmp_path / "ct.nii.gz").read_bytes()


def test_dicom_to_nifti_folder_of_series_and_series_option(tmp_path):
    a = write_series(tmp_path / "in" / "a", AXIAL, [[0, 0, 2 * k] for k in range(3)], number=2, description="T1")
    write_series(tmp_path / "in" / "b", AXIAL, [[0, 0, 3 * k] for k in range(4)], number=5, description="T2")
    result = run("dicom-to-nifti", tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["2_T1.nii.gz", "5_T2.nii.gz"]
    assert result.output.count("wrote ") == 2
    result = run("dicom-to-nifti", tmp_path / "in", tmp_path / "one.nii.gz")
    assert isinstance(result.exception, UsageError) and "--series" in str(result.exception)
    uid = pydicom.dcmread(a[0]).SeriesInstanceUID
    result = run("dicom-to-nifti", tmp_path / "in", tmp_path / "one.nii.gz", "--series", uid)
    assert result.exit_code == 0 and nib.load(tmp_path / "one.nii.gz").shape == (50, 40, 3)


def test_dicom_to_nifti_missing_slice_error_then_resample(tmp_path):
    write_series(tmp_path / "s", AXIAL, [[0, 0, z] for z in (0, 2, 4, 8, 10)])
    result = run("dicom-to-nifti", tmp_path / "s", tmp_path / "s.nii.gz")
    assert isinstance(result.exception, ConversionError) and result.exit_code != 0
    message = str(result.exception)
    assert "missing slice" in message and "IM0002 and IM0003" in message and "\n" not in message
    assert not (tmp_path / "s.nii.gz").exists()
    result = run("dicom-to-nifti", tmp_path / "s", tmp_path / "s.nii.gz", "--resample")
    assert result.exit_code == 0 and "(resampled)" in result.output
    assert nib.load(tmp_path / "s.nii.gz").shape == (50, 40, 6)


def test_rtstruct_to_masks_real_phantom(realdata, tmp_path):
    src = realdata("rtutils_phantom_rtstruct") / "sample"
    result = run("rtstruct-to-masks", src / "rt.dcm", src, tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary == json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [m["name"] for m in summary["masks"]] == ["ROI-1", "ROI-2", "ROI-3", "ROI-4"]
    masks = read_rtstruct(src / "rt.dcm", src)
    for m in summary["masks"]:
        got = np.asanyarray(nib.load(tmp_path / "out" / m["file"]).dataobj)
        assert np.array_equal(got.astype(bool), masks[m["name"]].array) and m["contour_slices"] == [0, 1, 2]
    human = run("rtstruct-to-masks", src / "rt.dcm", src, tmp_path / "out2")
    assert "wrote 4 masks" in human.output and "ROI-1.nii.gz: 5460 voxels, slices [0, 1, 2]" in human.output


def test_seg_to_masks_highdicom_seg(realdata, tmp_path):
    pytest.importorskip("highdicom")
    from tests.formats.test_dicom_seg import make_seg, sources_in_order

    src = realdata("rtutils_phantom_rtstruct") / "sample"
    prob = np.zeros((5, 512, 512, 1), np.float32)
    prob[2, 10:20, 30:50, 0] = 0.75
    seg = make_seg(tmp_path / "seg.dcm", sources_in_order(src), prob, "FRACTIONAL", labels=["Liver/tumour"])
    result = run("seg-to-masks", seg, src, tmp_path / "bin")
    assert result.exit_code == 0, result.output
    binary = nib.load(tmp_path / "bin" / "Liver_tumour.nii.gz")
    assert binary.get_data_dtype() == np.uint8 and np.asanyarray(binary.dataobj).sum() == 200
    result = run("seg-to-masks", seg, src, tmp_path / "prob", "--fractional", "probability", "--json")
    summary = json.loads(result.output)
    assert summary["segmentation_type"] == "FRACTIONAL" and summary["masks"][0]["file"] == "Liver_tumour.nii.gz"
    prob_img = nib.load(tmp_path / "prob" / "Liver_tumour.nii.gz")
    assert prob_img.get_data_dtype() == np.float32
    assert np.asanyarray(prob_img.dataobj).max() == pytest.approx(0.75, abs=1 / 255)


def test_errors_are_one_line_and_name_the_file(realdata, tmp_path):
    phantom = realdata("rtutils_phantom_rtstruct") / "sample"
    ct = realdata("totalseg_ct_dicom")
    result = run("rtstruct-to-masks", phantom / "rt.dcm", ct, tmp_path / "o")
    assert isinstance(result.exception, ConversionError)
    assert str(phantom / "rt.dcm") in str(result.exception) and "\n" not in str(result.exception)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    result = run("dicom-to-nifti", bad, tmp_path / "x.nii.gz")
    assert isinstance(result.exception, ConversionError) and str(bad / "x.dcm") in str(result.exception)


def test_main_cli_prints_one_line(realdata, tmp_path, capsys):
    """Through the real entry point: exit code 1 and a single 'Error: ...' line on stderr."""
    from omnimedseg.cli import main

    phantom = realdata("rtutils_phantom_rtstruct") / "sample"
    with pytest.raises(SystemExit) as exit_info:
        main(["formats", "seg-to-masks", str(phantom / "rt.dcm"), str(phantom), str(tmp_path / "o")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: ") and "expected a DICOM Segmentation" in err[0]
