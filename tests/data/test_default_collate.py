"""A plain ``torch.utils.data.DataLoader`` (default ``collate_fn``) batches every dataset class of
``omnimedseg.data``: 2D images, 3D volumes, slices, collections and MedSegDB trees, with 0 and
2 workers and batch sizes 1 and 4."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnimedseg.data import ConvertedDataset, SliceDataset
from omnimedseg.data.collection import DatasetCollection
from omnimedseg.data.exports import export_dataset
from omnimedseg.data.medsegdb import MedSegDBDataset
from tests.data.conftest import AFFINE, both, hc18, organs  # noqa: F401  (fixtures)
from tests.data.test_contract_data import brain, fundus, nuclei  # noqa: F401  (fixtures)


def _datasets(both, tmp_path):  # noqa: F811
    hc18_2d = ConvertedDataset("hc18", **both)
    medsegdb = export_dataset("organs3d", "medsegdb", tmp_path / "db", **both).folder
    return {
        "2D images": hc18_2d,
        "3D volumes": ConvertedDataset("organs3d", **both),
        "slices": SliceDataset("organs3d", axis=2, **both),
        "collection of slices": DatasetCollection(["organs3d"], **both),
        "collection of 2D images": DatasetCollection(["hc18"], **both),
        "collection of volumes": DatasetCollection(["organs3d"], slices=False, **both),
        "MedSegDB tree": MedSegDBDataset(medsegdb),
    }


def _check_batch(batch: dict, samples: list[dict]) -> None:
    """Every key is batched: tensors and arrays stacked, strings and numbers listed in order."""
    assert set(batch) == set(samples[0])
    for key, first in samples[0].items():
        value = batch[key]
        if isinstance(first, (torch.Tensor, np.ndarray)):
            expected = torch.stack([torch.as_tensor(s[key]) for s in samples])
            assert torch.equal(value.nan_to_num(-7.0) if value.is_floating_point() else value,
                               expected.nan_to_num(-7.0) if expected.is_floating_point() else expected), key
        elif isinstance(first, str):
            assert value == [s[key] for s in samples], key
        elif isinstance(first, (bool, int, float)):
            assert value.tolist() == [s[key] for s in samples], key
        elif isinstance(first, list):  # class_names: one tuple per position, as default collate transposes
            assert [list(t) for t in zip(*value)] == [s[key] for s in samples], key
        else:
            raise AssertionError(f"{key}: unexpected sample value type {type(first).__name__}")


@pytest.mark.parametrize("num_workers", [0, 2])
def test_default_collate_batches_every_dataset_class(both, tmp_path, num_workers):  # noqa: F811
    for name, dataset in _datasets(both, tmp_path).items():
        for batch_size in (1, 4):
            loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
            seen = 0
            for batch in loader:
                samples = [dataset[seen + b] for b in range(len(batch["case_id"]))]
                _check_batch(batch, samples)
                seen += len(samples)
            assert seen == len(dataset), name


def test_geometry_is_an_array_with_nan_for_unknown(both):  # noqa: F811
    volume = ConvertedDataset("organs3d", **both)[0]
    assert volume["affine"].dtype == np.float64 and np.allclose(volume["affine"], AFFINE)
    assert volume["spacing"].tolist() == pytest.approx([0.8, 0.8, 2.5])
    image = ConvertedDataset("hc18", **both)[0]
    assert image["affine"].shape == (4, 4) and np.isnan(image["affine"]).all()  # PNGs have no world geometry
    assert image["spacing"].shape == (2,) and np.all(image["spacing"] > 0)
    loader = torch.utils.data.DataLoader(ConvertedDataset("hc18", **both), batch_size=3)
    batch = next(iter(loader))
    assert batch["image"].shape == (3, 1, 54, 80) and batch["spacing"].shape == (3, 2)
    assert batch["affine"].shape == (3, 4, 4) and batch["affine"].isnan().all()


@pytest.mark.parametrize("num_workers", [0, 2])
def test_default_collate_with_channels_raters_instances_and_ignore(brain, fundus, nuclei, num_workers):  # noqa: F811
    """Multi-channel volumes (and their slices), several raters with an ignore mask, instance maps."""
    datasets = {
        "channels": ConvertedDataset("brain4d", root=brain["root"], registry_dirs=brain["registry_dirs"]),
        "channel slices": SliceDataset("brain4d", root=brain["root"], registry_dirs=brain["registry_dirs"]),
        "raters": ConvertedDataset("fundus", root=fundus["root"], registry_dirs=fundus["registry_dirs"]),
        "instances": ConvertedDataset("nuclei", root=nuclei["root"], registry_dirs=nuclei["registry_dirs"]),
    }
    for name, dataset in datasets.items():
        for batch_size in (1, 4):
            seen = 0
            for batch in torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers):
                samples = [dataset[seen + b] for b in range(len(batch["case_id"]))]
                _check_batch(batch, samples)
                seen += len(samples)
            assert seen == len(dataset), name
