"""``omnimedseg evaluate``: the MedSegX reference protocol (tight box, best of three masks, Dice + HD95)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from omnimedseg.cli import Env, pass_env
from omnimedseg.cli.train import load_model, model_options, open_data


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@model_options
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True)
@click.option("--empty-hd", type=click.Choice(["reference", "diagonal"]), default="reference", show_default=True,
              help="HD of an empty prediction: the reference code's rule, or the image diagonal.")
@click.option("--reference-selection", is_flag=True,
              help="External data: only the (task, dataset, sequence) combinations the reference evaluates.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_env
def evaluate(env: Env, out_dir, preset, sam_checkpoint, medsegx_checkpoint, random_init, data, dataset_ids, split, axis,
             device, amp, batch_size, empty_hd, reference_selection, as_json) -> None:
    """Evaluate into OUT_DIR: per-file CSV and markdown summary per report (ID, OOD/<shift>, ...)."""
    import torch

    from omnimedseg.models.evaluation import evaluate as run_evaluation

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(preset, sam_checkpoint, medsegx_checkpoint, random_init, device)
    result = run_evaluation(model, open_data(env, data, dataset_ids, split, axis), out_dir, batch_size=batch_size,
                            autocast_dtype=None if amp == "none" else amp, empty_hd=empty_hd,
                            reference_selection=reference_selection)
    summary = result.summary()
    if as_json:
        click.echo(json.dumps({"out_dir": str(out_dir), "reports": summary, "files": [str(f) for f in result.files]}))
        return
    for name, values in summary.items():
        env.echo(f"{name}: {values['files']} files, DSC {values['DSC']:.4f}, HD95 {values['HD']:.2f} px")
    for path in result.files:
        env.echo(f"  {path}", level=1)
    env.echo(f"results in {out_dir}")
