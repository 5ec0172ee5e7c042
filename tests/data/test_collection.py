"""DatasetCollection: registry filters, concatenation and MedSegDB context per class."""

from __future__ import annotations

import pytest
import torch

from omnimedseg.data.collection import DatasetCollection
from omnimedseg.data.medsegdb import LabelTree
from omnimedseg.errors import DatasetNotFoundError, RegistryError, UsageError


def test_filters_select_datasets_and_samples_carry_context(both):
    everything = DatasetCollection(**both)
    assert [d.dataset_id for d in everything.datasets] == ["hc18", "organs3d"]
    assert len(everything) == 3 + 2 * 6  # hc18 train images + organs3d axial slices
    ct = DatasetCollection(modality="ct", **both)
    assert [d.dataset_id for d in ct.datasets] == ["organs3d"] and len(ct) == 12
    sample = ct[4]
    assert sample["dataset"] == "organs3d" and sample["slice_index"] == 4 and sample["image"].shape == (1, 12, 10)
    tree = LabelTree.load()
    liver, spleen = ct.contexts(4)
    assert (liver.task, liver.organ, liver.modality) == (tree.tasks.index("Liver"), (1, 4, 17), tree.modalities.index("CT"))
    assert spleen.task_name == "Spleen" and spleen.seen and sample["mapped"].tolist() == [True, True]
    assert sample["context"].tolist() == [liver.as_row(), spleen.as_row()]
    assert torch.equal(sample["masks"][1], ct.datasets[0][4]["masks"][1])

    assert [d.dataset_id for d in DatasetCollection(class_name="spleen", **both).datasets] == ["organs3d"]
    assert [d.dataset_id for d in DatasetCollection(dimensionality=2, **both).datasets] == ["hc18"]
    volumes = DatasetCollection(["organs3d"], slices=False, **both)
    assert len(volumes) == 2 and volumes[-1]["image"].shape == (1, 12, 10, 6)


def test_unmapped_classes_say_so(both):
    hc = DatasetCollection(["hc18"], **both)
    sample = hc[0]
    (ctx,) = hc.contexts(0)
    assert sample["mapped"].tolist() == [False] and not ctx.seen and ctx.organ is None
    # unknown organ rows are -1 in the tensor form, the task is the unseen-task row
    assert sample["context"].tolist() == [[ctx.modality, -1, -1, -1, LabelTree.load().unseen_task]]
    assert ctx.task == LabelTree.load().unseen_task and ctx.modality_name == "US"
    assert [(m.dataset, m.class_name) for m in hc.unmapped] == [("hc18", "fetal_head")]
    with pytest.raises(UsageError, match=r"no MedSegDB task: \['hc18:fetal_head'\]"):
        DatasetCollection(["hc18"], require_mapped=True, **both)


def test_selection_errors_name_the_fix(both, organs, hc18):
    with pytest.raises(UsageError, match=r"no registered dataset matches \{'modality': 'MRI'\}; run: omnimedseg list"):
        DatasetCollection(modality="MRI", **both)
    with pytest.raises(RegistryError, match="unknown dataset 'nope'"):
        DatasetCollection(["nope"], **both)
    empty_root = dict(organs, root=organs["root"].parent / "empty")
    with pytest.raises(DatasetNotFoundError, match=r"\['hc18', 'organs3d'\] are not converted; run: omnimedseg "
                                                   r"download hc18 && omnimedseg convert hc18 && "):
        DatasetCollection(**empty_root)
    partial = DatasetCollection(missing="skip", **dict(organs, root=hc18["root"]))  # organs3d is not converted there
    assert partial.skipped == ["organs3d"] and [d.dataset_id for d in partial.datasets] == ["hc18"]
    test_only = DatasetCollection(split="test", labelled_only=False, **both)
    assert [d.dataset_id for d in test_only.datasets] == ["hc18"] and len(test_only) == 2
    with pytest.raises(IndexError):
        test_only[2]
