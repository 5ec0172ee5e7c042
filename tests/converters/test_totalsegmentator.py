import json

import nibabel as nib
import numpy as np
import pytest

from omnimedseg.registry import load_registry
from omnimedseg.testing import check_converter
from tests.converters.fake import totalsegmentator as fake


@pytest.mark.parametrize("version, make, splits", [
    ("v2", fake.make_remote_files_v2, {"train": 1, "val": 1, "test": 1}),
    ("v3", fake.make_remote_files_v3, {"train": 1, "test": 1}),
])
def test_totalsegmentator_end_to_end(tmp_path, version, make, splits):
    dataset_id = f"totalsegmentator_{version}"
    out = check_converter(dataset_id, make, tmp_path, expected_splits=splits)
    card = load_registry().get(dataset_id)
    assert len(card.classes) == 117
    case = next(iter(fake.CASES[version]))
    for name, stem in zip(card.class_names, fake.raw_stems(version)):
        mask = np.asarray(nib.load(out / f"masks/{case}/{name}.nii.gz").dataobj).astype(bool)
        assert np.array_equal(mask, fake.expected_mask(version, stem)), name
    # in world space the liver is on the patient's right (+x), the left rib on the left, the vertebra posterior
    centre = {name: nib.affines.apply_affine(img.affine, np.argwhere(np.asarray(img.dataobj)).mean(0))
              for name in ("liver", "rib_left_1", fake.VERTEBRA[version].lower())
              for img in [nib.load(out / f"masks/{case}/{name}.nii.gz")]}
    liver, rib, spine = centre["liver"], centre["rib_left_1"], centre[fake.VERTEBRA[version].lower()]
    assert liver[0] > spine[0] > rib[0] and spine[1] < liver[1] and rib[2] > liver[2]
    vertebra = fake.VERTEBRA[version]
    prov = json.loads((out / "provenance.json").read_text())
    top = fake.ZIPS[version][1]
    assert prov["files"][f"masks/{case}/{vertebra.lower()}.nii.gz"]["sources"][0]["path"] == \
        f"{top}{case}/segmentations/{vertebra}.nii.gz"
    assert f"{top}meta.csv" in prov["metadata_sources"]
    dataset = json.loads((out / "dataset.json").read_text())
    entry = next(c for c in dataset["cases"] if c["case_id"] == case)
    assert entry["meta"]["scanner_model"] == "SOMATOM Definition Flash" and entry["meta"]["kvp"] == "120"
    assert "pathology_location" not in entry["meta"]  # empty field left out
    assert "10.1148/ryai.230024" in (out / "CITATION.bib").read_text()


def test_converter_on_real_totalsegmentator_nifti(tmp_path, realdata):
    """The real TotalSegmentator example CT and its 'total' label map (../shared/realdata/totalseg_nifti), laid
    out as the v2.0.1 release: per-structure files cut from the real label map, written with its real header."""
    from tests.helpers import run_cli

    real = realdata("totalseg_nifti")
    raw = tmp_path / "raw"
    (raw / "s0000" / "segmentations").mkdir(parents=True)
    (raw / "s0000" / "ct.nii.gz").write_bytes((real / "example_ct_sm.nii.gz").read_bytes())
    seg = nib.load(real / "example_seg.nii.gz")
    labels = np.asarray(seg.dataobj)
    card = load_registry().get("totalsegmentator_v2")
    for value, stem in enumerate(fake.raw_stems("v2"), start=1):
        mask = nib.Nifti1Image((labels == value).astype(np.uint8), seg.affine, seg.header)
        nib.save(mask, raw / "s0000" / "segmentations" / f"{stem}.nii.gz")
    (raw / "meta.csv").write_text("\ufeff" + fake.META_HEADER + "\ns0000;70;m;A;ct abdomen;test;GE;X;120;;\n"
                                  "s0001;71;f;B;ct thorax;train;GE;X;120;;\n", encoding="utf-8")
    root = tmp_path / "root"
    result = run_cli("--root", root, "convert", "totalsegmentator_v2", "--raw", raw, "--json", "--accept-licence")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["cases"] == 1 and summary["absent"] == ["s0001"]  # meta.csv lists more than the copy holds
    out = next((root / "converted" / "totalsegmentator_v2").iterdir())
    image = nib.load(out / "images/s0000.nii.gz")
    assert np.allclose(image.affine, nib.load(real / "example_ct_sm.nii.gz").affine)
    assert np.array_equal(np.asarray(image.dataobj), np.asarray(nib.load(real / "example_ct_sm.nii.gz").dataobj))
    present = [v for v in np.unique(labels) if v]
    for value in present:
        name = card.classes[int(value)]
        mask = np.asarray(nib.load(out / f"masks/s0000/{name}.nii.gz").dataobj).astype(bool)
        assert np.array_equal(mask, labels == value), name
    assert not np.asarray(nib.load(out / "masks/s0000/brain.nii.gz").dataobj).any()  # out of view: empty mask


def test_v2_release_with_a_top_folder_is_named_not_guessed(tmp_path):
    """Sources disagree on whether the v2.0.1 zip has a top folder (torch-em: none; a catalogue: one); if the
    real zip has one, the converter names where meta.csv was found instead of listing every case as absent."""
    from omnimedseg.converters._run import collect_cases
    from omnimedseg.errors import ConversionError
    from tests.converters.fake._common import extract_release

    remote = tmp_path / "remote"
    remote.mkdir()
    fake.make_remote_files_v2(remote)
    raw = extract_release(remote, tmp_path / "raw" / "Totalsegmentator_dataset_v201")
    card = load_registry().get("totalsegmentator_v2")
    with pytest.raises(ConversionError, match=r"found \['Totalsegmentator_dataset_v201/meta.csv'\]"):
        collect_cases(card, raw.parent)
    assert [c.case_id for c in collect_cases(card, raw)] == list(fake.CASES["v2"])
