"""``omnimedseg export``: write a converted dataset in another tool's layout (nnU-Net, MSD, Croissant, MedSegDB)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from omnimedseg.cli import Env, pass_env
from omnimedseg.data.exports import FORMATS, OVERLAP_POLICIES


@click.command()
@click.argument("dataset_id")
@click.option("--format", "fmt", required=True, type=click.Choice(FORMATS), help="Target layout.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder to create (default: <root>/exports/<format>/<id>; nnU-Net: .../nnunet/Dataset<NNN>_<id>).")
@click.option("--overlap", type=click.Choice(OVERLAP_POLICIES), default="error", show_default=True,
              help="nnunet/msd label maps: refuse overlapping masks, or let the class listed last win.")
@click.option("--nnunet-id", type=click.IntRange(1, 999), default=500, show_default=True, help="nnU-Net dataset number.")
@click.option("--axis", type=click.IntRange(0, 2), default=2, show_default=True, help="medsegdb: slice axis for 3D data.")
@click.option("--link", is_flag=True, help="Hard-link images instead of copying (no extra space; do not edit them).")
@click.option("--force", is_flag=True, help="Replace an existing export.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_env
def export(env: Env, dataset_id, fmt, out, overlap, nnunet_id, axis, link, force, as_json) -> None:
    """Export the converted DATASET_ID; the export is verified before it appears."""
    from omnimedseg.data.exports import export_dataset

    result = export_dataset(dataset_id, fmt, out, root=env.root, registry_dirs=env.registry_dirs, force=force,
                            overlap=overlap, link=link, nnunet_id=nnunet_id, axis=axis)
    if as_json:
        click.echo(json.dumps({"dataset": dataset_id, "format": fmt, "folder": str(result.folder),
                               "files": result.files, **result.notes}))
    else:
        env.echo(f"{dataset_id}: {fmt} export verified, {result.files} files in {result.folder}")
        for key, value in result.notes.items():
            env.echo(f"  {key}: {value}", level=1)
