"""MedSegX context rows (modality, three organ levels, task) from a MedSegDB task name.

The label tree itself lives in :mod:`omnimedseg.data.medsegdb` (one copy for the data
layer and the models); this module turns ``<Modality>_<Task>`` names such as
``CT_Liver`` into the ``[modality, level1, level2, level3, task]`` row the image
encoder expects. A task outside the 111 known ones gets the extra unseen-task row.
"""

from __future__ import annotations

from dataclasses import replace

from omnimedseg.data.medsegdb import LabelTree, TaskContext, parse_task_folder
from omnimedseg.errors import UsageError
from omnimedseg.models.errors import ModelError

_TREE = LabelTree.load()
MODALITIES: tuple[str, ...] = tuple(_TREE.modalities)
TASKS: tuple[str, ...] = tuple(_TREE.tasks)
UNSEEN_TASK_INDEX = _TREE.unseen_task


def context_for_task(task_name: str, *, organ_fallback: str | None = None) -> TaskContext:
    """Context row for a ``<Modality>_<Task>`` name such as ``CT_Liver``.

    An unknown task uses the unseen-task row; its organ levels must still be found, so for a
    task outside the organ tree pass ``organ_fallback``, a known task of the same organ
    (cross-task shift in the paper).
    """
    try:
        modality_name, task = parse_task_folder(task_name)
    except UsageError:
        raise ModelError(f"task name {task_name!r} is not '<Modality>_<Task>' (e.g. 'CT_Liver')") from None
    context = _TREE.context(modality_name, task.replace("_", ""))
    if context.modality is None:
        raise ModelError(f"unknown modality {modality_name!r} in {task_name!r}; "
                         f"known: {sorted(_TREE.data['modality_aliases'])}")
    organ = context.organ if context.seen or organ_fallback is None else _TREE.organ_indices(organ_fallback)
    if organ is None:
        raise ModelError(f"task {context.task_name!r} is not in the MedSegDB organ hierarchy; pass "
                         "organ_fallback=<known task of the same organ> (e.g. 'Liver')")
    return replace(context, organ=organ)


def context_tensor(task_names, device=None):
    """(B, 5) LongTensor of context rows for a list of task names or rows (imports torch lazily)."""
    import torch

    rows = [context_for_task(name).as_row() if isinstance(name, str) else list(name) for name in task_names]
    return torch.tensor(rows, dtype=torch.long, device=device)
