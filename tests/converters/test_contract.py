"""The converter contract on generated datasets: channels, raters, instances, ignore, absent cases."""

from __future__ import annotations

import json
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from omnimedseg.converters._run import convert_dataset
from omnimedseg.converters._validate import validate_converted
from omnimedseg.converters.formats.outputs import read_output
from omnimedseg.errors import ConversionError
from tests.converters import contract_data as data


@pytest.fixture(autouse=True)
def _converters(monkeypatch):
    data.use_test_converters(monkeypatch)


def _dataset(out):
    return json.loads((out / "dataset.json").read_text())


def test_4d_nifti_becomes_named_channels_on_one_grid(tmp_path):
    card = data.brain_card(tmp_path / "cards")
    raw = tmp_path / "raw"
    ids = data.make_brain(raw)
    out = convert_dataset(card, tmp_path / "root", raw=raw)
    dataset = _dataset(out)
    assert dataset["channel_names"] == {"0": "FLAIR", "1": "T1w"} == dataset["modality"]
    assert [c["case_id"] for c in dataset["cases"]] == ids
    for case in dataset["cases"]:
        source = nib.load(raw / "imagesTr" / f"{case['case_id']}.nii.gz")
        four_d = np.asanyarray(source.dataobj)
        assert case["channels"] == {c: f"images/{case['case_id']}/{c}.nii.gz" for c in data.BRAIN_CHANNELS}
        assert case["image"] == case["channels"]["FLAIR"]
        for i, channel in enumerate(data.BRAIN_CHANNELS):
            array, affine = read_output(out / case["channels"][channel])
            assert array.dtype == np.int16 and np.array_equal(array, four_d[..., i])
            assert np.allclose(affine, source.affine)
        label = np.asanyarray(nib.load(raw / "labelsTr" / f"{case['case_id']}.nii.gz").dataobj)
        assert np.array_equal(read_output(out / case["masks"]["tumour"])[0], label == 2)
        assert np.array_equal(read_output(out / case["masks"]["edema"])[0], label == 1)
        ignore = read_output(out / case["ignore"])[0]
        assert ignore[:, :, 0].all() and not ignore[:, :, 1:].any()
        assert case["shape"] == list(four_d.shape[:3])
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["raw_verified"] is False
    flair = provenance["files"][f"images/{ids[0]}/FLAIR.nii.gz"]
    assert "read_volume_channel(index=0)" in flair["operation"]
    assert flair["sources"][0]["path"] == f"imagesTr/{ids[0]}.nii.gz"
    report = validate_converted(out, raw)
    assert report.ok, report.problems


def test_channels_with_different_geometry_are_refused(tmp_path):
    card = replace(data.brain_card(tmp_path / "cards", "brain_files"))
    raw = tmp_path / "raw"
    ids = data.make_brain(raw, n=2)
    data.split_brain_channels(raw)
    moved = raw / "images" / f"{ids[1]}_T1w.nii.gz"
    img = nib.load(moved)
    affine = img.affine.copy()
    affine[0, 3] += 5
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), affine), moved)
    with pytest.raises(ConversionError) as info:
        convert_dataset(card, tmp_path / "root", raw=raw)
    message = str(info.value)
    assert f"case {ids[1]}" in message and moved.name in message and "geometry differs" in message
    assert "\n" not in message
    assert not (tmp_path / "root" / "converted" / "brain_files" / "1.0.0").exists()


def test_empty_channel_is_refused(tmp_path):
    card = data.brain_card(tmp_path / "cards")
    raw = tmp_path / "raw"
    ids = data.make_brain(raw, n=2)
    path = raw / "imagesTr" / f"{ids[0]}.nii.gz"
    img = nib.load(path)
    array = np.asanyarray(img.dataobj).copy()
    array[..., 1] = 0
    nib.save(nib.Nifti1Image(array, img.affine), path)
    with pytest.raises(ConversionError, match=rf"case {ids[0]}: .*{path.name}: channel 'T1w' is empty"):
        convert_dataset(card, tmp_path / "root", raw=raw)


def test_channel_index_beyond_the_file(tmp_path):
    from omnimedseg.converters.formats.volumes import read_volume_channel

    nib.save(nib.Nifti1Image(np.ones((3, 3, 2, 2), np.int16), np.eye(4)), tmp_path / "x.nii.gz")
    assert read_volume_channel(tmp_path / "x.nii.gz", 1).array.shape == (3, 3, 2)
    with pytest.raises(ConversionError, match=r"x\.nii\.gz: no channel 2; expected index 0\.\.1"):
        read_volume_channel(tmp_path / "x.nii.gz", 2)
    nib.save(nib.Nifti1Image(np.ones((3, 3, 2), np.int16), np.eye(4)), tmp_path / "y.nii.gz")
    with pytest.raises(ConversionError, match="expected a 4D volume"):
        read_volume_channel(tmp_path / "y.nii.gz", 0)


def test_vector_mha_channel(tmp_path):
    """A 3D MHA of 2-component vectors (how ITK stores multi-sequence images) splits like a 4D NIfTI."""
    import SimpleITK as sitk

    from omnimedseg.converters.formats.volumes import read_volume, read_volume_channel

    array = np.arange(4 * 5 * 6 * 2, dtype=np.int16).reshape(6, 5, 4, 2)  # (k, j, i, c)
    img = sitk.GetImageFromArray(array, isVector=True)
    img.SetSpacing((0.5, 0.7, 2.0))
    img.SetOrigin((10.0, -3.0, 4.0))
    sitk.WriteImage(img, str(tmp_path / "v.mha"))
    sitk.WriteImage(sitk.GetImageFromArray(array[..., 1]), str(tmp_path / "c1.mha"))
    channel = read_volume_channel(tmp_path / "v.mha", 1)
    assert np.array_equal(channel.array, np.transpose(array[..., 1], (2, 1, 0)))
    assert np.allclose(np.diag(channel.affine)[:3], [-0.5, -0.7, 2.0])
    assert channel.affine[0, 3] == -10.0
    assert np.array_equal(read_volume(tmp_path / "c1.mha").array, channel.array)


def test_raters_and_consensus(tmp_path):
    card = data.fundus_card(tmp_path / "cards")
    raw = tmp_path / "raw"
    ids = data.make_fundus(raw)
    out = convert_dataset(card, tmp_path / "root", raw=raw)
    dataset = _dataset(out)
    assert dataset["raters"] == data.FUNDUS_RATERS and dataset["reference_rater"] == "consensus"
    for case in dataset["cases"]:
        cid = case["case_id"]
        assert case["masks"] == {c: f"masks/{cid}/{c}.png" for c in ("disc", "cup")}
        consensus = np.asarray(Image.open(raw / "Consensus" / f"{cid}_cup.png")) > 0
        assert np.array_equal(read_output(out / case["masks"]["cup"])[0], consensus)
        assert set(case["raters"]) == set(data.FUNDUS_RATERS)
        for rater in data.FUNDUS_RATERS:
            assert case["raters"][rater]["disc"] == f"raters/{rater}/{cid}/disc.png"
            expected = np.asarray(Image.open(raw / "Masks" / rater / f"{cid}_disc.png")) > 0
            assert np.array_equal(read_output(out / case["raters"][rater]["disc"])[0], expected)
    assert [c["case_id"] for c in dataset["cases"]] == ids
    assert validate_converted(out, raw).ok


def test_reference_rater_masks_are_the_reference_and_not_duplicated(tmp_path):
    card = data.fundus_card(tmp_path / "cards", reference="expert2", dataset_id="fundus_ref")
    raw = tmp_path / "raw"
    data.make_fundus(raw, n=2)
    out = convert_dataset(card, tmp_path / "root", raw=raw)
    dataset = _dataset(out)
    assert dataset["reference_rater"] == "expert2"
    for case in dataset["cases"]:
        assert case["raters"]["expert2"] == case["masks"]
        expected = np.asarray(Image.open(raw / "Masks" / "expert2" / f"{case['case_id']}_cup.png")) > 0
        assert np.array_equal(read_output(out / case["masks"]["cup"])[0], expected)
    assert not (out / "raters" / "expert2").exists() and (out / "raters" / "expert1").is_dir()
    assert validate_converted(out, raw).ok


def test_card_raters_are_validated(tmp_path):
    from omnimedseg.errors import RegistryError

    with pytest.raises(RegistryError, match=r"field 'raters.reference': expected one of \['a', 'b'\] or 'consensus'"):
        data.write_card(tmp_path, "bad", "fundus", 2, ["disc"], tables='[raters]\nnames = ["a", "b"]\nreference = "c"\n')
    with pytest.raises(RegistryError, match=r"field 'channels\[1\]'"):
        data.write_card(tmp_path, "bad", "MRI", 3, ["x"], top='channels = ["T1", "T 2"]')
    card = data.write_card(tmp_path, "plain", "CT", 3, ["liver"])
    assert card.channel_names == ["CT"] and card.raters == () and card.reference_rater is None


def test_instances_keep_published_ids_and_give_the_semantic_mask(tmp_path):
    card = data.nuclei_card(tmp_path / "cards")
    raw = tmp_path / "raw"
    data.make_nuclei(raw)
    out = convert_dataset(card, tmp_path / "root", raw=raw, workers=2)
    for case in _dataset(out)["cases"]:
        cid = case["case_id"]
        published = np.asarray(Image.open(raw / "instances" / f"{cid}.png"))
        stored = read_output(out / case["instances"]["nucleus"])[0]
        assert stored.dtype == np.uint16 and np.array_equal(stored, published)
        assert {1000, 1001} <= set(np.unique(stored).tolist())  # touching nuclei stay two instances
        assert np.array_equal(read_output(out / case["masks"]["nucleus"])[0], published != 0)
        ignore = read_output(out / case["ignore"])[0]
        assert ignore.dtype == bool and ignore[-3:].all() and not ignore[:-3].any()
    assert validate_converted(out, raw).ok


def test_absent_cases_are_listed_not_errors(tmp_path):
    """A side file listing more cases than a partial copy holds: the missing ones are absent."""
    card = data.brain_card(tmp_path / "cards")
    raw = tmp_path / "raw"
    ids = data.make_brain(raw, n=2, listed_extra=2)
    out = convert_dataset(card, tmp_path / "root", raw=raw)
    dataset = _dataset(out)
    assert [c["case_id"] for c in dataset["cases"]] == ids
    assert dataset["absent"] == [{"case_id": "BRATS_002", "split": "train"}, {"case_id": "BRATS_003", "split": "train"}]
    assert dataset["failed"] == []
    assert validate_converted(out, raw).ok


def test_case_with_some_files_missing_is_an_error_naming_them(tmp_path):
    card = data.brain_card(tmp_path / "cards")
    raw = tmp_path / "raw"
    ids = data.make_brain(raw, n=3)
    (raw / "labelsTr" / f"{ids[1]}.nii.gz").unlink()
    with pytest.raises(ConversionError) as info:
        convert_dataset(card, tmp_path / "root", raw=raw)
    message = str(info.value)
    assert f"case {ids[1]}" in message and f"labelsTr/{ids[1]}.nii.gz" in message
    assert "expected every file of a present case" in message and "\n" not in message
    out = convert_dataset(card, tmp_path / "root", raw=raw, keep_going=True)
    dataset = _dataset(out)
    assert [c["case_id"] for c in dataset["cases"]] == [ids[0], ids[2]]
    assert [f["case_id"] for f in dataset["failed"]] == [ids[1]]
    assert f"labelsTr/{ids[1]}.nii.gz" in dataset["failed"][0]["error"]
    assert validate_converted(out, raw).ok


def test_memory_per_case_does_not_grow_with_the_number_of_classes(tmp_path):
    """A 117-class label map is split class by class: peak memory is a few masks, not 117 of them."""
    import tracemalloc

    card = data.many_card(tmp_path / "cards")
    raw = tmp_path / "raw"
    data.make_many(raw)
    voxels = 64 * 64 * 48
    tracemalloc.start()
    try:
        out = convert_dataset(card, tmp_path / "root", raw=raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    all_masks = 117 * voxels  # bytes of 117 bool masks held at once
    assert peak < all_masks / 6, f"peak {peak / 1e6:.1f} MB vs {all_masks / 1e6:.1f} MB for all masks"
    label = np.asanyarray(nib.load(raw / "seg.nii.gz").dataobj)
    assert np.array_equal(read_output(out / "masks" / "s0001" / "s117.nii.gz")[0], label == 117)
    assert len(_dataset(out)["cases"][0]["masks"]) == 117


def _truncate(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _wrong_shape(path):
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(path)


def _colour(path):
    rgb = np.zeros((40, 48, 3), np.uint8)
    rgb[10:20, 10:20] = (255, 0, 0)
    Image.fromarray(rgb).save(path)


@pytest.mark.parametrize("damage, target, expected", [
    (_truncate, "Images/IMG0001.png", "not a readable image"),
    (_wrong_shape, "Masks/expert2/IMG0001_cup.png", "geometry differs from image IMG0001.png: shape (20, 20) vs (40, 48)"),
    (_colour, "Consensus/IMG0001_disc.png", "a colour mask where a greyscale mask was expected"),
])
def test_bad_raw_files_name_file_case_and_expectation(tmp_path, damage, target, expected):
    card = data.fundus_card(tmp_path / "cards")
    raw = tmp_path / "raw"
    data.make_fundus(raw)
    damage(raw / target)
    with pytest.raises(ConversionError) as info:
        convert_dataset(card, tmp_path / "root", raw=raw)
    message = str(info.value)
    assert message.startswith(f"fundus: case IMG0001: {raw / target}: ") and expected in message, message
    assert "\n" not in message
    converted = tmp_path / "root" / "converted" / "fundus"
    assert not (converted / "1.0.0").exists() and not list(converted.rglob(".complete"))


def test_validator_reports_a_missing_channel_and_an_unlisted_rater_file(tmp_path):
    card = data.brain_card(tmp_path / "cards")
    raw = tmp_path / "raw"
    ids = data.make_brain(raw, n=2)
    out = convert_dataset(card, tmp_path / "root", raw=raw)
    dataset = _dataset(out)
    del dataset["cases"][0]["channels"]["T1w"]
    (out / "dataset.json").write_text(json.dumps(dataset))
    (out / "ignore" / f"{ids[1]}.nii.gz").unlink()
    problems = "\n".join(validate_converted(out, raw).problems)
    assert f"case {ids[0]}: channels ['FLAIR'] differ from dataset.json channel_names ['FLAIR', 'T1w']" in problems
    assert f"images/{ids[0]}/T1w.nii.gz: not listed in dataset.json" in problems
    assert f"ignore/{ids[1]}.nii.gz: missing ignore mask of case {ids[1]}" in problems
