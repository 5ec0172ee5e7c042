"""The PyTorch data layer over converted 2D (HC18) and 3D (generated NIfTI) datasets."""

from __future__ import annotations

import zipfile

import nibabel as nib
import numpy as np
import pytest
import torch

from omnimedseg.data import ConvertedDataset, SliceDataset
from omnimedseg.errors import DatasetNotFoundError, UsageError
from omnimedseg.testing import check_converter
from tests.converters.fake.hc18 import make_remote_files
from tests.helpers import install_fake_distribution, write_card_variant

ORGANS_PLUGIN = '''
    from omnimedseg.converters import Case, Converter, Source
    from omnimedseg.converters.formats.nifti import read_nifti


    class Organs(Converter):
        def cases(self, raw_dir):
            for image in sorted((raw_dir / "imagesTr").glob("*.nii.gz")):
                yield Case(case_id=image.name[:-7], image=Source(image, read_nifti), split="train",
                           label=Source(raw_dir / "labelsTr" / image.name, read_nifti))
'''
AFFINE = np.array([[-0.8, 0, 0, 100.0], [0, -0.8, 0, 50.0], [0, 0, 2.5, -30.0], [0, 0, 0, 1]])


def _organ_release(folder):
    rng = np.random.default_rng(3)
    work = folder / "work"
    for sub in ("imagesTr", "labelsTr"):
        (work / sub).mkdir(parents=True)
    for case in ("organs_001", "organs_002"):
        image = rng.normal(0, 100, (12, 10, 6)).astype(np.int16)
        label = np.zeros((12, 10, 6), np.uint8)
        label[2:6, 2:6, 1:3] = 1  # class 1 on slices k = 1, 2
        label[7:10, 5:9, 4] = 2  # class 2 on slice k = 4
        nib.save(nib.Nifti1Image(image, AFFINE), work / "imagesTr" / f"{case}.nii.gz")
        nib.save(nib.Nifti1Image(label, AFFINE), work / "labelsTr" / f"{case}.nii.gz")
    with zipfile.ZipFile(folder / "organs.zip", "w") as zf:
        for path in sorted(work.rglob("*.nii.gz")):
            zf.write(path, path.relative_to(work).as_posix())
    import shutil

    shutil.rmtree(work)


@pytest.fixture
def organs(tmp_path, monkeypatch):
    site = tmp_path / "site"
    install_fake_distribution(site, "organs_plugin", ORGANS_PLUGIN, "omnimedseg.converters",
                              "organs3d = organs_plugin:Organs")
    monkeypatch.syspath_prepend(str(site))
    cards = tmp_path / "cards"
    write_card_variant(cards, "organs3d", {'modality = "ultrasound"': 'modality = "CT"',
                                           "dimensionality = 2": "dimensionality = 3",
                                           '1 = "fetal_head"': '1 = "liver"\n2 = "spleen"'},
                       '[[source.files]]\nname = "organs.zip"\nextract = true\n')
    out = check_converter("organs3d", _organ_release, tmp_path, {"train": 2}, registry_dirs=(cards,))
    return {"root": out.parents[2], "registry_dirs": (str(cards),)}


def test_volume_dataset_keeps_geometry_and_classes(organs):
    dataset = ConvertedDataset("organs3d", **organs)
    sample = dataset[0]
    assert len(dataset) == 2 and sample["case_id"] == "organs_001"
    assert sample["image"].shape == (1, 12, 10, 6) and sample["image"].dtype == torch.float32
    assert sample["masks"].shape == (2, 12, 10, 6) and sample["masks"].dtype == torch.bool
    assert sample["class_names"] == ["liver", "spleen"]
    assert np.allclose(sample["affine"], AFFINE) and np.allclose(sample["spacing"], (0.8, 0.8, 2.5))
    assert sample["masks"][0].sum() == 4 * 4 * 2 and sample["masks"][1].sum() == 3 * 4
    assert (sample["modality"], sample["dataset"], sample["split"]) == ("CT", "organs3d", "train")


def test_slices_follow_axis_and_foreground_filter(organs):
    volume = ConvertedDataset("organs3d", **organs)[1]
    slices = SliceDataset("organs3d", axis=2, **organs)
    assert len(slices) == 2 * 6
    s = slices[6 + 4]  # second case, k = 4
    assert s["case_id"] == "organs_002" and s["slice_index"] == 4
    assert torch.equal(s["image"][0], volume["image"][0, :, :, 4])
    assert torch.equal(s["masks"], volume["masks"][:, :, :, 4])
    assert s["spacing"] == pytest.approx((0.8, 0.8))
    spleen = SliceDataset("organs3d", axis=2, foreground_class="spleen", **organs)
    assert [(x["case_id"], x["slice_index"]) for x in spleen] == [("organs_001", 4), ("organs_002", 4)]
    along_i = SliceDataset("organs3d", axis=0, foreground_class="liver", **organs)
    assert len(along_i) == 2 * 4 and along_i[0]["image"].shape == (1, 10, 6)
    assert along_i[0]["spacing"] == pytest.approx((0.8, 2.5))


def test_dataloader_with_two_workers_is_deterministic(organs):
    slices = SliceDataset("organs3d", axis=2, **organs)

    def batches():
        loader = torch.utils.data.DataLoader(slices, batch_size=4, shuffle=True, num_workers=2,
                                             generator=torch.Generator().manual_seed(7),
                                             collate_fn=lambda items: [(i["case_id"], i["slice_index"]) for i in items])
        return [b for b in loader]

    first, second = batches(), batches()
    assert first == second and sorted(x for b in first for x in b) == sorted(
        (c, k) for c in ("organs_001", "organs_002") for k in range(6))


def test_2d_dataset_from_hc18(tmp_path):
    out = check_converter("hc18", make_remote_files, tmp_path, {"train": 3, "test": 2})
    root = out.parents[2]
    train = ConvertedDataset("hc18", root=root)
    assert len(train) == 3
    sample = train[0]
    assert sample["image"].shape == (1, 54, 80) and sample["masks"].shape == (1, 54, 80)
    assert sample["affine"] is None and sample["spacing"][0] == sample["spacing"][1] > 0
    everything = ConvertedDataset("hc18", root=root, labelled_only=False, split="test")
    assert len(everything) == 2 and not everything[0]["labelled"] and not everything[0]["masks"].any()
    with pytest.raises(UsageError, match=r"no split 'val'; the dataset has \['test', 'train'\]"):
        ConvertedDataset("hc18", root=root, split="val")
    with pytest.raises(UsageError, match="is 2D"):
        SliceDataset("hc18", root=root)


def test_missing_data_gives_the_commands(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="run: omnimedseg download hc18 && omnimedseg convert hc18"):
        ConvertedDataset("hc18", root=tmp_path)
