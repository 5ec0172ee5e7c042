"""``omnimedseg download``: fetch, verify and unpack one dataset's raw files."""

from __future__ import annotations

import json
from pathlib import Path

import click

from omnimedseg.cli import Env, pass_env
from omnimedseg.cli.options import jobs_option
from omnimedseg.errors import DatasetNotFoundError, UsageError
from omnimedseg.progress import human_bytes


@click.command()
@click.argument("dataset_id")
@click.option("--from", "sources", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Take the files from this folder or file instead of the platform (repeatable).")
@click.option("--offline", is_flag=True, help="Fetch nothing; verify the files on disk against the lock.")
@jobs_option(None, "Files fetched in parallel (default: the platform's, 4; IDC 16; each host also has "
                   "its own limit).")
@click.option("--engine", type=click.Choice(["default", "zenodo-get"]), default="default", show_default=True,
              help="Transfer engine; zenodo-get (optional extra, AGPL-3.0) works for Zenodo only.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--accept-licence", "--accept-license", "accept_licence", is_flag=True,
              help="Accept the dataset's licence (needed when its status is not verified-open).")
@click.option("--sample", type=click.IntRange(1), default=None,
              help="Fetch only what 'convert --sample N' needs: N cases per split (ZIP members by HTTP Range).")
@pass_env
def download(env: Env, dataset_id: str, sources: tuple[Path, ...], offline: bool, jobs: int | None, engine: str,
             as_json: bool, accept_licence: bool, sample: int | None) -> None:
    """Download DATASET_ID into <root>/downloads and unpack it into <root>/raw."""
    from omnimedseg.downloaders import download_dataset
    from omnimedseg.registry.card import require_licence_acceptance

    card = env.card(dataset_id)
    require_licence_acceptance(card, accept_licence, "download")
    if card.access.kind != "open" and not sources and not offline:
        env.echo(card.access.instructions)
        if card.access.kind == "manual":  # no platform API serves these files: nothing to try
            raise DatasetNotFoundError(f"{card.id}: manual download (instructions above); fetch the files "
                                       f"yourself, then run: omnimedseg download {card.id} --from DIR")
    if sample is not None:
        from omnimedseg.converters._sample import SAMPLE_MARKER
        from omnimedseg.downloaders._sample import download_sample

        if offline or engine != "default":
            raise UsageError("--sample fetches from the platform: it cannot be combined with --offline or --engine")
        raw = download_sample(card, sample, env.root, sources=list(sources), progress=env.progress, jobs=jobs)
        if not (raw / SAMPLE_MARKER).is_file():
            env.echo(f"{card.id}: the full release is already in {raw}; --sample fetched nothing")
    else:
        raw = download_dataset(card, env.root, sources=list(sources), offline=offline, progress=env.progress,
                               jobs=jobs, engine=engine, say=env.echo)
    if as_json:
        click.echo(json.dumps({"dataset": card.id, "raw": str(raw), "sample": sample}))
    else:
        env.echo(f"{card.id}: raw files verified in {raw}" + (f" (a sample: {sample} case(s) per split)"
                                                               if sample else ""))
        for f in card.source.files:
            env.echo(f"  {f.name}" + (f" ({human_bytes(f.size)})" if f.size is not None else ""), level=1)
        env.echo(f"next: omnimedseg convert {card.id}" + (f" --sample {sample}" if sample else ""))
