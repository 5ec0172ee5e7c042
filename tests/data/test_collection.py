"""DatasetCollection: registry filters, concatenation and MedSegDB context per class."""

from __future__ import annotations

import pytest
import torch

from omnimedseg.data.collection import DatasetCollection
from omnimedseg.data.medsegdb import LabelTree
from omnimedseg.errors import DatasetNotFoundError, RegistryError, UsageError


def test_filters_select_datasets_and_samples_carry_context(both):
    everything = DatasetCollection(["hc18", "organs3d"], **both)
    assert [d.dataset_id for d in everything.datasets] == ["hc18", "organs3d"]
    assert len(everything) == 3 + 2 * 6  # hc18 train images + organs3d axial slices
    ct = DatasetCollection(modality="ct", missing="skip", **both)  # other CT cards: not converted here
    assert [d.dataset_id for d in ct.datasets] == ["organs3d"] and len(ct) == 12
    sample = ct[4]
    assert sample["dataset"] == "organs3d" and sample["slice_index"] == 4 and sample["image"].shape == (1, 12, 10)
    tree = LabelTree.load()
    liver, spleen = sample["context"]
    assert (liver.task, liver.organ, liver.modality) == (tree.tasks.index("Liver"), (1, 4, 17), tree.modalities.index("CT"))
    assert spleen.task_name == "Spleen" and spleen.seen and sample["unmapped"] == []
    assert torch.equal(sample["masks"][1], ct.datasets[0][4]["masks"][1])

    assert [d.dataset_id for d in DatasetCollection(class_name="spleen", missing="skip", **both).datasets] == ["organs3d"]
    assert [d.dataset_id for d in DatasetCollection(dimensionality=2, missing="skip", **both).datasets] == ["hc18"]
    volumes = DatasetCollection(["organs3d"], slices=False, **both)
    assert len(volumes) == 2 and volumes[-1]["image"].shape == (1, 12, 10, 6)


def test_unmapped_classes_say_so(both):
    hc = DatasetCollection(["hc18"], **both)
    sample = hc[0]
    (ctx,) = sample["context"]
    assert sample["unmapped"] == ["fetal_head"] and not ctx.seen and ctx.organ is None
    assert ctx.task == LabelTree.load().unseen_task and ctx.modality_name == "US"
    assert [(m.dataset, m.class_name) for m in hc.unmapped] == [("hc18", "fetal_head")]
    with pytest.raises(UsageError, match=r"no MedSegDB task: \['hc18:fetal_head'\]"):
        DatasetCollection(["hc18"], require_mapped=True, **both)


def test_selection_errors_name_the_fix(both, organs, hc18):
    with pytest.raises(UsageError, match=r"no registered dataset matches \{'class_name': 'no_such_class'\}; "
                                         r"run: omnimedseg list"):
        DatasetCollection(class_name="no_such_class", **both)
    with pytest.raises(RegistryError, match="unknown dataset 'nope'"):
        DatasetCollection(["nope"], **both)
    empty_root = dict(organs, root=organs["root"].parent / "empty")
    with pytest.raises(DatasetNotFoundError, match=r"\['hc18', 'organs3d'\] are not converted; run: omnimedseg "
                                                   r"download hc18 && omnimedseg convert hc18 && "):
        DatasetCollection(["hc18", "organs3d"], **empty_root)
    # organs3d is not converted under hc18's root
    partial = DatasetCollection(["hc18", "organs3d"], missing="skip", **dict(organs, root=hc18["root"]))
    assert partial.skipped == ["organs3d"] and [d.dataset_id for d in partial.datasets] == ["hc18"]
    test_only = DatasetCollection(split="test", labelled_only=False, missing="skip", **both)
    assert [d.dataset_id for d in test_only.datasets] == ["hc18"] and len(test_only) == 2
    with pytest.raises(IndexError):
        test_only[2]


def test_card_medsegdb_mapping_comes_before_aliases(organs):
    card = organs["registry_dirs"][0] + "/organs3d.toml"
    text = open(card).read()
    start = text.index("[medsegdb]")
    end = text.index("\n[", start + 1)

    def remap(block: str) -> None:
        with open(card, "w") as fh:
            fh.write(text[:start] + block + text[end:])

    tree = LabelTree.load()
    # "liver" would map to Liver by its name; the card says LiverCancer, and spleen has a stated reason
    remap('[medsegdb]\ntasks = { liver = "LiverCancer" }\nunmapped = { spleen = "scanned outside the tree" }\n')
    collection = DatasetCollection(["organs3d"], **organs)
    liver, spleen = collection[0]["context"]
    assert liver.task == tree.tasks.index("LiverCancer") and liver.seen
    assert not spleen.seen and spleen.task == tree.unseen_task  # the card's word beats the Spleen alias
    assert [(m.class_name, m.reason) for m in collection.unmapped] == [("spleen", "scanned outside the tree")]

    remap('[medsegdb]\ntasks = { liver = "Livr", spleen = "Spleen" }\n')
    with pytest.raises(UsageError, match=r"organs3d\.toml: \[medsegdb\] tasks \{'liver': 'Livr'\} are not tasks"):
        DatasetCollection(["organs3d"], **organs)
