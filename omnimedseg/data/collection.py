"""Many converted datasets as one sample sequence, selected by registry filters.

Each sample is the underlying dataset's dict (docs/data.md) plus the MedSegX indices
of every class, from the MedSegDB label tree:

============  ================================================================
``context``   tuple of :class:`~omnimedseg.data.medsegdb.TaskContext`, one per class
``unmapped``  class names with no MedSegDB task (their context is the unseen-task
              row, ``seen=False``); empty when every class maps. The card's
              ``[medsegdb] tasks`` mapping decides first, name aliases only as fallback;
              :attr:`DatasetCollection.unmapped` gives each unmapped class's reason
============  ================================================================

Volumes (3D datasets) are served as 2D slices (:class:`SliceDataset`) by default,
since MedSegX-style models take 2D inputs; ``slices=False`` keeps whole volumes.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from typing import Callable, Sequence

from omnimedseg.data.datasets import ConvertedDataset, SliceDataset
from omnimedseg.data.medsegdb import LabelTree, TaskContext
from omnimedseg.errors import DatasetNotFoundError, UsageError


@dataclass(frozen=True)
class ClassMapping:
    """How one class of one dataset maps onto the MedSegDB tree."""

    dataset: str
    class_name: str
    context: TaskContext
    reason: str = ""  # why the card gives no MedSegDB task (its medsegdb.unmapped entry)

    @property
    def mapped(self) -> bool:
        return self.context.seen


def select_cards(registry, dataset_ids: Sequence[str] | None = None, *, modality: str | None = None,
                 class_name: str | None = None, dimensionality: int | None = None, licence: str | None = None,
                 platform: str | None = None) -> list:
    """Cards named in ``dataset_ids`` (all when None) that pass every filter."""
    cards = registry.select(modality=modality, dimensionality=dimensionality, licence=licence, platform=platform)
    if dataset_ids is not None:
        wanted = [registry.get(i).id for i in dataset_ids]  # unknown ids raise with the known list
        cards = [c for c in cards if c.id in wanted]
    if class_name is not None:
        cards = [c for c in cards if class_name in c.class_names]
    return cards


class DatasetCollection:
    """Concatenation of converted datasets chosen by registry filters, with MedSegX context.

    Args:
        dataset_ids: restrict to these ids (None: every registered dataset).
        modality, class_name, dimensionality, licence, platform: registry filters.
        missing: ``"error"`` (default) refuses when a selected dataset is not converted;
            ``"skip"`` leaves it out and lists it in ``self.skipped``.
        require_mapped: refuse datasets with classes that have no MedSegDB task.
        slices: serve 3D datasets as 2D slices (``axis``) instead of whole volumes.
        split, labelled_only, root, registry_dirs: passed to every dataset.
        transform: applied to each sample after the context is attached.
    """

    def __init__(self, dataset_ids: Sequence[str] | None = None, *, modality: str | None = None,
                 class_name: str | None = None, dimensionality: int | None = None, licence: str | None = None,
                 platform: str | None = None, split: str | None = None, slices: bool = True, axis: int = 2,
                 missing: str = "error", require_mapped: bool = False, labelled_only: bool = True,
                 root: str | os.PathLike | None = None, registry_dirs: Sequence[str] = (),
                 transform: Callable[[dict], dict] | None = None):
        from omnimedseg.registry import load_registry

        if missing not in ("error", "skip"):
            raise UsageError(f"missing must be 'error' or 'skip', found {missing!r}")
        filters = dict(modality=modality, class_name=class_name, dimensionality=dimensionality, licence=licence,
                       platform=platform)
        cards = select_cards(load_registry(registry_dirs), dataset_ids, **filters)
        if not cards:
            shown = {k: v for k, v in filters.items() if v is not None}
            raise UsageError(f"no registered dataset matches {shown or 'the selection'}"
                             + (f" among {list(dataset_ids)}" if dataset_ids is not None else "")
                             + "; run: omnimedseg list")
        tree = LabelTree.load()
        self.datasets: list[ConvertedDataset] = []
        self.skipped: list[str] = []
        self.mappings: list[ClassMapping] = []
        kwargs = dict(split=split, root=root, registry_dirs=registry_dirs, labelled_only=labelled_only)
        not_converted = []
        for card in cards:
            try:
                if slices and card.dimensionality == 3:
                    dataset = SliceDataset(card.id, axis=axis, **kwargs)
                else:
                    dataset = ConvertedDataset(card.id, **kwargs)
            except DatasetNotFoundError:
                not_converted.append(card.id)
                continue
            except UsageError:
                if split is not None:  # this dataset has no such split: it is simply not selected
                    continue
                raise
            self.datasets.append(dataset)
        if not_converted and missing == "error":
            raise DatasetNotFoundError(
                f"selected dataset(s) {not_converted} are not converted; run: "
                + " && ".join(f"omnimedseg download {i} && omnimedseg convert {i}" for i in not_converted)
                + " (or pass missing='skip')")
        self.skipped = not_converted
        if not self.datasets and not not_converted:
            raise UsageError(f"none of {[c.id for c in cards]} has a split {split!r}; "
                             f"run: omnimedseg info <id> to see its splits")
        self._contexts: list[tuple[TaskContext, ...]] = []
        self._unmapped: list[list[str]] = []
        by_id = {card.id: card for card in cards}
        for dataset in self.datasets:
            card = by_id[dataset.dataset_id]
            tasks = tree.card_tasks(card)
            contexts = tuple(tree.context_for_class(dataset.modality, c, tasks) for c in dataset.class_names)
            self.mappings.extend(ClassMapping(dataset.dataset_id, c, ctx, card.medsegdb_unmapped.get(c, ""))
                                 for c, ctx in zip(dataset.class_names, contexts))
            self._contexts.append(contexts)
            self._unmapped.append([c for c, ctx in zip(dataset.class_names, contexts) if not ctx.seen])
        if require_mapped:
            bad = [f"{m.dataset}:{m.class_name}" for m in self.mappings if not m.mapped]
            if bad:
                raise UsageError(f"classes with no MedSegDB task: {bad}; expected every class to map "
                                 f"(map it in the card's [medsegdb] tasks or pass require_mapped=False)")
        self.transform = transform
        self._ends: list[int] = []
        total = 0
        for dataset in self.datasets:
            total += len(dataset)
            self._ends.append(total)

    @property
    def unmapped(self) -> list[ClassMapping]:
        """Every (dataset, class) that has no MedSegDB task."""
        return [m for m in self.mappings if not m.mapped]

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def locate(self, index: int) -> tuple[int, int]:
        """(dataset position, index inside that dataset) of a collection index."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a collection of {len(self)} samples")
        index %= len(self)
        d = bisect.bisect_right(self._ends, index)
        return d, index - (self._ends[d - 1] if d else 0)

    def __getitem__(self, index: int) -> dict:
        d, i = self.locate(index)
        sample = self.datasets[d][i]
        sample["context"] = self._contexts[d]
        sample["unmapped"] = list(self._unmapped[d])
        return self.transform(sample) if self.transform else sample
