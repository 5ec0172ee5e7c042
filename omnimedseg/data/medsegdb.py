"""MedSegDB: the label tree MedSegX is indexed by, and its npy on-disk layout.

The tree (``medsegdb_hierarchy.json``, from the MedSegX reference code, Apache-2.0)
orders 10 modalities, three organ levels and 111 tasks exactly as the rows of the
model's embedding tables. :class:`LabelTree` turns a modality and a class name into
those row indices; the unseen-task row is the extra last one.

Layout (import and export)::

    ID/<dataset>/<Modality_Task>/[<sequence>/]{npy_imgs,npy_gts}/casenum_<case>_sliceid_<k>.npy
    OOD|RealWorld/<cross_site|cross_task>/<Modality_Task>/<dataset>/[<sequence>/]
        {inference,finetune/<NNN>_percent}/{npy_imgs,npy_gts}/...

Images are uint8 (256, 256, 3); labels uint8 (256, 256) in {0, 1}.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from omnimedseg.errors import DatasetNotFoundError, UsageError

# Our modality vocabulary -> MedSegDB's. Microscopy and OCT have no MedSegDB modality.
MODALITY_TO_MEDSEGDB = {"CT": "CT", "MRI": "MRI", "X-ray": "Xray", "ultrasound": "US", "fundus": "Fundus",
                        "endoscopy": "Endos", "dermoscopy": "Dermos"}
# Class names whose CamelCase form differs from the MedSegDB task name.
CLASS_ALIASES = {"gallbladder": "GallBladder", "covid_19": "COVID", "gtv_nx": "GTVnx", "gtv_nd": "GTVnd",
                 "lesion": "Skin", "skin_lesion": "Skin", "prostate_tumour": "ProstateTumor",
                 "kidney_tumour": "KidneyTumor", "femur": "FemurBone", "tibia": "TibiaBone"}
LEVELS = ("level1", "level2", "level3")


@dataclass(frozen=True)
class TaskContext:
    """Embedding-row indices of one (modality, task) for MedSegX; ``None`` = not in the tree."""

    modality: int | None
    organ: tuple[int, int, int] | None  # level 1..3 rows (level 0 is the single root row)
    task: int  # row of the task table; len(task_order) is the unseen-task row
    modality_name: str | None
    task_name: str
    seen: bool

    @property
    def complete(self) -> bool:
        return self.modality is not None and self.organ is not None

    def as_row(self) -> list[int]:
        """``[modality, level1, level2, level3, task]``: the row MedSegX's encoder takes."""
        if not self.complete:
            raise UsageError(f"task {self.task_name!r} ({self.modality_name}) has no complete MedSegX context: "
                             f"modality row {self.modality}, organ rows {self.organ}")
        return [self.modality, *self.organ, self.task]


class LabelTree:
    def __init__(self, data: dict):
        self.data = data
        self.modalities: list[str] = data["modality_order"]
        self.tasks: list[str] = data["task_order"]
        self.unseen_task = len(self.tasks)

    @classmethod
    @lru_cache(maxsize=1)
    def load(cls) -> "LabelTree":
        text = resources.files("omnimedseg.data").joinpath("medsegdb_hierarchy.json").read_text()
        return cls(json.loads(text))

    def modality_index(self, name: str) -> int | None:
        """Row of a MedSegDB modality or alias ("Dermoscopy", "xray"...), or of one of ours ("X-ray")."""
        canonical = self.data["modality_aliases"].get(name) or self.data["modality_aliases"].get(
            MODALITY_TO_MEDSEGDB.get(name, ""))
        return self.modalities.index(canonical) if canonical in self.modalities else None

    def organ_indices(self, task: str) -> tuple[int, int, int] | None:
        found = []
        for level in LEVELS:
            groups = self.data[f"{level}_groups"]
            row = next((self.data[f"{level}_order"].index(g) for g, members in groups.items() if task in members), None)
            if row is None:
                return None
            found.append(row)
        return tuple(found)

    def context(self, modality: str, task: str, unseen: bool = False) -> TaskContext:
        """Indices for ``task`` (a MedSegDB task name); ``unseen`` forces the unseen-task row."""
        task = re.sub(r"\d+$", "", task)  # spine levels: CervicalSpine3 -> CervicalSpine
        seen = task in self.tasks and not unseen
        m = self.modality_index(modality)
        return TaskContext(modality=m, organ=self.organ_indices(task),
                           task=self.tasks.index(task) if seen else self.unseen_task,
                           modality_name=self.modalities[m] if m is not None else None, task_name=task, seen=seen)

    def task_for_class(self, class_name: str) -> str | None:
        """MedSegDB task name of one of our snake_case class names, or None when unmapped."""
        name = CLASS_ALIASES.get(class_name) or "".join(p.capitalize() for p in class_name.split("_"))
        return name if name in self.tasks or self.organ_indices(name) is not None else None

    def card_tasks(self, card) -> dict[str, str | None]:
        """A card's ``[medsegdb]``: class -> MedSegDB task, ``None`` for its ``unmapped`` classes.

        Every task is checked against the tree; a task the tree lacks is an error naming the card.
        """
        strangers = {c: t for c, t in card.medsegdb_tasks.items() if re.sub(r"\d+$", "", t) not in self.tasks}
        if strangers:
            raise UsageError(f"{card.path}: [medsegdb] tasks {strangers} are not tasks of the MedSegDB label tree; "
                             f"expected names from task_order in omnimedseg/data/medsegdb_hierarchy.json "
                             f"(e.g. Liver, Kidney) or list the class under medsegdb.unmapped")
        return {**dict.fromkeys(card.medsegdb_unmapped), **card.medsegdb_tasks}

    def context_for_class(self, modality: str, class_name: str,
                          tasks: Mapping[str, str | None] | None = None) -> TaskContext:
        """Context of a registry class: the card's mapping (:meth:`card_tasks`) first, aliases only as
        fallback; unmapped classes get the unseen-task row and say so."""
        task = tasks[class_name] if tasks and class_name in tasks else self.task_for_class(class_name)
        return self.context(modality, task if task is not None else class_name, unseen=task is None)


def dataset_tasks(dataset_id: str, registry_dirs: Sequence[str] = ()) -> dict[str, str | None]:
    """:meth:`LabelTree.card_tasks` of a registered dataset."""
    from omnimedseg.registry import load_registry

    return LabelTree.load().card_tasks(load_registry(registry_dirs).get(dataset_id))


def parse_task_folder(name: str) -> tuple[str, str]:
    """'MRI_ProstatePeripheralZone' -> ('MRI', 'ProstatePeripheralZone')."""
    modality, sep, task = name.partition("_")
    if not sep or not task:
        raise UsageError(f"MedSegDB task folder {name!r}: expected '<Modality>_<Task>'")
    return modality, task


_SLICE = re.compile(r"^casenum_(?P<case>.+)_sliceid_(?P<slice>\d+)\.npy$")


@dataclass(frozen=True)
class MedSegDBItem:
    image: Path
    label: Path
    group: str  # ID, OOD or RealWorld
    shift: str | None  # cross_site / cross_task for OOD and RealWorld
    dataset: str
    modality: str
    task: str
    sequence: str | None
    case: str
    slice_index: int
    stage: str | None = None  # OOD/RealWorld: "inference" or "finetune/<NNN>_percent"


def scan_medsegdb(root: Path) -> list[MedSegDBItem]:
    """Every image/label pair under a MedSegDB tree, with its metadata from the folder names."""
    root = Path(root)
    items = []
    for image in sorted(root.rglob("npy_imgs/*.npy")):
        match = _SLICE.match(image.name)
        parts = image.relative_to(root).parts[:-2]
        if match is None:
            raise UsageError(f"{image}: expected a file named casenum_<case>_sliceid_<k>.npy")
        label = image.parent.parent / "npy_gts" / image.name
        if not label.is_file():
            raise DatasetNotFoundError(f"{label}: missing label for {image}")
        group = next((p for p in parts if p in ("ID", "OOD", "RealWorld")), None)
        if group is None:
            raise UsageError(f"{image}: expected a path below an ID, OOD or RealWorld folder")
        rest = list(parts[parts.index(group) + 1:])
        if group == "ID":  # <dataset>/<Modality_Task>/[<sequence>]
            dataset, task_folder, *tail = rest
            shift = stage = None
        else:  # <shift>/<Modality_Task>/<dataset>/[<sequence>]/{inference|finetune/<pct>}
            shift, task_folder, dataset, *tail = rest
            stage = "/".join(p for p in tail if p in ("inference", "finetune") or p.endswith("_percent")) or None
            tail = [p for p in tail if p != "inference" and p != "finetune" and not p.endswith("_percent")]
        modality, task = parse_task_folder(task_folder)
        items.append(MedSegDBItem(image=image, label=label, group=group, shift=shift, dataset=dataset,
                                  modality=modality, task=task, sequence=tail[0] if tail else None,
                                  case=match["case"], slice_index=int(match["slice"]), stage=stage))
    return items


class MedSegDBDataset:
    """MedSegDB npy slices as dict samples with MedSegX context indices.

    Cross-task items (``shift == 'cross_task'``) use the unseen-task row, as the
    reference evaluation does.
    """

    def __init__(self, root: str | Path, transform=None):
        self.items = scan_medsegdb(Path(root))
        if not self.items:
            raise DatasetNotFoundError(f"{root}: no MedSegDB npy_imgs/*.npy files found")
        self.tree = LabelTree.load()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        import torch

        item = self.items[index]
        image, label = np.load(item.image), np.load(item.label)
        ctx = self.tree.context(item.modality, item.task, unseen=item.shift == "cross_task")
        sample = {
            "image": torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0), dtype=np.float32)),
            "masks": torch.from_numpy(label[None] > 0),
            "labelled": True,
            "class_names": [item.task],
            "case_id": f"{item.case}_slice{item.slice_index}",
            "spacing": None,
            "affine": None,
            "modality": item.modality,
            "dataset": item.dataset,
            "split": item.group if item.shift is None else f"{item.group}/{item.shift}",
            "context": ctx,
        }
        return self.transform(sample) if self.transform else sample


def export_medsegdb(dataset, out: Path, size: int = 256, group: str = "ID") -> int:
    """Write a ConvertedDataset / SliceDataset into the MedSegDB layout; returns files written.

    One npy pair per image (2D) or slice (3D) and per class present in it; classes with
    no MedSegDB task are written under their CamelCase name (their context is unseen).
    """
    from omnimedseg.data.preprocessing import model_input

    tree = LabelTree.load()
    modality = MODALITY_TO_MEDSEGDB.get(dataset.modality)
    if modality is None:
        raise UsageError(f"{dataset.dataset_id}: modality {dataset.modality!r} has no MedSegDB equivalent "
                         f"(MedSegDB has {', '.join(tree.modalities)})")
    written = 0
    for i in range(len(dataset)):
        case, image, masks, _ = dataset.raw_item(i)
        for c, class_name in enumerate(dataset.class_names):
            if not masks[c].any():
                continue
            task = tree.task_for_class(class_name) or "".join(p.capitalize() for p in class_name.split("_"))
            rgb, small = model_input(image, masks[c], dataset.modality, size)
            folder = Path(out) / group / dataset.dataset_id / f"{modality}_{task}"
            stem = f"casenum_{case['case_id']}_sliceid_{case.get('slice_index', 0)}.npy"
            for sub, array in (("npy_imgs", rgb), ("npy_gts", small.astype(np.uint8))):
                (folder / sub).mkdir(parents=True, exist_ok=True)
                np.save(folder / sub / stem, array)
            written += 1
    return written
