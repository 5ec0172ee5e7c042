"""``omnimedseg qa``: contact sheets of image + mask overlays for a stratified sample, plus validate's checks."""

from __future__ import annotations

import json
from pathlib import Path

import click

from omnimedseg.cli import Env, pass_env
from omnimedseg.errors import ValidationError


@click.command()
@click.argument("dataset_id")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the sheets and index.html (default: <root>/qa/<id>/<version>; replaced).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample (same seed, same sheets).")
@click.option("--images", "n_images", type=click.IntRange(1), default=20, show_default=True,
              help="At least this many cases.")
@click.option("--per-class", type=click.IntRange(0), default=5, show_default=True,
              help="At least this many cases containing each class.")
@click.option("--tile", type=click.IntRange(32), default=256, show_default=True, help="Tile size in pixels.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_env
def qa(env: Env, dataset_id, out, seed, n_images, per_class, tile, as_json) -> None:
    """Write QA contact sheets and an HTML index for the converted DATASET_ID; exits 1 if validation fails."""
    from omnimedseg.data.qa import run_qa

    report = run_qa(dataset_id, out, root=env.root, registry_dirs=env.registry_dirs, seed=seed, n_images=n_images,
                    per_class=per_class, tile=tile, progress=env.progress)
    if as_json:
        click.echo(json.dumps({"dataset": report.dataset_id, "index": str(report.index_html), "seed": seed,
                               "cases": len(report.sample), "sheets": [str(p) for p in report.sheets],
                               "findings": report.findings, "validation_ok": report.validation_ok,
                               "validation_problems": report.validation_problems}))
    else:
        for problem in report.validation_problems:
            click.echo(f"FAIL {problem}")
        for finding in report.findings:
            click.echo(f"NOTE {finding}")
        for case in report.sample:
            env.echo(f"  {case['split']:<6} {case['case_id']}: {', '.join(case['classes']) or '(no class)'}", level=1)
        for sheet in report.sheets:
            env.echo(f"  sheet {sheet}", level=1)
        env.echo(f"{report.dataset_id}: {len(report.sample)} cases on {len(report.sheets)} sheet(s); "
                 f"open {report.index_html}")
    if not report.validation_ok:
        raise ValidationError(f"{dataset_id}: {len(report.validation_problems)} validation problem(s) (see "
                              f"{report.index_html}); fix the converter, then run: omnimedseg convert {dataset_id} --force")
