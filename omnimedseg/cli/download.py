"""``omnimedseg download``: fetch, verify and unpack one dataset's raw files."""

from __future__ import annotations

import json
from pathlib import Path

import click

from omnimedseg.cli import Env, pass_env


@click.command()
@click.argument("dataset_id")
@click.option("--from", "sources", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Take the files from this folder or file instead of the platform (repeatable).")
@click.option("--offline", is_flag=True, help="Fetch nothing; verify the files on disk against the lock.")
@click.option("--jobs", default=4, show_default=True, help="Files fetched in parallel (each host also has its own limit).")
@click.option("--engine", type=click.Choice(["default", "zenodo-get"]), default="default", show_default=True,
              help="Transfer engine; zenodo-get (optional extra, AGPL-3.0) works for Zenodo only.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_env
def download(env: Env, dataset_id: str, sources: tuple[Path, ...], offline: bool, jobs: int, engine: str,
             as_json: bool) -> None:
    """Download DATASET_ID into <root>/downloads and unpack it into <root>/raw."""
    from omnimedseg.downloaders import download_dataset

    card = env.card(dataset_id)
    if card.access.kind != "open" and not sources and not offline:
        env.echo(card.access.instructions)
    raw = download_dataset(card, env.root, sources=list(sources), offline=offline, progress=env.progress,
                           jobs=jobs, engine=engine, say=env.echo)
    if as_json:
        click.echo(json.dumps({"dataset": card.id, "raw": str(raw)}))
    else:
        env.echo(f"{card.id}: raw files verified in {raw}")
        env.echo(f"next: omnimedseg convert {card.id}")
