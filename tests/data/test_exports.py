"""Exports: nnU-Net v2 raw, MSD/MONAI datalist, Croissant, MedSegDB - each read back by the other tool."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from omnimedseg.data import ConvertedDataset
from omnimedseg.data.exports import export_dataset, label_map
from omnimedseg.errors import UsageError, ValidationError
from tests.data.conftest import AFFINE
from tests.helpers import run_cli


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_nnunet_layout_from_3d_and_converted_data_untouched(organs, tmp_path):
    converted = ConvertedDataset("organs3d", **organs).folder
    before = _tree(converted)
    result = export_dataset("organs3d", "nnunet", tmp_path / "Dataset007_organs", nnunet_id=7, **organs)
    out = result.folder
    info = json.loads((out / "dataset.json").read_text())
    assert info["channel_names"] == {"0": "CT"} and info["labels"] == {"background": 0, "liver": 1, "spleen": 2}
    assert info["numTraining"] == 2 and info["file_ending"] == ".nii.gz"
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == ["organs_001_0000.nii.gz", "organs_002_0000.nii.gz"]
    label = nib.load(out / "labelsTr" / "organs_002.nii.gz")
    image = nib.load(out / "imagesTr" / "organs_002_0000.nii.gz")
    assert np.allclose(label.affine, AFFINE) and np.allclose(image.affine, label.affine)
    data = np.asarray(label.dataobj)
    assert data.dtype == np.uint8 and (data == 1).sum() == 4 * 4 * 2 and (data == 2).sum() == 3 * 4
    assert _tree(converted) == before and not list(out.parent.glob(".*staging"))
    with pytest.raises(UsageError, match="already exists; .* run: omnimedseg export organs3d --format nnunet --force"):
        export_dataset("organs3d", "nnunet", out, **organs)


def test_overlap_policy():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :3, :3] = True
    masks[1, 2:, 2:] = True
    with pytest.raises(UsageError, match=r"case x: classes \['kidney', 'kidney_tumour'\] overlap in 1 "
                                         r"pixels/voxels; .* rerun with --overlap last"):
        label_map(masks, "error", "case x", ["kidney", "kidney_tumour"])
    labels, n = label_map(masks, "last", "case x", ["kidney", "kidney_tumour"])
    assert n == 1 and labels[2, 2] == 2 and labels[0, 0] == 1 and labels[3, 0] == 0


def test_msd_datalist_loads_in_monai_and_2d_nnunet(hc18, tmp_path):
    from monai.data import load_decathlon_datalist
    from monai.transforms import LoadImaged

    out = export_dataset("hc18", "msd", tmp_path / "msd", **hc18).folder
    datalist = load_decathlon_datalist(out / "dataset.json", data_list_key="training")
    assert [os.path.basename(d["image"]) for d in datalist] == ["train_000_HC.png", "train_001_HC.png", "train_010_2HC.png"]
    loaded = LoadImaged(keys=["image", "label"], image_only=True)(datalist[0])
    original = ConvertedDataset("hc18", **hc18)[0]
    # MONAI's PIL reader returns (x, y): its arrays are the transpose of ours
    assert np.array_equal(np.asarray(loaded["label"]).T, original["masks"][0].numpy().astype(np.uint8))
    assert np.array_equal(np.asarray(loaded["image"]).T, original["image"][0].numpy())
    test = load_decathlon_datalist(out / "dataset.json", data_list_key="test")
    assert len(test) == 2 and all(os.path.isfile(t["image"]) for t in test)
    nn = export_dataset("hc18", "nnunet", tmp_path / "Dataset500_hc18", **hc18).folder
    assert sorted(p.name for p in (nn / "imagesTs").iterdir()) == ["test_000_HC_0000.png", "test_001_HC_0000.png"]
    label = np.asarray(Image.open(nn / "labelsTr" / "train_000_HC.png"))
    assert label.dtype == np.uint8 and np.array_equal(label, original["masks"][0].numpy().astype(np.uint8))


def test_croissant_validates_with_mlcroissant_and_yields_records(hc18, tmp_path):
    mlc = pytest.importorskip("mlcroissant", reason="mlcroissant (test-only) is not installed")
    out = export_dataset("hc18", "croissant", tmp_path / "cr", **hc18).folder
    dataset = mlc.Dataset(jsonld=out / "croissant.json")  # raises ValidationError on any problem
    assert not dataset.metadata.issues.errors and not dataset.metadata.issues.warnings, dataset.metadata.issues.report()
    cases = [{k.split("/")[-1]: (v.decode() if isinstance(v, bytes) else v) for k, v in r.items()}
             for r in dataset.records("cases")]
    assert [(c["case_id"], c["split"]) for c in cases][:2] == [("train_000_HC", "train"), ("train_001_HC", "train")]
    assert len(cases) == 5
    masks = list(dataset.records("masks"))
    assert len(masks) == 3 and masks[0]["masks/class_name"] == b"fetal_head"
    assert masks[0]["masks/case_id"] == b"train_000_HC" and np.asarray(masks[0]["masks/mask"]).any()


def test_croissant_3d_and_medsegdb(organs, tmp_path):
    from omnimedseg.data.medsegdb import MedSegDBDataset

    out = export_dataset("organs3d", "croissant", tmp_path / "cr", **organs).folder
    document = json.loads((out / "croissant.json").read_text())
    assert document["distribution"][3]["includes"] == "images/*.nii.gz"
    db = export_dataset("organs3d", "medsegdb", tmp_path / "db", **organs)
    assert db.notes["pairs"] == 2 * 3  # liver on k = 1, 2 and spleen on k = 4, for two cases
    sample = MedSegDBDataset(db.folder)[0]
    assert sample["class_names"] == ["Liver"] and MedSegDBDataset(db.folder).context(0).seen


def test_failed_verification_leaves_nothing(organs, tmp_path, monkeypatch):
    import omnimedseg.data.exports as exports

    def broken(folder, fmt):
        raise ValidationError("boom")

    monkeypatch.setattr(exports, "verify_label_export", broken)
    with pytest.raises(ValidationError, match="boom"):
        export_dataset("organs3d", "msd", tmp_path / "msd", **organs)
    assert list(tmp_path.iterdir()) == [p for p in tmp_path.iterdir() if p.name != "msd" and "staging" not in p.name]
    assert not (tmp_path / "msd").exists() and not (tmp_path / ".msd.staging").exists()


def test_cli_export(organs, tmp_path):
    common = ["--root", organs["root"], "--registry", organs["registry_dirs"][0], "-q"]
    result = run_cli(*common, "export", "organs3d", "--format", "msd", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["folder"] == str(organs["root"] / "exports" / "msd" / "organs3d") and report["files"] == 5
    result = run_cli(*common, "export", "organs3d", "--format", "msd")
    assert result.exit_code == 2 and "already exists" in result.output and "Traceback" not in result.output
    result = run_cli(*common, "export", "organs3d", "--format", "tiff")
    assert result.exit_code == 2


@pytest.mark.slow
def test_nnunet_integrity_check_passes(organs, hc18, tmp_path):
    """nnU-Net's own verify_dataset_integrity on both exports. Slow and opt-in: nnunetv2 pulls a CUDA torch, so it
    is not a project dependency; install it beside (pip install --no-deps --target DIR nnunetv2 batchgenerators
    acvl_utils scikit-image tifffile lazy_loader imageio blosc2 numexpr msgpack ndindex httpx) and set
    OMNIMEDSEG_NNUNET_PATH=DIR."""
    extra = os.environ.get("OMNIMEDSEG_NNUNET_PATH", "")
    code = "import nnunetv2.experiment_planning.verify_dataset_integrity"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (extra, os.environ.get("PYTHONPATH", "")) if p)}
    if subprocess.run([sys.executable, "-c", code], env=env, capture_output=True).returncode:
        pytest.skip("nnunetv2 is not importable (set OMNIMEDSEG_NNUNET_PATH; see the docstring)")
    for dataset_id, kw in (("organs3d", organs), ("hc18", hc18)):
        out = export_dataset(dataset_id, "nnunet", tmp_path / f"Dataset50{len(dataset_id)}_{dataset_id}", **kw).folder
        check = ("from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity as v;"
                 f"v({str(out)!r}, 1)")
        run = subprocess.run([sys.executable, "-c", check], env={**env, "nnUNet_raw": str(tmp_path)},
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0 and "Error" not in run.stdout, run.stdout + run.stderr


def test_an_export_folder_never_holds_or_replaces_the_data(organs, tmp_path):
    """`--out <data root> --force` had replaced the whole data root by the export; `--out` inside the converted
    folder had broken it. Both are refused before anything is written."""
    root = organs["root"]
    converted = ConvertedDataset("organs3d", **organs).folder
    before = _tree(converted)
    for out in (root, converted, converted / "nnunet", root / "raw" / "x", root / "converted"):
        with pytest.raises(UsageError, match=r"an export folder must lie outside .* and must not contain it"):
            export_dataset("organs3d", "nnunet", out, force=True, nnunet_id=7, **organs)
    assert _tree(converted) == before and (root / "converted").is_dir()


def test_a_second_dataset_under_one_nnunet_id_is_refused(organs, tmp_path):
    """nnU-Net resolves a dataset by id alone: two Dataset500_* in one nnUNet_raw break every lookup."""
    (tmp_path / "raw" / "Dataset500_other").mkdir(parents=True)
    with pytest.raises(UsageError, match=r"already holds Dataset500_other with nnU-Net id 500; .*--nnunet-id"):
        export_dataset("organs3d", "nnunet", tmp_path / "raw" / "Dataset500_organs3d", **organs)
    export_dataset("organs3d", "nnunet", tmp_path / "raw" / "Dataset501_organs3d", nnunet_id=501, **organs)


def test_an_export_killed_before_it_ends_leaves_no_staging_after_the_next(organs, tmp_path):
    out = tmp_path / "Dataset007_organs"
    stale = tmp_path / ".Dataset007_organs.staging-killed"
    stale.mkdir()
    (stale / "imagesTr").mkdir()
    export_dataset("organs3d", "nnunet", out, nnunet_id=7, **organs)
    assert not stale.exists() and out.is_dir()


def test_a_label_map_of_255_classes_has_room_for_the_ignore_value():
    masks = np.zeros((255, 2, 2), bool)
    masks[254, 0, 0] = True
    labels, _ = label_map(masks, "error", "x", [f"c{i}" for i in range(255)])
    assert labels.dtype == np.uint16 and labels[0, 0] == 255
    labels[1, 1] = 256  # the ignore value fits
