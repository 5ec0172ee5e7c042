"""``omnimedseg info``: everything the card says about one dataset, and its local state."""

from __future__ import annotations

import json

import click

from omnimedseg import paths
from omnimedseg.cli import Env, pass_env
from omnimedseg.cli.list_cmd import card_summary
from omnimedseg.progress import human_bytes


@click.command()
@click.argument("dataset_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_env
def info(env: Env, dataset_id: str, as_json: bool) -> None:
    """Show DATASET_ID's card: source, files, licence, citation, classes, local folders."""
    card = env.card(dataset_id)
    converted = paths.converted_dir(card.id, card.converter_version, env.root)
    total = sum(f.size or 0 for f in card.source.files)
    unknown = sum(f.size is None for f in card.source.files)
    data = {**card_summary(card), "description": card.description.strip(), "homepage": card.homepage,
            "version": card.source.version, "doi": card.source.doi,
            "files": [{"name": f.name, "size": f.size, "hashes": f.hashes} for f in card.source.files],
            "total_size": total, "total_size_complete": unknown == 0,
            "citation": {"doi": card.citation.doi, "bibtex": card.citation.bibtex},
            "license_url": card.license.url, "converter": card.converter,
            "converter_version": card.converter_version,
            "downloads": str(paths.downloads_dir(card.id, env.root)), "raw": str(paths.raw_dir(card.id, env.root)),
            "converted": str(converted), "converted_complete": (converted / ".complete").is_file()}
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"{card.id}: {card.title}")
    click.echo(card.description.strip())
    for key in ("homepage", "modality", "dimensionality", "classes", "platform", "record", "version", "license",
                "license_status", "license_source", "verified_on", "redistribution", "converter",
                "converter_version", "downloads", "raw", "converted",
                "converted_complete"):
        click.echo(f"  {key:<18} {data[key]}")
    more = f" + {unknown} file(s) of unknown size" if unknown else ""
    click.echo(f"  files: {len(card.source.files)}, {human_bytes(total)} in all{more}")
    for f in card.source.files:
        click.echo(f"    {f.name}  ({human_bytes(f.size) if f.size is not None else 'size unknown'})")
        if f.size is not None:
            env.echo(f"      size {f.size} B", level=1)
        for algorithm, digest in f.hashes.items():
            env.echo(f"      {algorithm} {digest}", level=1)
    if env.verbosity <= 0 and any(f.hashes for f in card.source.files):
        click.echo("  (exact sizes and hashes: omnimedseg info -v " + card.id + ")")
    click.echo(f"  cite: doi:{card.citation.doi}")
