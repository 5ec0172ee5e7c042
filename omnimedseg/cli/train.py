"""``omnimedseg train``: MedSegX pretraining / fine-tuning (reference recipe), also under torchrun."""

from __future__ import annotations

import json
from pathlib import Path

import click

from omnimedseg.cli import Env, pass_env
from omnimedseg.cli.options import jobs_option
from omnimedseg.errors import UsageError


def model_options(command):
    """Options shared by ``train`` and ``evaluate``: which model and which weights."""
    options = [
        click.option("--model", "preset", default="medsegx_vit_b", show_default=True,
                     help="Model preset (medsegx_vit_b, sam_vit_b, tiny_medsegx, ...)."),
        click.option("--sam-checkpoint", type=click.Path(dir_okay=False, path_type=Path),
                     help="Official SAM file, e.g. sam_vit_b_01ec64.pth."),
        click.option("--medsegx-checkpoint", type=click.Path(dir_okay=False, path_type=Path),
                     help="MedSegX file (medsegx_vit_b.pth or a model_latest.pth written by train)."),
        click.option("--random-init", is_flag=True, help="Allow running without checkpoints (tests, smoke runs)."),
        click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
                     help="A MedSegDB folder (ID/OOD/RealWorld layout, or any folder below one)."),
        click.option("--dataset", "dataset_ids", multiple=True, help="Converted dataset id (repeatable)."),
        click.option("--split", default=None, help="Split of the converted datasets."),
        click.option("--axis", type=click.IntRange(0, 2), default=2, show_default=True, help="Slice axis of 3D data."),
        click.option("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)."),
        click.option("--amp", type=click.Choice(["none", "bf16", "fp16"]), default="none", show_default=True,
                     help="Autocast dtype."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def load_model(preset, sam_checkpoint, medsegx_checkpoint, random_init, device):
    from omnimedseg.models import build_model

    if sam_checkpoint is None and medsegx_checkpoint is None and not random_init:
        raise UsageError("give --sam-checkpoint (and --medsegx-checkpoint) or, for a smoke run, --random-init")
    return build_model(preset, sam_checkpoint, medsegx_checkpoint, device=device)


def open_data(env: Env, data, dataset_ids, split, axis):
    if (data is None) == (not dataset_ids):
        raise UsageError("give either --data <MedSegDB folder> or one or more --dataset <id>")
    if data is not None:
        from omnimedseg.data.medsegdb import MedSegDBDataset

        return MedSegDBDataset(data)
    from omnimedseg.data.collection import DatasetCollection

    return DatasetCollection(list(dataset_ids), split=split, axis=axis, root=env.root,
                             registry_dirs=env.registry_dirs)


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@model_options
@click.option("--recipe", type=click.Choice(["pretrain", "finetune"]), default="finetune", show_default=True,
              help="Reference defaults: pretrain lr 1e-4 batch 128; finetune lr 5e-5 batch 64; 30 epochs.")
@click.option("--lr", type=float, help="Learning rate (overrides the recipe).")
@click.option("--weight-decay", type=float, help="AdamW weight decay (recipe: 0.01).")
@click.option("--batch-size", type=click.IntRange(1), help="Micro-batch per process (overrides the recipe).")
@click.option("--accumulate", type=click.IntRange(1), default=1, show_default=True,
              help="Micro-batches per optimizer step (gradient accumulation).")
@click.option("--epochs", type=click.IntRange(1), help="Epochs (overrides the recipe).")
@click.option("--max-steps", type=click.IntRange(1), help="Stop after this many optimizer steps.")
@click.option("--schedule", type=click.Choice(["constant", "cosine"]), default="constant", show_default=True,
              help="constant = the reference scripts; cosine decays after the warm-up.")
@click.option("--warmup-steps", type=click.IntRange(0), default=0, show_default=True)
@click.option("--grad-clip", type=float, default=None, help="Clip the gradient norm to this value.")
@click.option("--subset", type=click.FloatRange(0, 100, min_open=True), default=100, show_default=True,
              help="Percent of the cases to train on (5, 15, 25, 50, 100; nested for one seed).")
@click.option("--seed", type=int, default=2025, show_default=True)
@jobs_option(0, "DataLoader worker processes.", minimum=0, old="--workers")
@click.option("--save-every", type=click.IntRange(0), default=0, show_default=True,
              help="Write model_latest.pth every N optimizer steps (0: at each epoch end).")
@click.option("--resume", default=None, help="Checkpoint to resume, or 'auto' (OUT_DIR/model_latest.pth if present).")
@click.option("--compile", "use_compile", is_flag=True, help="torch.compile the model.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_env
def train(env: Env, out_dir, preset, sam_checkpoint, medsegx_checkpoint, random_init, data, dataset_ids, split, axis,
          device, amp, recipe, lr, weight_decay, batch_size, accumulate, epochs, max_steps, schedule, warmup_steps,
          grad_clip, subset, seed, jobs, save_every, resume, use_compile, as_json) -> None:
    """Train adapters, embeddings and mask decoder into OUT_DIR (model_latest.pth, train_log.jsonl).

    Multi-GPU / multi-node: torchrun --nproc-per-node N -m omnimedseg train ...
    """
    import torch

    from omnimedseg.models.training import PromptedSamples, TrainConfig, distributed_info, init_distributed
    from omnimedseg.models.training import train as run_training

    changes = {k: v for k, v in dict(lr=lr, weight_decay=weight_decay, batch_size=batch_size, epochs=epochs).items()
               if v is not None}
    config = TrainConfig.recipe(recipe, accumulate=accumulate, max_steps=max_steps, schedule=schedule,
                                warmup_steps=warmup_steps, grad_clip=grad_clip, amp=None if amp == "none" else amp,
                                subset_percent=subset, seed=seed, num_workers=jobs, save_every=save_every,
                                compile=use_compile, **changes)
    torch_device = init_distributed(device)
    rank, world = distributed_info()
    torch.manual_seed(seed)  # the weights no checkpoint holds (adapters, new tokens) are drawn now: repeatable runs
    model = load_model(preset, sam_checkpoint, medsegx_checkpoint, random_init, torch_device)
    samples = PromptedSamples(open_data(env, data, dataset_ids, split, axis), size=model.config.image_size)

    def log(record):
        if not as_json:
            env.echo(f"step {record['step']} epoch {record['epoch']} lr {record['lr']:.3g} "
                     f"loss {record['loss']:.4f} ({record['seconds_per_step']:.2f} s)", level=1)

    if rank == 0 and not as_json:
        env.echo(f"training {preset} with {world} process(es), effective batch "
                 f"{config.batch_size * config.accumulate * world}")
    result = run_training(model, samples, config, out_dir, resume=resume, device=torch_device, log=log)
    if rank != 0:
        return
    summary = {"out_dir": str(out_dir), "images": result.images, "steps": result.steps, "epochs": result.epochs_done,
               "checkpoint": str(result.checkpoint) if result.checkpoint else None,
               "first_loss": result.losses[0] if result.losses else None,
               "last_loss": result.losses[-1] if result.losses else None, "seconds": round(result.seconds, 2),
               "skipped": len(samples.skipped)}
    if as_json:
        click.echo(json.dumps(summary))
    else:
        env.echo(f"{result.images} labelled images, {result.steps} steps, loss {summary['first_loss']} -> {summary['last_loss']}; "
                 f"checkpoint {summary['checkpoint']}")
