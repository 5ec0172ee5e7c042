"""MedSegX training: box-prompted samples, the reference loss, schedule, loop, checkpoints, DDP.

The recipe is the reference code's (shared/reference/medsegx/README.md): SAM's image and prompt
encoders frozen, adapters + context embeddings + mask decoder trained with Dice (squared
prediction) + BCE per mask, minimum over the three masks, AdamW (weight decay 0.01). Checkpoints
hold exactly the MedSegX format, ``{"model": <trainable tensors under their official names>,
...}``, so ``build_model(config, sam_checkpoint, medsegx_checkpoint=path)`` loads them, plus what
an exact resume needs (optimizer, scheduler, scaler, step, RNG state).

Randomness: sample order comes from ``DistributedSampler(seed=...)`` and each box perturbation
from ``numpy.random.default_rng([seed, epoch, index])``, so data does not depend on the number
of workers or processes and no global data RNG is used. Only the adapters' expert dropout draws
from torch's global RNG, which is seeded per rank and saved in checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from omnimedseg.data.medsegdb import MODALITY_TO_MEDSEGDB, LabelTree, MedSegDBDataset, TaskContext, dataset_tasks
from omnimedseg.data.preprocessing import box_from_mask, model_input, resize_mask
from omnimedseg.files import atomic_write_text
from omnimedseg.models.checkpoints import read_checkpoint
from omnimedseg.models.config import ModelConfig
from omnimedseg.models.errors import CheckpointError, ModelError
from omnimedseg.models.inference import autocast_context, resolve_autocast_dtype
from omnimedseg.models.sam import Sam

#: Reference training prompt: each box side pushed outward by 0..19 px (``randint(0, 20)``).
TRAIN_BOX_SHIFT = 19
#: MedSegDB slices (and the reference evaluation) are 256 x 256.
MEDSEGDB_SIZE = 256
SCHEDULES = ("constant", "cosine")
CHECKPOINT_NAME = "model_latest.pth"
#: Settings a resumed run must keep: they decide the order and content of the remaining batches.
RESUME_FIXED = ("batch_size", "accumulate", "seed", "subset_percent", "box_shift")
LOG_NAME = "train_log.jsonl"

#: Defaults of the reference scripts (one GPU for pretraining: lr 1e-4 at batch 128).
RECIPES: dict[str, dict[str, Any]] = {
    "pretrain": dict(lr=1e-4, batch_size=128, epochs=30, weight_decay=0.01),
    "finetune": dict(lr=5e-5, batch_size=64, epochs=30, weight_decay=0.01),
}


# -- samples -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Entry:
    index: int  # sample of the wrapped dataset
    channel: int  # class (mask row) of that sample
    group: tuple  # unit of subset selection: one case


class PromptedSamples:
    """Our dict samples as MedSegX inputs: one item per (image, labelled class).

    Wraps a :class:`~omnimedseg.data.ConvertedDataset` (2D), :class:`~omnimedseg.data.SliceDataset`,
    :class:`~omnimedseg.data.collection.DatasetCollection` or
    :class:`~omnimedseg.data.medsegdb.MedSegDBDataset`. Each item is a dict: ``image`` uint8
    (3, size, size), ``mask`` bool (size, size), ``box`` float32 (x0, y0, x1, y1) in those pixels,
    ``context`` int64 [modality, level1, level2, level3, task], ``position`` (int, for
    :meth:`describe`). Images go through :func:`~omnimedseg.data.preprocessing.model_input`; the
    box is the tight label box, pushed out by ``0..box_shift`` px per side when ``box_shift > 0``
    (training), drawn from ``default_rng([seed, epoch, position])``.

    Classes whose resized mask is empty or whose MedSegDB context is incomplete (modality or
    organ unknown) are left out and counted in ``skipped``; ``require_context=False`` keeps the
    latter with a ``-1`` context row, for models without ConMoAE (SAM, MedSAM). MedSegDB trees are not scanned
    (each slice is one labelled class by construction), so huge trees open instantly.
    """

    def __init__(self, dataset, *, size: int = MEDSEGDB_SIZE, box_shift: int = 0, seed: int = 0,
                 require_context: bool = True, entries: Sequence[_Entry] | None = None):
        self.dataset, self.size, self.box_shift, self.seed = dataset, size, box_shift, seed
        self.require_context = require_context
        self.epoch = 0
        self.tree = LabelTree.load()
        self._contexts: dict[str, list[TaskContext]] = {}
        self.skipped: list[str] = []
        self.entries: list[_Entry] = list(entries) if entries is not None else self._scan()
        if not self.entries:
            raise ModelError(f"no usable labelled image in {type(dataset).__name__} "
                             f"({len(self.skipped)} class(es) skipped: {self.skipped[:5]})")

    # The wrapped dataset's raw access: stored dtype (so model_input applies the modality rule).
    def _leaf(self, index: int):
        dataset = self.dataset
        while hasattr(dataset, "locate") and hasattr(dataset, "datasets"):  # DatasetCollection
            d, index = dataset.locate(index)
            dataset = dataset.datasets[d]
        return dataset, index

    def _raw(self, index: int) -> tuple[np.ndarray, np.ndarray, list[TaskContext], dict]:
        """(image as stored, bool masks (n, H, W), one context per class, description)."""
        dataset, index = self._leaf(index)
        if isinstance(dataset, MedSegDBDataset):
            item = dataset.items[index]
            sample = dataset[index]
            # MedSegDB images are uint8 by definition of the layout: the cast is lossless.
            image = sample["image"].permute(1, 2, 0).numpy().astype(np.uint8)
            return image, sample["masks"].numpy(), [dataset.context(index)], _medsegdb_meta(item)
        if not hasattr(dataset, "raw_item"):
            raise ModelError(f"cannot read {type(dataset).__name__}: expected a ConvertedDataset, SliceDataset, "
                             "DatasetCollection or MedSegDBDataset")
        if getattr(dataset, "dimensionality", 2) == 3 and not hasattr(dataset, "axis"):
            raise ModelError(f"{dataset.dataset_id} holds 3D volumes; MedSegX takes 2D slices: use "
                             "SliceDataset (or DatasetCollection with slices=True)")
        _, image, masks, _ = dataset.raw_item(index)
        return image, masks, *self._converted_meta(dataset, index)

    def _converted_meta(self, dataset, index: int) -> tuple[list[TaskContext], dict]:
        """Contexts and description of a converted sample without reading its pixels."""
        if hasattr(dataset, "index"):  # SliceDataset: (case, slice)
            case_index, slice_index = dataset.index[index]
            case, stem = dataset.cases[case_index], f"{dataset.cases[case_index]['case_id']}_slice{slice_index}"
        else:
            case = dataset.cases[index]
            stem = case["case_id"]
        contexts = self._contexts.get(dataset.dataset_id)
        if contexts is None:
            tasks = dataset_tasks(dataset.dataset_id, getattr(dataset, "registry_dirs", ()))
            contexts = [self.tree.context_for_class(dataset.modality, c, tasks) for c in dataset.class_names]
            self._contexts[dataset.dataset_id] = contexts
        modality = MODALITY_TO_MEDSEGDB.get(dataset.modality, dataset.modality)
        meta = {"group": "converted", "shift": None, "dataset": dataset.dataset_id, "sequence": None,
                "tasks": [f"{modality}_{ctx.task_name}" for ctx in contexts], "stem": stem,
                "case_id": case["case_id"], "modality": dataset.modality, "class_names": list(dataset.class_names)}
        return contexts, meta

    def _scan(self) -> list[_Entry]:
        if isinstance(self.dataset, MedSegDBDataset):
            return [_Entry(i, 0, (it.group, it.shift, it.dataset, it.modality, it.task, it.sequence, it.case))
                    for i, it in enumerate(self.dataset.items)]
        entries = []
        for i in range(len(self.dataset)):
            _, masks, contexts, meta = self._raw(i)
            for c, ctx in enumerate(contexts):
                name = f"{meta['dataset']}:{meta['stem']}:{meta['class_names'][c]}"
                if not masks[c].any():
                    continue
                if self.require_context and not ctx.complete:
                    self.skipped.append(f"{name} (no MedSegDB context)")
                elif not resize_mask(masks[c], self.size).any():
                    self.skipped.append(f"{name} (vanishes at {self.size} px)")
                else:
                    entries.append(_Entry(i, c, (meta["dataset"], meta["case_id"])))
        return entries

    # -- selection ---------------------------------------------------------------------
    def subset(self, percent: float, seed: int | None = None) -> "PromptedSamples":
        """The first ``percent`` % of the cases in a seeded order (5 % is inside 15 %, ...).

        Cases, not slices, are drawn, so a case is never split between kept and left out.
        """
        if not 0 < percent <= 100:
            raise ModelError(f"subset percent must be in (0, 100], got {percent}")
        groups = sorted({e.group for e in self.entries}, key=repr)
        order = np.random.default_rng(self.seed if seed is None else seed).permutation(len(groups))
        keep = {groups[i] for i in order[: max(1, round(len(groups) * percent / 100))]}
        return self.with_options(entries=[e for e in self.entries if e.group in keep])

    def _medsegdb_part(self, entry: _Entry) -> str | None:
        """``"inference"``, ``"finetune/<NNN>_percent"`` or None (ID files) for MedSegDB entries."""
        dataset, j = self._leaf(entry.index)
        if not isinstance(dataset, MedSegDBDataset):
            return None
        parts = dataset.items[j].image.parts
        if "inference" in parts:
            return "inference"
        if "finetune" in parts:
            k = parts.index("finetune")
            return "/".join(parts[k:k + 2])
        return None

    def for_evaluation(self) -> "PromptedSamples":
        """Without MedSegDB ``finetune/`` files: external data is evaluated on ``inference/`` only."""
        return self.with_options(entries=[e for e in self.entries
                                          if not (self._medsegdb_part(e) or "").startswith("finetune")])

    def for_training(self, percent: float = 100.0, seed: int | None = None) -> "PromptedSamples":
        """Without MedSegDB ``inference/`` files; ``percent`` picks the tree's own
        ``finetune/<NNN>_percent`` folder when it has finetune folders, else :meth:`subset`."""
        parts = {e: self._medsegdb_part(e) for e in self.entries}
        entries = [e for e in self.entries if parts[e] != "inference"]
        finetune = {p for p in parts.values() if p and p.startswith("finetune")}
        if finetune:
            wanted = f"finetune/{int(round(percent)):03d}_percent"
            if wanted not in finetune:
                raise ModelError(f"no {wanted} folder in this MedSegDB tree; it has {sorted(finetune)}")
            return self.with_options(entries=[e for e in entries if parts[e] in (None, wanted)])
        if not entries:
            raise ModelError("this MedSegDB tree holds only inference/ files, which are never trained on")
        chosen = self.with_options(entries=entries)
        return chosen if percent >= 100 else chosen.subset(percent, seed)

    def with_options(self, **changes) -> "PromptedSamples":
        """A copy with other ``size``/``box_shift``/``seed``/``entries`` (no rescan)."""
        options = dict(size=self.size, box_shift=self.box_shift, seed=self.seed,
                       require_context=self.require_context, entries=self.entries)
        return PromptedSamples(self.dataset, **{**options, **changes})

    def set_epoch(self, epoch: int) -> None:
        """New box perturbations per epoch (as ``DistributedSampler.set_epoch``)."""
        self.epoch = epoch

    # -- items -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.entries)

    def describe(self, position: int) -> dict:
        """Where item ``position`` comes from: group, shift, dataset, task, sequence, file name."""
        entry = self.entries[position]
        dataset, j = self._leaf(entry.index)
        if isinstance(dataset, MedSegDBDataset):
            return _medsegdb_meta(dataset.items[j])
        _, meta = self._converted_meta(dataset, j)
        name = meta["class_names"][entry.channel]
        task = meta["tasks"][entry.channel]
        return {"group": "converted", "shift": None, "dataset": meta["dataset"], "task": task, "sequence": None,
                "file": f"{meta['dataset']}/{task}/{meta['stem']}_{name}"}

    def __getitem__(self, position: int) -> dict:
        entry = self.entries[position]
        image, masks, contexts, meta = self._raw(entry.index)
        context = contexts[entry.channel]
        modality = meta.get("modality", "RGB")
        rgb, mask = model_input(image, masks[entry.channel], modality, self.size)
        if not mask.any():
            raise ModelError(f"{meta.get('file', meta.get('stem'))}: label is empty at {self.size} px; "
                             "a box prompt needs foreground")
        rng = np.random.default_rng([self.seed, self.epoch, position]) if self.box_shift > 0 else None
        box = box_from_mask(mask, self.box_shift, rng)
        return {"image": torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))),
                "mask": torch.from_numpy(np.array(mask, dtype=bool)),
                "box": torch.from_numpy(box.astype(np.float32)),
                # -1 row: no MedSegX context (allowed only with require_context=False, for plain SAM)
                "context": torch.tensor(context.as_row() if context.complete else [-1] * 5, dtype=torch.long),
                "position": position}


def _medsegdb_meta(item) -> dict:
    """Reference naming: File = label path below ID/ or <group>/<shift>/, minus npy_gts/ and inference/."""
    parts = item.label.parts
    start = parts.index(item.group) + (1 if item.shift is None else 2)
    file = "/".join(p for p in parts[start:] if p not in ("npy_gts", "inference"))
    return {"group": item.group, "shift": item.shift, "dataset": item.dataset, "task": f"{item.modality}_{item.task}",
            "sequence": item.sequence, "file": file, "modality": item.modality, "stem": file}


# -- loss ----------------------------------------------------------------------------------
def per_mask_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """(B, M) Dice (squared prediction, as MONAI's ``squared_pred=True``) + BCE of each mask."""
    logits = logits.float()
    target = target.float().reshape(target.shape[0], 1, *logits.shape[-2:]).expand_as(logits)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum(dim=(-2, -1))
    denom = (prob * prob).sum(dim=(-2, -1)) + (target * target).sum(dim=(-2, -1))
    dice = 1.0 - (2.0 * inter + smooth) / (denom + smooth)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(-2, -1))
    return dice + bce


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Reference loss: per-mask Dice + BCE, minimum over the masks, mean over the batch."""
    return per_mask_loss(logits, target).min(dim=1).values.mean()


# -- schedule ------------------------------------------------------------------------------
def lr_factor(step: int, total_steps: int, schedule: str = "constant", warmup_steps: int = 0,
              min_ratio: float = 0.0) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based).

    ``constant`` is the reference scripts' (no scheduler); ``cosine`` decays to ``min_ratio``
    after a linear warm-up; both warm up linearly over ``warmup_steps``.
    """
    if schedule not in SCHEDULES:
        raise ModelError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# -- configuration -------------------------------------------------------------------------
@dataclass
class TrainConfig:
    """Everything a run needs besides model and data; saved in each checkpoint.

    ``batch_size`` is per process and micro-batch; the effective batch is
    ``batch_size * accumulate * world_size``. ``max_steps`` (optimizer steps), when given, replaces
    ``epochs`` as the length of the run (and of the cosine schedule).
    ``save_every`` (optimizer steps, 0: at the end of each epoch) writes ``model_latest.pth``.
    """

    lr: float = 1e-4
    weight_decay: float = 0.01
    batch_size: int = 8
    accumulate: int = 1
    epochs: int = 1
    max_steps: int | None = None
    schedule: str = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    amp: str | None = None
    grad_clip: float | None = None
    box_shift: int = TRAIN_BOX_SHIFT
    seed: int = 2025
    subset_percent: float = 100.0
    num_workers: int = 0
    save_every: int = 0
    compile: bool = False

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ModelError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.batch_size < 1 or self.accumulate < 1 or self.epochs < 1:
            raise ModelError("batch_size, accumulate and epochs must be >= 1")
        resolve_autocast_dtype(self.amp)

    @classmethod
    def recipe(cls, name: str, **changes: Any) -> "TrainConfig":
        """``pretrain`` or ``finetune`` defaults of the reference scripts, with changes."""
        if name not in RECIPES:
            raise ModelError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
        return cls(**{**RECIPES[name], **changes})


@dataclass
class TrainResult:
    steps: int
    epochs_done: int
    losses: list[float] = field(default_factory=list)  # one per optimizer step of this call
    checkpoint: Path | None = None
    seconds: float = 0.0
    images: int = 0  # labelled images trained on (after subset selection), all ranks together


# -- distributed ---------------------------------------------------------------------------
def distributed_info() -> tuple[int, int]:
    """(rank, world size); (0, 1) when ``torch.distributed`` is not initialised."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: str | None = None) -> torch.device:
    """Join the process group torchrun describes (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``).

    NCCL with one GPU per local rank when CUDA is used, gloo otherwise. Without torchrun's
    variables nothing is initialised and the given (or best) device is returned.
    """
    import torch.distributed as dist

    want_cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1 or dist.is_initialized():
        return torch.device(device or ("cuda" if want_cuda else "cpu"))
    local = int(os.environ.get("LOCAL_RANK", 0))
    if want_cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if want_cuda else "gloo")
    return torch.device(f"cuda:{local}" if want_cuda else "cpu")


# -- checkpoints ---------------------------------------------------------------------------
def unwrap(model) -> Sam:
    """The :class:`Sam` inside DDP and ``torch.compile`` wrappers."""
    while not isinstance(model, Sam):
        model = getattr(model, "module", None) or getattr(model, "_orig_mod")
    return model


def trainable_state(model) -> dict[str, torch.Tensor]:
    """The MedSegX checkpoint's ``"model"`` dict: trainable tensors under their official names."""
    return {name: p.detach().to("cpu", copy=True) for name, p in unwrap(model).trainable_parameters()}


def atomic_save(payload: dict, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename (never a partial file). Temporary
    files of saves killed before (another pid's: SIGKILL skips the ``finally``) are removed first; only rank 0
    of one run saves into a folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_checkpoint(path, model, *, optimizer=None, scheduler=None, scaler=None, step: int = 0, epoch: int = 0,
                    train_config: TrainConfig | None = None) -> Path:
    """Write a MedSegX-format checkpoint (``"model"``, ``"optimizer"``, ``"epoch"`` as the reference)
    plus ``"step"``, ``"scheduler"``, ``"scaler"``, ``"rng"``, ``"train_config"``, ``"model_config"``."""
    payload: dict[str, Any] = {"model": trainable_state(model), "epoch": epoch, "step": step,
                               "model_config": unwrap(model).config.to_dict(),
                               "rng": {"torch": torch.get_rng_state()}}
    if torch.cuda.is_available():
        payload["rng"]["cuda"] = torch.cuda.get_rng_state_all()
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        payload["scheduler"] = scheduler.state_dict()
    if scaler is not None and scaler.is_enabled():
        payload["scaler"] = scaler.state_dict()
    if train_config is not None:
        payload["train_config"] = dataclasses.asdict(train_config)
    return atomic_save(payload, path)


def load_trainable(model, source) -> dict:
    """Load a MedSegX checkpoint's ``"model"`` tensors into ``model`` (strict on those keys);
    returns the whole payload (for resuming)."""
    payload = read_checkpoint(source)
    tensors = payload.get("model")
    if not isinstance(tensors, dict):
        raise CheckpointError(f"{source}: no 'model' entry; is this a MedSegX/omnimedseg training checkpoint?")
    base = unwrap(model)
    expected = dict(base.trainable_parameters())
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{source} does not match the model's trainable tensors: "
                              f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
                              f"(e.g. {unexpected[:3]})")
    with torch.no_grad():
        for name, param in expected.items():
            if tuple(tensors[name].shape) != tuple(param.shape):
                raise CheckpointError(f"{source}: {name} has shape {tuple(tensors[name].shape)}, "
                                      f"the model {tuple(param.shape)}")
            param.copy_(tensors[name])
    return payload


# -- the loop ------------------------------------------------------------------------------
class _Skip(torch.utils.data.Sampler):
    """Drops the first ``skip`` indices of a sampler: resuming inside an epoch loads nothing twice."""

    def __init__(self, sampler, skip: int):
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        return iter(list(self.sampler)[self.skip:])

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)


def _batch_to(batch: dict, device: torch.device) -> tuple[torch.Tensor, ...]:
    return (batch["image"].to(device, non_blocking=True).float(), batch["mask"].to(device, non_blocking=True),
            batch["box"].to(device, non_blocking=True), batch["context"].to(device, non_blocking=True))


def _log_up_to(path: Path, step: int, rank: int) -> None:
    """Keep the training log's lines up to ``step`` (a run killed after logging a step but before saving it
    logs that step again when resumed: it had appeared twice)."""
    if rank != 0 or not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines(keepends=True)
            if line.strip() and json.loads(line).get("step", 0) <= step]
    atomic_write_text(path, "".join(kept))


def train(model: Sam, samples: PromptedSamples, config: TrainConfig, out_dir: str | os.PathLike, *,
          resume: str | os.PathLike | None = None, device: torch.device | str | None = None,
          log: Callable[[dict], None] | None = None) -> TrainResult:
    """Train ``model`` in place on ``samples``; writes ``model_latest.pth`` and ``train_log.jsonl``.

    Under ``torch.distributed`` (e.g. torchrun) the model is wrapped in DistributedDataParallel,
    each rank reads its share of the data, and rank 0 writes files. ``resume`` (a checkpoint
    path, or ``"auto"`` for ``out_dir/model_latest.pth`` when present) continues exactly where
    that run stopped: same batches, boxes, dropout draws and optimizer state.
    """
    import torch.distributed as dist
    from torch.utils.data import DataLoader, DistributedSampler

    started = time.perf_counter()
    out_dir = Path(out_dir)
    rank, world = distributed_info()
    device = torch.device(device) if device is not None else unwrap(model).device
    base = unwrap(model).to(device)
    samples = samples.for_training(config.subset_percent, config.seed)
    if base.config.image_size != samples.size:
        raise ModelError(f"samples are {samples.size} px but the model takes {base.config.image_size} px; "
                         f"build PromptedSamples(..., size={base.config.image_size})")
    samples = samples.with_options(box_shift=config.box_shift, seed=config.seed)

    base.freeze_encoders()
    base.train()
    params = [p for _, p in base.trainable_parameters()]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    amp_dtype = resolve_autocast_dtype(config.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    sampler = DistributedSampler(samples, num_replicas=world, rank=rank, shuffle=True, seed=config.seed)
    micro_per_epoch = math.ceil(len(sampler) / config.batch_size)
    steps_per_epoch = max(1, micro_per_epoch // config.accumulate)
    total_steps = config.max_steps if config.max_steps is not None else steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(
        s, total_steps, config.schedule, config.warmup_steps, config.min_lr_ratio))

    step = 0
    torch.manual_seed(config.seed + rank)  # expert dropout; restored from the checkpoint on resume
    if resume == "auto":
        resume = out_dir / CHECKPOINT_NAME if (out_dir / CHECKPOINT_NAME).is_file() else None
    if resume is not None:
        payload = load_trainable(base, resume)
        saved = payload.get("train_config") or {}
        changed = [f"{k} {saved[k]} -> {getattr(config, k)}" for k in RESUME_FIXED
                   if k in saved and saved[k] != getattr(config, k)]
        if changed:
            raise CheckpointError(f"{resume}: cannot resume with other {', '.join(changed)} (they decide which "
                                  "samples come next); keep them, or start a new run from it as medsegx_checkpoint")
        for key, target in (("optimizer", optimizer), ("scheduler", scheduler)):
            if key not in payload:
                raise CheckpointError(f"{resume}: no {key!r} state; it cannot be resumed (load it as "
                                      "medsegx_checkpoint to fine-tune from it instead)")
            target.load_state_dict(payload[key])
        if "scaler" in payload:
            scaler.load_state_dict(payload["scaler"])
        step = int(payload.get("step", 0))
        _log_up_to(out_dir / LOG_NAME, step, rank)  # lines logged after the checkpoint come again
        rng = payload.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    model = base
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # The IoU head is not in the reference loss, so its parameters get no gradient.
        model = DistributedDataParallel(base, device_ids=[device.index] if device.type == "cuda" else None,
                                        find_unused_parameters=True)
    if config.compile:
        model = torch.compile(model)

    result = TrainResult(steps=step, epochs_done=step // steps_per_epoch, images=len(samples))
    log_path = out_dir / LOG_NAME
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)

    def save(epoch: int) -> None:
        if rank == 0:
            result.checkpoint = save_checkpoint(out_dir / CHECKPOINT_NAME, base, optimizer=optimizer,
                                                scheduler=scheduler, scaler=scaler, step=step, epoch=epoch,
                                                train_config=config)
        if world > 1:
            dist.barrier()

    while step < total_steps:
        epoch, done_in_epoch = divmod(step, steps_per_epoch)
        sampler.set_epoch(epoch)
        samples.set_epoch(epoch)
        loader = DataLoader(samples, batch_size=config.batch_size,
                            sampler=_Skip(sampler, done_in_epoch * config.accumulate * config.batch_size),
                            num_workers=config.num_workers, pin_memory=device.type == "cuda",
                            # its own generator: creating the iterator must not draw from the global
                            # RNG, which the expert dropout uses (exact resume)
                            generator=torch.Generator().manual_seed(config.seed + epoch))
        micro, running, tick = 0, 0.0, time.perf_counter()
        for batch in loader:
            images, masks, boxes, context = _batch_to(batch, device)
            last = (micro + 1) % config.accumulate == 0
            sync = model.no_sync() if world > 1 and not last and hasattr(model, "no_sync") else nullcontext()
            with sync:
                with autocast_context(device, amp_dtype):
                    logits, _ = model(images, boxes=boxes, context=context, multimask_output=True)
                loss = segmentation_loss(logits, masks) / config.accumulate
                scaler.scale(loss).backward()
            running += loss.item()
            micro += 1
            if not last:
                continue
            if config.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            step += 1
            value = running
            if world > 1:
                reduced = torch.tensor([running], device=device)
                dist.all_reduce(reduced)
                value = reduced.item() / world
            result.losses.append(value)
            record = {"step": step, "epoch": epoch, "lr": lr, "loss": value,
                      "seconds_per_step": time.perf_counter() - tick}
            if rank == 0:
                with open(log_path, "a") as fh:
                    fh.write(json.dumps(record) + "\n")
                if log is not None:
                    log(record)
            running, tick = 0.0, time.perf_counter()
            epoch_over = step % steps_per_epoch == 0
            if step >= total_steps or epoch_over or (config.save_every and step % config.save_every == 0):
                save(epoch)
            if step >= total_steps or epoch_over:
                break
        else:  # the loader ran out before the epoch's optimizer steps were done
            raise ModelError(f"{micro} micro-batch(es) per epoch on this rank cannot make one optimizer step of "
                             f"{config.accumulate} micro-batches; lower accumulate or batch_size")
    result.steps, result.epochs_done = step, step // steps_per_epoch
    if result.checkpoint is None and rank == 0 and (out_dir / CHECKPOINT_NAME).is_file():
        result.checkpoint = out_dir / CHECKPOINT_NAME
    base.eval()
    result.seconds = time.perf_counter() - started
    return result


def build_for_training(config: ModelConfig | str, sam_checkpoint=None, medsegx_checkpoint=None, *,
                       device="cpu") -> Sam:
    """The model to train: SAM weights (+ a MedSegX checkpoint to fine-tune from), encoders frozen."""
    from omnimedseg.models.checkpoints import build_model

    model = build_model(config, sam_checkpoint, medsegx_checkpoint, device=device)
    model.freeze_encoders()
    return model
