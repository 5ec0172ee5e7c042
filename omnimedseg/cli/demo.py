"""``omnimedseg demo``: the real pipeline end to end on a bundled sample, offline (omnimedseg/demo)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from omnimedseg.cli import Env, pass_env


@click.command()
@click.option("--root", "demo_root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the demo writes its data (default: a demo folder in the data root, e.g. "
                   "<user cache>/omnimedseg/demo). Kept afterwards; a rerun reuses what is done.")
@click.option("-j", "--jobs", "workers", default=1, show_default=True, type=click.IntRange(1),
              help="Worker processes for converting and benchmarking.")
@click.option("--json", "as_json", is_flag=True, help="Print where the results are as JSON.")
@pass_env
def demo(env: Env, demo_root: Path | None, workers: int, as_json: bool) -> None:
    """Download, convert, validate, QA and benchmark a small real sample (HC18 2D, TotalSegmentator 3D), offline."""
    from omnimedseg.demo import CARDS, default_root, run_demo

    root = (demo_root or default_root(env.root)).expanduser().resolve()
    started = time.monotonic()
    echo = (lambda message: None) if as_json else env.echo
    echo(f"omnimedseg demo: data in {root}")
    result = run_demo(root, echo=echo, progress=env.progress, workers=workers)
    bench = result.benchmark
    if as_json:
        click.echo(json.dumps({"root": str(root), "converted": {k: str(v) for k, v in result.converted.items()},
                               "qa": {k: str(v) for k, v in result.qa_index.items()},
                               "benchmark": str(bench), "summary": str(bench / "summary.md"),
                               "results": str(bench / "results.csv"), "reused": result.reused,
                               "seconds": round(time.monotonic() - started, 1)}))
        return
    summary = (bench / "summary.md").read_text(encoding="utf-8")
    table = [line for line in summary.splitlines() if line.startswith("|")]
    click.echo("\nResults (mean +- SD over sessions; AUC = normalised area under the metric-per-step curve, "
               "Final = after the last step; NSD at 2 mm):")
    click.echo("\n".join(table))
    lines = [f"\nresults: {bench / 'results.csv'} (every step), {bench / 'summary.md'}",
             f"plots:   {bench / 'plots'}",
             f"interaction sheets: {bench / 'sheets'}"]
    lines += [f"QA sheets ({dataset_id}): {index}" for dataset_id, index in result.qa_index.items()]
    lines += [f"sample attribution and licences: {root / 'ATTRIBUTION.md'}"]
    if result.reused:
        lines.append(f"reused from a previous run: {', '.join(result.reused)}")
    lines.append(f"done in {time.monotonic() - started:.0f} s. Explore: omnimedseg --root {root} --registry {CARDS} "
                 f"info demo_hc18")
    click.echo("\n".join(lines))
