"""HCC-TACE-Seg: IDC download of the fake release, SEG matched to the acquisition it references."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from tests.converters.fake._idc import AIR_HU, assert_masks_on_their_structures, download_and_convert, expected_volume
from tests.converters.fake.hcc_tace_seg import CLASSES, HU, Z, make_remote_files, offset, polygon

pytest.importorskip("highdicom", reason="the fake SEG files are written with highdicom (test extra)")
pytestmark = [pytest.mark.filterwarnings("ignore:The string .* is unlikely to represent:UserWarning")]


def test_hcc_tace_seg_end_to_end(tmp_path):
    truth, raw, out = download_and_convert("hcc_tace_seg", make_remote_files, tmp_path)
    for patient in truth.values():  # the AI SEG is left out by the card's index filter
        assert not (raw / patient["ai_uuid"]).exists()
    dataset = json.loads((out / "dataset.json").read_text())
    assert json.loads((out / "splits.json").read_text()) == {"all": ["HCC_001", "HCC_002"]}
    cases = {c["case_id"]: c for c in dataset["cases"]}
    for case_id, t in truth.items():
        case = cases[case_id]
        image = nib.load(out / case["image"])
        # the image is the acquisition the SEG references: each slice's air holds its acquisition and index
        values = np.asarray(image.dataobj)
        assert values.shape == (24, 20, 6)
        assert [int(values[0, 0, k]) for k in range(6)] == [AIR_HU + offset(t["acquisition"], k) for k in range(6)]
        # each class is the union of its segments: the whole liver (+ the vein, as DKFZ's radioactive builds it)
        # from the liver without tumour and vein; the whole tumour from Mass + Necrosis (HCC_001)
        truth_of = {name: t["mask"][..., c] for c, name in enumerate(CLASSES)}
        truth_of["liver"] = truth_of["liver"] | truth_of["liver_tumour"] | truth_of["portal_vein"]
        for name in CLASSES:
            mask = np.asarray(nib.load(out / case["masks"][name]).dataobj).astype(bool)
            assert np.array_equal(mask, expected_volume(truth_of[name])), (case_id, name)
        # in plane: each mask lies on the HU painted for its structure, in the right place in patient space
        assert_masks_on_their_structures(
            out / case["image"], {name: out / case["masks"][name] for name in CLASSES[1:]}, list(CLASSES[1:]),
            lambda name, k: HU[name] + offset(t["acquisition"], k), lambda name, k: polygon(name, k, t["seed"]), Z)
    provenance = json.loads((out / "provenance.json").read_text())
    text = json.dumps(provenance)
    assert truth["HCC_001"]["seg"].name in text and truth["HCC_001"]["ct_uuid"] in text
    assert "Moawad" in (out / "CITATION.bib").read_text() or "5FNA-0924" in (out / "CITATION.bib").read_text()
    assert "CC-BY-4.0" in (out / "LICENSE.txt").read_text()


def test_convert_raw_idc_copy_skips_the_ai_seg(tmp_path):
    """``convert --raw`` on a full copy of the collection as the bucket lays it out (``s5cmd sync
    s3://idc-open-data/<uuid>/*``), AI SEG series included: they are skipped by description."""
    from omnimedseg.converters._validate import validate_converted
    from tests.helpers import run_cli

    raw = tmp_path / "idc-copy"
    raw.mkdir()
    truth = make_remote_files(raw)
    (raw / "idc_index.csv").unlink()  # a bucket copy has no index next to it
    assert all((raw / t["ai_uuid"]).is_dir() for t in truth.values())
    result = run_cli("--root", tmp_path / "root", "convert", "hcc_tace_seg", "--raw", raw)
    assert result.exit_code == 0, result.output
    out = tmp_path / "root" / "converted" / "hcc_tace_seg" / "1.1.0"
    assert json.loads((out / "splits.json").read_text()) == {"all": ["HCC_001", "HCC_002"]}
    assert validate_converted(out, raw).ok
    provenance = json.dumps(json.loads((out / "provenance.json").read_text()))
    assert not any(t["ai_uuid"] in provenance for t in truth.values())


def test_each_dicom_file_is_parsed_once_per_case_whatever_the_number_of_classes(tmp_path, monkeypatch):
    """Four class masks and the image come from one SEG and one CT series: the per-process cache in
    formats.dicom_refs (keyed on path + size + mtime) parses each file once, not once per class."""
    import collections

    import pydicom

    from omnimedseg.converters._run import collect_cases, convert_case
    from omnimedseg.converters.formats import dicom_refs
    from omnimedseg.registry import load_registry

    raw = tmp_path / "idc-copy"
    raw.mkdir()
    make_remote_files(raw)
    card = load_registry().get("hcc_tace_seg")
    cases = collect_cases(card, raw)  # header-only listing, not counted below
    dicom_refs._referenced.cache_clear()
    dicom_refs._decoded.cache_clear()
    full_reads = collections.Counter()
    original = pydicom.dcmread

    def counting(fp, *args, **kwargs):
        if not kwargs.get("stop_before_pixels"):
            full_reads[str(fp)] += 1
        return original(fp, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", counting)
    from omnimedseg.converters._run import Layout, _Job

    staging = tmp_path / "staging"
    for case in cases:
        job = _Job(card, case, dict(card.classes), raw, staging, Layout.for_card(card), False)
        assert convert_case(job)["status"] == "done"
    seg_files = {str(c.masks["liver"].paths[0]) for c in cases}
    assert len(cases) == 2 and len(CLASSES) == 4
    assert {f: full_reads[f] for f in seg_files} == dict.fromkeys(seg_files, 1)
    assert full_reads and max(full_reads.values()) == 1, full_reads.most_common(3)
    # a rewritten file (new mtime) is read again, not served stale from the cache
    seg = str(cases[0].masks["liver"].paths[0])
    import os

    stat = os.stat(seg)
    os.utime(seg, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    dicom_refs.read_seg_mask(seg, *cases[0].masks["liver"].paths[1:], segments=("Liver",))
    assert full_reads[seg] == 2
