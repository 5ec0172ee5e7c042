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


def plot_curves(suite, records: list[dict], names: list[str], folder: Path) -> list[Path]:
    """One PNG per dataset and metric: mean metric vs interaction step, one line per robot user."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    datasets = sorted({r["dataset"] for r in records})
    for dataset in datasets:
        for name in names:
            fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
            for (d, user), group in _groups(records).items():
                if d != dataset:
                    continue
                curves = np.array([[s[name] for s in r["steps"]] for r in group], dtype=float)
                steps = np.arange(curves.shape[1])
                mean = curves.mean(axis=0)
                ax.plot(steps, mean, marker="o", label=f"{user} (n={len(group)})")
                ax.fill_between(steps, mean - curves.std(axis=0), mean + curves.std(axis=0), alpha=0.15)
            ax.set_xlabel("interaction step")
            ax.set_ylabel(name)
            ax.set_title(f"{dataset}: {name} ({suite.model})")
            ax.set_xticks(range(suite.steps + 1))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            path = folder / f"{dataset}_{name}.png"
            fig.tight_layout()
            fig.savefig(path)
            plt.close(fig)
            written.append(path)
    return written


def write_interaction_sheets(suite, tasks, out: Path, root, registry_dirs) -> list[Path]:
    """Contact sheets of every robot user's interactions on the first cases, on the image."""
    from omnimedseg.benchmark.runner import _open_dataset
    from omnimedseg.interactive import get_robot_user, run_robot_session
    from omnimedseg.interactive.contact_sheet import contact_sheet

    folder = out / "sheets"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    seen: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for task in tasks:
        key = (task.index, task.class_name)
        if key not in seen[task.dataset.id] and len(seen[task.dataset.id]) < suite.sheets:
            seen[task.dataset.id].append(key)
    for task_dataset_id, keys in seen.items():
        selection = next(t.dataset for t in tasks if t.dataset.id == task_dataset_id)
        dataset = _open_dataset(selection, root, registry_dirs)
        for index, class_name in keys:
            case, image, masks, _ = dataset.raw_item(index)
            label = masks[dataset.class_names.index(class_name)]
            if not label.any():
                continue
            grey = image.mean(axis=-1) if image.ndim == label.ndim + 1 else image
            panels = {}
            for user_name in suite.robot_users:
                # prompts as the user would give them against a model that never improves:
                # the full interaction budget is visible on one image.
                session = run_robot_session(get_robot_user(user_name), label,
                                            lambda prompts, previous: np.zeros_like(label), suite.steps,
                                            seed=suite.seed, case_id=case["case_id"], class_name=class_name)
                panels[user_name] = [s.interaction for s in session if hasattr(s.interaction, "positive")]
            slice_kw = {}
            if label.ndim == 3:
                axis = 2
                slice_kw = {"slice_axis": axis,
                            "slice_index": int(np.argmax(label.reshape(-1, label.shape[2]).sum(0)))}
            path = folder / f"{task_dataset_id}_{case['case_id']}_{class_name}.png"
            contact_sheet(grey, label, panels, path, columns=min(4, len(panels)), **slice_kw)
            written.append(path)
    return written
