"""The PyTorch data layer over converted 2D (HC18) and 3D (generated NIfTI) datasets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnimedseg.data import ConvertedDataset, SliceDataset
from omnimedseg.errors import DatasetNotFoundError, UsageError
from tests.data.conftest import AFFINE


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


def test_2d_dataset_from_hc18(hc18):
    root = hc18["root"]
    train = ConvertedDataset("hc18", root=root)
    assert len(train) == 3
    sample = train[0]
    assert sample["image"].shape == (1, 54, 80) and sample["masks"].shape == (1, 54, 80)
    assert np.isnan(sample["affine"]).all() and sample["spacing"][0] == sample["spacing"][1] > 0
    everything = ConvertedDataset("hc18", root=root, labelled_only=False, split="test")
    assert len(everything) == 2 and not everything[0]["labelled"] and not everything[0]["masks"].any()
    with pytest.raises(UsageError, match=r"no split 'val'; the dataset has \['test', 'train'\]"):
        ConvertedDataset("hc18", root=root, split="val")
    with pytest.raises(UsageError, match="is 2D"):
        SliceDataset("hc18", root=root)


def test_missing_data_gives_the_commands(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="run: omnimedseg download hc18 && omnimedseg convert hc18"):
        ConvertedDataset("hc18", root=tmp_path)


def _converted(organs):
    return next((organs["root"] / "converted" / "organs3d").glob("*/.complete")).parent


def test_a_dataset_object_refuses_to_serve_a_folder_converted_again(organs):
    """After `convert --force` a SliceDataset had served its old slice index and cached volumes."""
    import os

    slices, volumes = SliceDataset("organs3d", axis=2, **organs), ConvertedDataset("organs3d", **organs)
    slices[0], volumes[0]
    marker = _converted(organs) / ".complete"
    fresh = marker.with_name("fresh")
    fresh.write_text(marker.read_text())
    os.replace(fresh, marker)  # what the swap of a new conversion leaves: another .complete
    for dataset in (slices, volumes):
        with pytest.raises(UsageError, match=r"was converted again after this \w+ was created; create it again"):
            dataset[0]
    assert SliceDataset("organs3d", axis=2, **organs)[0]["case_id"] == "organs_001"


@pytest.mark.parametrize("damage", ["truncated", "other shape"])
def test_a_damaged_output_file_is_named_with_the_command_that_checks_it(organs, damage):
    import nibabel as nib

    from omnimedseg.errors import ValidationError

    mask = _converted(organs) / "masks" / "organs_002" / "spleen.nii.gz"
    if damage == "truncated":
        mask.write_bytes(mask.read_bytes()[:60])
        expected = r"spleen\.nii\.gz: not readable \(\w+: .*\); check the conversion with: omnimedseg validate organs3d"
    else:
        nib.save(nib.Nifti1Image(np.zeros((5, 5, 5), np.uint8), np.eye(4)), mask)
        expected = r"spleen\.nii\.gz: shape \(5, 5, 5\), expected \(12, 10, 6\) \(its image's grid\)"
    with pytest.raises(ValidationError, match=expected):
        ConvertedDataset("organs3d", **organs)[1]


def test_slice_transform_sees_the_slice_index_and_may_return_anything(organs):
    slices = SliceDataset("organs3d", axis=2, transform=lambda s: (s["image"], s["slice_index"]), **organs)
    image, index = slices[6 + 4]
    assert index == 4 and image.shape == (1, 12, 10)


def test_a_cache_file_cut_short_is_built_again(organs):
    first = SliceDataset("organs3d", axis=2, **organs)
    expected = first[3]["image"]
    cached = next((organs["root"] / "cache").rglob("organs_001/image.npy"))
    cached.write_bytes(cached.read_bytes()[:200])  # the stamp still matches: only the file is short
    assert torch.equal(SliceDataset("organs3d", axis=2, **organs)[3]["image"], expected)


def test_a_damaged_dataset_json_is_named(organs):
    from omnimedseg.errors import ValidationError

    (_converted(organs) / "dataset.json").write_text('{"cases": [')
    with pytest.raises(ValidationError, match=r"dataset\.json: not readable .*omnimedseg validate organs3d"):
        ConvertedDataset("organs3d", **organs)
