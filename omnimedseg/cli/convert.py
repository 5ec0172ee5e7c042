"""``omnimedseg convert``: raw data -> the standard output (docs/format.md)."""

from __future__ import annotations

import json

import click

from omnimedseg.cli import Env, pass_env


@click.command()
@click.argument("dataset_id")
@click.option("--force", is_flag=True, help="Convert again even if a complete output exists.")
@click.option("-j", "--workers", default=1, show_default=True, type=click.IntRange(1),
              help="Worker processes for converting cases in parallel.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--accept-licence", "--accept-license", "accept_licence", is_flag=True,
              help="Accept the dataset's licence (needed when its status is not verified-open).")
@click.option("--sample", type=click.IntRange(1), default=None,
              help="Convert only the first N cases of each split (what 'download --sample N' fetched).")
@pass_env
def convert(env: Env, dataset_id: str, force: bool, workers: int, as_json: bool, accept_licence: bool,
            sample: int | None) -> None:
    """Convert DATASET_ID's raw files into <root>/converted/DATASET_ID/<converter version>."""
    from omnimedseg import paths
    from omnimedseg.converters._run import convert_dataset, is_complete
    from omnimedseg.registry.card import require_licence_acceptance

    card = env.card(dataset_id)
    require_licence_acceptance(card, accept_licence, "convert")
    out = paths.converted_dir(card.id, card.converter_version, env.root)
    already = is_complete(out, sample) and not force
    out = convert_dataset(card, env.root, force=force, workers=workers, progress=env.progress, sample=sample)
    cases = json.loads((out / "dataset.json").read_text())["cases"]
    if as_json:
        click.echo(json.dumps({"dataset": card.id, "output": str(out), "cases": len(cases), "skipped": already}))
        return
    if already:
        env.echo(f"{card.id}: already converted in {out} (use --force to redo)")
    else:
        env.echo(f"{card.id}: {len(cases)} cases converted into {out}")
    env.echo(f"next: omnimedseg validate {card.id}")
