"""Benchmark outputs: per-case-per-step CSV/JSON, a markdown summary, plots, interaction sheets."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from omnimedseg import __version__
from omnimedseg.files import atomic_write_text


def _metric_names(suite) -> list[str]:
    from omnimedseg.metrics import get_metric

    return [get_metric(m.name, **m.params).name for m in suite.metrics]


def write_reports(suite, records: list[dict], out: Path) -> None:
    names = _metric_names(suite)
    rows = [{"dataset": r["dataset"], "case_id": r["case_id"], "class_name": r["class_name"],
             "robot_user": r["robot_user"], **step}
            for r in records for step in r["steps"]]
    columns = ["dataset", "case_id", "class_name", "robot_user", "step", "interaction", *names]
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(out / "results.json", json.dumps(
        {"suite": suite.to_dict(), "config_hash": suite.config_hash, "tool_version": __version__,
         "records": records}, indent=1) + "\n")
    atomic_write_text(out / "summary.md", summary_markdown(suite, records, names))
    plot_curves(suite, records, names, out / "plots")


def _groups(records: list[dict]) -> dict[tuple[str, str], list[dict]]:
    groups = defaultdict(list)
    for r in records:
        if r["steps"]:
            groups[(r["dataset"], r["robot_user"])].append(r)
    return dict(sorted(groups.items()))


def _integrated_steps(suite) -> int:
    """Steps the AUC integrates: step 0 plus ``suite.steps`` interactions, less step 0 when excluded."""
    return suite.steps + 1 if suite.include_step0 else suite.steps


def summary_markdown(suite, records: list[dict], names: list[str]) -> str:
    """Mean (and std) of normalised AUC and Final per dataset x robot user x metric."""
    lines = [f"# Benchmark {suite.name}", "",
             f"Model `{suite.model}` {json.dumps(suite.model_params) if suite.model_params else ''}, "
             f"{suite.steps} interaction(s) after the first, seed {suite.seed}, omnimedseg {__version__}, "
             f"configuration {suite.config_hash}.", "",
             f"AUC = trapezoidal area under the metric-vs-step curve (x = step index, unit spacing) over "
             f"{_integrated_steps(suite)} integrated steps ({'including' if suite.include_step0 else 'excluding'} "
             f"step 0), divided by {_integrated_steps(suite)} - 1 = {_integrated_steps(suite) - 1} "
             "(the number of intervals), so it lies in the metric's range; Final = value after the last step. "
             "Mean +- standard deviation over sessions.", ""]
    header = ["dataset", "robot user", "sessions"] + [f"{n} {k}" for n in names for k in ("AUC", "Final")]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (dataset, user), group in _groups(records).items():
        cells = [dataset, user, str(len(group))]
        for n in names:
            for k in ("auc", "final"):
                values = np.array([r[f"{n}_{k}"] for r in group], dtype=float)
                cells.append(f"{values.mean():.4f} +- {values.std():.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    skipped = sum(1 for r in records if r.get("empty_reference"))
    if skipped:
        lines += ["", f"{skipped} session(s) skipped because the class is absent from the case."]
    return "\n".join(lines) + "\n"


# valid range of each metric family, for clipping bands (distances: >= 0, unbounded above)
_BOUNDED = {"dice": (0.0, 1.0), "iou": (0.0, 1.0), "nsd": (0.0, 1.0)}


def _metric_axis(name: str) -> tuple[str, tuple[float, float | None]]:
    """Axis label (with unit) and valid range of a metric column such as ``dice``, ``nsd_1mm`` or ``hd95``."""
    family = name.split("_")[0]
    if family in _BOUNDED:
        return f"{name} (0-1)", _BOUNDED[family]
    return f"{name} (mm)", (0.0, None)  # surface distances, in millimetres (physical spacing)


def plot_curves(suite, records: list[dict], names: list[str], folder: Path) -> list[Path]:
    """One PNG per dataset and metric: mean metric vs interaction step, one line per robot user, with a
    band of +-1 standard deviation across sessions clipped to the metric's valid range; legend outside the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    datasets = sorted({r["dataset"] for r in records})
    for dataset in datasets:
        for name in names:
            label, (low, high) = _metric_axis(name)
            fig, ax = plt.subplots(figsize=(7.5, 4), dpi=100)
            for (d, user), group in _groups(records).items():
                if d != dataset:
                    continue
                curves = np.array([[s[name] for s in r["steps"]] for r in group], dtype=float)
                steps = np.arange(curves.shape[1])
                mean, sd = np.nanmean(curves, axis=0), np.nanstd(curves, axis=0)
                line, = ax.plot(steps, mean, marker="o", label=f"{user} (n={len(group)})")
                ax.fill_between(steps, np.clip(mean - sd, low, high), np.clip(mean + sd, low, high),
                                color=line.get_color(), alpha=0.15, linewidth=0)
            ax.fill_between([], [], [], color="grey", alpha=0.3, label="band: mean +- 1 SD over sessions")
            if high is not None:
                ax.set_ylim(low - 0.02, high + 0.02)
            else:
                ax.set_ylim(bottom=low)
            ax.set_xlabel("interaction step (0 = first prompt)")
            ax.set_ylabel(label)
            ax.set_title(f"{dataset}: {name} ({suite.model})")
            ax.set_xticks(range(suite.steps + 1))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
            path = folder / f"{dataset}_{name}.png"
            fig.tight_layout()
            fig.savefig(path)
            plt.close(fig)
            written.append(path)
    return written
