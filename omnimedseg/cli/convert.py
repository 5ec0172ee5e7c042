"""``omnimedseg convert``: raw data -> the standard output (docs/format.md)."""

from __future__ import annotations

import json

import click

from omnimedseg.cli import Env, pass_env
from omnimedseg.cli.options import jobs_option
from omnimedseg.errors import ConversionError


@click.command()
@click.argument("dataset_id")
@click.option("--force", is_flag=True, help="Convert again even if a complete output exists.")
@jobs_option(1, "Worker processes converting cases in parallel.", old="--workers")
@click.option("--raw", "raw_dir", type=click.Path(file_okay=False, exists=True),
              help="Convert this extracted release folder instead of the downloaded one (not verified).")
@click.option("--keep-going", is_flag=True,
              help="List broken cases as failed (in dataset.json), convert the rest, then exit 1.")
@click.option("--scheduler", metavar="ADDRESS", help="Send cases to this Dask distributed scheduler.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--accept-licence", "--accept-license", "accept_licence", is_flag=True,
              help="Accept the dataset's licence (needed when its status is not verified-open).")
@click.option("--sample", type=click.IntRange(1), default=None,
              help="Convert only the first N cases of each split (what 'download --sample N' fetched).")
@pass_env
def convert(env: Env, dataset_id: str, force: bool, jobs: int, raw_dir: str | None, keep_going: bool,
            scheduler: str | None, as_json: bool, accept_licence: bool, sample: int | None) -> None:
    """Convert DATASET_ID's raw files into <root>/converted/DATASET_ID/<converter version>."""
    from omnimedseg import paths
    from omnimedseg.converters._run import convert_dataset, is_complete
    from omnimedseg.registry.card import require_licence_acceptance

    card = env.card(dataset_id)
    require_licence_acceptance(card, accept_licence, "convert")
    out = paths.converted_dir(card.id, card.converter_version, env.root)
    already = is_complete(out, sample) and not force
    out = convert_dataset(card, env.root, force=force, workers=jobs, progress=env.progress, raw=raw_dir,
                          keep_going=keep_going, scheduler=scheduler, sample=sample)
    dataset = json.loads((out / "dataset.json").read_text())
    cases, absent, failed = dataset["cases"], dataset.get("absent", []), dataset.get("failed", [])
    if as_json:
        click.echo(json.dumps({"dataset": card.id, "output": str(out), "cases": len(cases), "skipped": already,
                               "absent": [a["case_id"] for a in absent], "failed": failed}))
        _fail_on_failed_cases(card.id, out, failed)
        return
    if already:
        env.echo(f"{card.id}: already converted in {out} (use --force to redo)")
    else:
        env.echo(f"{card.id}: {len(cases)} cases converted into {out}")
    if absent:
        shown = ", ".join(a["case_id"] for a in absent[:10]) + (" ..." if len(absent) > 10 else "")
        env.echo(f"{len(absent)} absent cases (no raw files present; listed in dataset.json): {shown}")
    for failure in failed:
        env.echo(f"FAILED {failure['case_id']}: {failure['error']}")
    splits: dict[str, int] = {}
    for case in cases:
        splits[case.get("split") or "-"] = splits.get(case.get("split") or "-", 0) + 1
    env.echo("  cases per split: " + ", ".join(f"{k} {v}" for k, v in sorted(splits.items())), level=1)
    env.echo(f"  dataset.json, provenance.json and LICENSE.txt in {out}", level=1)
    _fail_on_failed_cases(card.id, out, failed)
    env.echo(f"next: omnimedseg validate {card.id}")


def _fail_on_failed_cases(dataset_id: str, out, failed: list[dict]) -> None:
    """Exit 1 when ``--keep-going`` left cases out: the output is complete for the other
    cases, but a script must not take a partial dataset for a whole one."""
    if failed:
        raise ConversionError(f"{dataset_id}: {len(failed)} case(s) failed and were left out of {out} (listed in "
                              f"its dataset.json 'failed'); fix them, then run: omnimedseg convert {dataset_id} "
                              f"--force --keep-going")
