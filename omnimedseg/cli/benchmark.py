"""``omnimedseg benchmark``: run a suite of simulated-user interactive evaluations."""

from __future__ import annotations

import json
from pathlib import Path

import click

from omnimedseg.cli import Env, pass_env
from omnimedseg.cli.options import jobs_option


@click.command()
@click.argument("suite_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results folder (default: <root>/benchmarks/<suite name>). Rerun to resume.")
@jobs_option(1, "Worker processes running sessions in parallel.", old="--workers")
@click.option("--dataset", "dataset_ids", multiple=True, metavar="ID",
              help="Run the suite on this dataset instead of the suite's (repeatable; keeps the suite's max_cases "
                   "and mode, every class, every split).")
@click.option("--json", "as_json", is_flag=True, help="Print where the results are as JSON.")
@pass_env
def benchmark(env: Env, suite_file: Path, out: Path | None, jobs: int, dataset_ids: tuple[str, ...],
              as_json: bool) -> None:
    """Run the benchmark suite SUITE_FILE (a benchmarks/*.toml file) on converted data."""
    from omnimedseg import paths
    from omnimedseg.benchmark import Suite, run_benchmark

    suite = Suite.from_toml(suite_file)
    if dataset_ids:
        suite = suite.on_datasets([env.card(dataset_id).id for dataset_id in dataset_ids])
    out = out or paths.data_root(env.root) / "benchmarks" / suite.name
    root = str(env.root) if env.root else None
    run_benchmark(suite, out, root=root, registry_dirs=env.registry_dirs, workers=jobs, progress=env.progress)
    if as_json:
        click.echo(json.dumps({"suite": suite.name, "output": str(out),
                               "summary": str(out / "summary.md"), "results": str(out / "results.csv")}))
    else:
        click.echo((out / "summary.md").read_text())
        env.echo(f"results, plots and interaction sheets in {out}")
        for kind in ("plots", "sheets"):
            for path in sorted((out / kind).glob("*.png")):
                env.echo(f"  {kind[:-1]} {path}", level=1)
