"""``omnimedseg validate``: check a converted dataset against the output contract."""

from __future__ import annotations

import json

import click

from omnimedseg.cli import Env, pass_env
from omnimedseg.errors import DatasetNotFoundError, ValidationError


@click.command()
@click.argument("dataset_id")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--raw", "raw_dir", type=click.Path(file_okay=False, exists=True),
              help="Re-hash raw sources in this folder (what `convert --raw` read).")
@pass_env
def validate(env: Env, dataset_id: str, as_json: bool, raw_dir: str | None) -> None:
    """Validate the converted DATASET_ID; exits 1 when anything is wrong."""
    from pathlib import Path

    from omnimedseg import paths
    from omnimedseg.converters._validate import recorded_raw, validate_converted

    card = env.card(dataset_id)
    folder = paths.converted_dir(card.id, card.converter_version, env.root)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{card.id}: no converted data in {folder}; run: omnimedseg convert {card.id}")
    raw = Path(raw_dir) if raw_dir else recorded_raw(folder, paths.raw_dir(card.id, env.root))
    report = validate_converted(folder, raw, progress=env.progress)
    if as_json:
        click.echo(json.dumps({"dataset": card.id, "folder": str(folder), "ok": report.ok,
                               "checked_files": report.checked_files,
                               "raw_sources_checked": report.raw_sources_checked, "problems": report.problems}))
    else:
        for problem in report.problems:
            click.echo(f"FAIL {problem}")
        if report.ok:
            raw_note = "" if report.raw_sources_checked else " (raw sources not present, not re-hashed)"
            env.echo(f"{card.id}: OK, {report.checked_files} files match their provenance{raw_note}")
        env.echo(f"  folder {folder}; raw sources {'re-hashed in ' + str(raw) if report.raw_sources_checked else 'not checked'}",
                 level=1)
    if not report.ok:
        raise ValidationError(f"{card.id}: {len(report.problems)} problem(s) in {folder}; "
                              f"fix the converter, then run: omnimedseg convert {card.id} --force")
