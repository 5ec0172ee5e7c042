"""``omnimedseg verify``: re-check downloaded files against the lock written at download time."""

from __future__ import annotations

import json

import click

from omnimedseg.cli import Env, pass_env
from omnimedseg.cli.options import jobs_option
from omnimedseg.errors import ChecksumMismatchError


@click.command()
@click.argument("dataset_id")
@click.option("--repair", is_flag=True, help="Fetch missing or corrupt files again (bad files are kept as *.corrupt) "
                                             "and rebuild a damaged raw/ tree.")
@jobs_option(None, "Files fetched in parallel when repairing (default: the platform's, 4; IDC 16).")
@click.option("--json", "as_json", is_flag=True, help="Print the per-file status as JSON.")
@pass_env
def verify(env: Env, dataset_id: str, repair: bool, jobs: int | None, as_json: bool) -> None:
    """Verify DATASET_ID's downloads (sizes and hashes) against manifest.lock.json, and its raw/ tree, offline."""
    from omnimedseg.downloaders import verify_dataset

    card = env.card(dataset_id)
    status = verify_dataset(card, env.root, repair=repair, progress=env.progress, jobs=jobs)
    if as_json:
        click.echo(json.dumps({"dataset": card.id, "files": status}, indent=2))
    else:
        for name, state in status.items():
            env.echo(f"{state:9} {name}", level=0 if state != "ok" else 1)
    bad = sorted(n for n, s in status.items() if s in ("missing", "corrupt", "damaged"))
    if bad:
        raise ChecksumMismatchError(f"{card.id}: {len(bad)} of {len(status)} checks found missing, corrupt or "
                                    f"damaged files "
                                    f"({', '.join(bad[:5])}{'…' if len(bad) > 5 else ''}); "
                                    f"run: omnimedseg verify {card.id} --repair")
    if not as_json:
        files = len(status) - 1  # the last entry is the raw tree
        env.echo(f"{card.id}: {files} file{'' if files == 1 else 's'} and the raw tree verified")
        if "sample" in status.values():
            env.echo(f"{card.id}: only a sample (download --sample) is here, not the full release; members are "
                     f"verified by CRC-32 on arrival; for everything run: omnimedseg download {card.id}")
