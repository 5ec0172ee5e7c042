"""Run a suite: model x datasets x robot users x metrics, resumable and parallel.

The unit of work is one task = (dataset, case, class, robot user): one interactive
session of ``steps + 1`` interactions, scored after each. Each finished task is
written atomically to ``records/<task>.json``, so an interrupted run resumes where it
stopped; tasks run in worker processes; results never depend on order because every
random draw comes from a Generator seeded by (seed, case, class, step, user).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from omnimedseg import __version__
from omnimedseg.benchmark.suite import DatasetSelection, Suite, selection_labels
from omnimedseg.errors import OmnimedsegError, UsageError
from omnimedseg.files import atomic_write_text
from omnimedseg.progress import SILENT, Progress
from omnimedseg.workers import die_with_parent


@dataclass(frozen=True)
class Task:
    dataset: DatasetSelection
    index: int
    case_id: str
    class_name: str
    user: str
    label: str = ""  # what the results are reported under (suite.selection_labels); the dataset id by default

    @property
    def key(self) -> str:
        """The record's name: one per session (the slice axis too: slice k of axis 0 is not slice k of axis 2)."""
        axis = f"|axis{self.dataset.axis}" if self.dataset.mode == "slices" else ""
        text = f"{self.dataset.id}|{self.dataset.mode}|{self.case_id}|{self.class_name}|{self.user}{axis}"
        slug = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{self.dataset.id}_{self.case_id}")
        return f"{slug}_{hashlib.sha256(text.encode()).hexdigest()[:12]}"

    @property
    def reported_as(self) -> str:
        return self.label or self.dataset.id


@lru_cache(maxsize=8)
def _open_dataset(selection: DatasetSelection, root: str | None, registry_dirs: tuple[str, ...]):
    from omnimedseg.data import ConvertedDataset, SliceDataset

    common = dict(split=selection.split, root=root, registry_dirs=registry_dirs)
    if selection.mode == "slices":
        foreground = selection.classes[0] if len(selection.classes) == 1 else None
        return SliceDataset(selection.id, axis=selection.axis, foreground_class=foreground, **common)
    return ConvertedDataset(selection.id, **common)


@lru_cache(maxsize=2)
def _model(name: str, params_json: str):
    from omnimedseg.benchmark.models import get_model

    return get_model(name, **json.loads(params_json))


def plan(suite: Suite, root: str | None = None, registry_dirs: tuple[str, ...] = ()) -> list[Task]:
    """Every task of the suite, in a deterministic order."""
    tasks = []
    labels = selection_labels(suite.datasets)
    for selection in suite.datasets:
        dataset = _open_dataset(selection, root, registry_dirs)
        unknown = set(selection.classes) - set(dataset.class_names)
        if unknown:
            raise UsageError(f"suite {suite.name}: {selection.id} has no class(es) {sorted(unknown)}; "
                             f"classes are {dataset.class_names}")
        classes = selection.classes or tuple(dataset.class_names)
        n = len(dataset) if selection.max_cases is None else min(selection.max_cases, len(dataset))
        for index in range(n):
            entry = dataset.raw_item(index)[0] if selection.mode == "slices" else dataset.cases[index]
            case_id = entry["case_id"] + (f"_s{entry['slice_index']}" if "slice_index" in entry else "")
            unlabelled = set(entry.get("unlabelled", ()))  # not annotated in this case: unknown, not empty
            for class_name in (c for c in classes if c not in unlabelled):
                tasks.extend(Task(selection, index, case_id, class_name, user, labels[selection])
                             for user in suite.robot_users)
    return tasks


def run_task(suite: Suite, task: Task, root: str | None, registry_dirs: tuple[str, ...],
             sheet: Path | None = None) -> dict:
    """One interactive session, scored after every step; returns its record (with every prompt
    given, in full, per step). With ``sheet``, also draws the session there from that record."""
    from omnimedseg.interactive import get_robot_user, run_robot_session
    from omnimedseg.interactive.prompts import prompt_to_dict
    from omnimedseg.metrics import InteractiveMetric, get_metric

    dataset = _open_dataset(task.dataset, root, registry_dirs)
    case, image, masks, affine = dataset.raw_item(task.index)
    if task.class_name in case.get("unlabelled", ()):
        raise UsageError(f"{task.dataset.id} case {task.case_id}: class {task.class_name!r} is not annotated in "
                         f"this case (dataset.json unlabelled); it has no reference to score against")
    reference = masks[dataset.class_names.index(task.class_name)]
    ignore = dataset.ignore_mask(task.index)  # unlabelled / outside the field of view: not prompted, not scored
    spacing = tuple(case["spacing"]) if case.get("spacing") else None
    model = _model(suite.model, json.dumps(suite.model_params, sort_keys=True))
    model.set_image(image, {**case, "affine": affine, "modality": dataset.modality, "dataset": dataset.dataset_id,
                            "class_name": task.class_name})
    record = {"dataset": task.reported_as, "case_id": task.case_id, "class_name": task.class_name,
              "robot_user": task.user, "empty_reference": not reference.any(), "steps": []}
    if not reference.any():
        return record  # nothing to segment: recorded, not scored
    user = get_robot_user(task.user)
    initial = get_robot_user(suite.initial_user) if suite.initial_user else None
    ref = reference if model.needs_reference else None
    session = run_robot_session(user, reference, lambda prompts, previous: model.predict(prompts, previous, ref),
                                suite.steps, seed=suite.seed, case_id=task.case_id, class_name=task.class_name,
                                spacing=spacing, initial_user=initial, ignore=ignore)
    metrics = [get_metric(m.name, **m.params) for m in suite.metrics]
    for step in session:
        values = {m.name: float(m(step.prediction, reference, spacing=spacing, ignore=ignore)) for m in metrics}
        record["steps"].append({"step": step.step, "interaction": type(step.interaction).__name__, **values})
    for m in metrics:
        score = InteractiveMetric(m, include_step0=suite.include_step0).summarise(
            [s[m.name] for s in record["steps"]])
        record[f"{m.name}_auc"] = score.auc_normalised
        record[f"{m.name}_final"] = score.final
    record["prompts"] = [prompt_to_dict(s.interaction) for s in session]
    if sheet is not None:
        draw_session(suite, record, image, reference, [s.prediction for s in session], ignore, sheet, affine=affine)
    return record


def draw_session(suite: Suite, record: dict, image, reference, predictions, ignore, path: Path, affine=None):
    """The interaction sheet of one session, drawn from its record: the prompts are those recorded
    (so those that were scored), one panel per step with the prediction it was scored on and Dice.
    A volume with its ``affine`` (the converted NIfTI's) is drawn in the radiological axial view of QA
    sheets; a 2D image (a slice of a volume included) or a volume without one, as stored.
    Returns :func:`~omnimedseg.interactive.contact_sheet.session_sheet`'s ``(path, panel placements)``."""
    import numpy as np

    from omnimedseg.interactive.contact_sheet import SessionPanel, session_sheet
    from omnimedseg.interactive.prompts import NoInteraction, prompt_from_dict
    from omnimedseg.metrics import get_metric

    interactions = [prompt_from_dict(p) for p in record["prompts"]]
    panels = []
    for step, (interaction, prediction) in enumerate(zip(interactions, predictions)):
        given = tuple(p for p in interactions[:step + 1] if not isinstance(p, NoInteraction))
        value = record["steps"][step].get("dice")
        if value is None:  # the suite does not score Dice: computed for the picture only
            value = float(get_metric("dice")(prediction, reference, ignore=ignore))
        panels.append(SessionPanel(step, given, interaction, prediction, value))
    image = np.asarray(image)
    grey = image.mean(axis=-1) if image.ndim == reference.ndim + 1 else image
    heading = (f"{record['dataset']} {record['case_id']} {record['class_name']} - user {record['robot_user']}, "
               f"model {suite.model}: prompts and predictions as scored")
    path.parent.mkdir(parents=True, exist_ok=True)
    geometry = affine if np.ndim(reference) == 3 and affine is not None and np.isfinite(affine).all() else None
    return session_sheet(grey, reference, panels, path, heading=heading, affine=geometry)


def sheet_tasks(suite: Suite, tasks: list[Task]) -> set[Task]:
    """Sessions drawn as interaction sheets: every user on the first ``suite.sheets`` (case, class) per dataset."""
    chosen: dict[str, list[tuple[int, str]]] = {}
    for task in tasks:
        keys = chosen.setdefault(task.reported_as, [])
        if (task.index, task.class_name) not in keys and len(keys) < suite.sheets:
            keys.append((task.index, task.class_name))
    return {t for t in tasks if (t.index, t.class_name) in chosen[t.reported_as]}


def sheet_path(out: Path, task: Task) -> Path:
    slug = "".join(c if c.isalnum() or c in "._-" else "_"
                   for c in f"{task.reported_as}_{task.case_id}_{task.class_name}_{task.user}")
    return out / "sheets" / f"{slug}.png"


def run_benchmark(suite: Suite, out: Path, root: str | None = None, registry_dirs: tuple[str, ...] = (),
                  workers: int = 1, progress: Progress = SILENT) -> Path:
    """Run (or resume) ``suite`` into ``out``; writes records, tables, summary and plots."""
    out = Path(out)
    tasks = plan(suite, root, registry_dirs)  # first: a suite without data fails before any folder is made
    with _writer_lock(out):
        return _run_locked(suite, tasks, out, root, registry_dirs, workers, progress)


@contextmanager
def _writer_lock(out: Path) -> Iterator[None]:
    """One run writes ``out`` at a time: two overlapping runs of other configurations had both passed the
    configuration check and mixed their records. The lock file lies beside the folder (made later)."""
    from filelock import FileLock, Timeout

    out.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out.with_name(f".{out.name}.lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UsageError(f"another omnimedseg benchmark is writing to {out}; wait for it to finish or choose "
                         f"another --out") from None
    try:
        yield
    finally:
        lock.release()


def _run_locked(suite: Suite, tasks: list[Task], out: Path, root: str | None, registry_dirs: tuple[str, ...],
                workers: int, progress: Progress) -> Path:
    from omnimedseg.benchmark import report

    records_dir = out / "records"
    config_path = out / "config.json"
    config = {"suite": suite.to_dict(), "config_hash": suite.config_hash, "tool_version": __version__}
    if config_path.is_file():
        previous = json.loads(config_path.read_text())
        if previous.get("config_hash") != suite.config_hash:
            raise UsageError(f"{out} holds results of another configuration (hash {previous.get('config_hash')} "
                             f"vs {suite.config_hash}); choose another --out or delete that folder")
    records_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(config_path, json.dumps(config, indent=2) + "\n")
    drawn = sheet_tasks(suite, tasks)
    sheets = {t: sheet_path(out, t) if t in drawn else None for t in tasks}
    # a session whose sheet is missing (``sheets`` is not part of the configuration) runs again:
    # it is deterministic, so its record comes out the same
    todo = [t for t in tasks if not (records_dir / f"{t.key}.json").is_file()
            or (sheets[t] is not None and not sheets[t].is_file() and _scored(records_dir, t))]
    reused = len(tasks) - len(todo)
    if reused:
        progress.note(f"resuming {out}: {reused} of {len(tasks)} session(s) reused from {records_dir}, "
                      f"{len(todo)} to run")
    with progress.task(f"benchmark {suite.name}", len(tasks), unit="task") as advance:
        advance(reused)
        if workers <= 1:
            for task in todo:
                _save(records_dir, task, _session(task, run_task, suite, task, root, registry_dirs, sheets[task]))
                advance(1)
        else:
            with ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent,
                                     initargs=(os.getpid(),)) as pool:
                futures = {pool.submit(run_task, suite, t, root, registry_dirs, sheets[t]): t for t in todo}
                try:
                    for future in as_completed(futures):  # each record kept as it comes: a failure loses none
                        _save(records_dir, futures[future], _session(futures[future], future.result))
                        advance(1)
                except BaseException:
                    pool.shutdown(cancel_futures=True)  # the queued sessions do not run for nothing
                    raise
    records = [json.loads((records_dir / f"{t.key}.json").read_text()) for t in tasks]
    report.write_reports(suite, records, out)
    return out


def _session(task: Task, call, *args):
    """``call(*args)``, an error naming the session it concerns (the CLI prints one line)."""
    try:
        return call(*args)
    except Exception as exc:  # a model plugin raises anything
        kind = type(exc) if isinstance(exc, OmnimedsegError) else OmnimedsegError
        detail = str(exc) if isinstance(exc, OmnimedsegError) else f"{type(exc).__name__}: {exc}"
        raise kind(f"benchmark session {task.reported_as} case {task.case_id} class {task.class_name} user "
                   f"{task.user}: {' '.join(detail.split())}; finished sessions are kept: fix it and rerun the same "
                   f"command") from exc


def _scored(records_dir: Path, task: Task) -> bool:
    """Whether the session's record has steps (sessions of an absent class have no sheet)."""
    return bool(json.loads((records_dir / f"{task.key}.json").read_text())["steps"])


def _save(records_dir: Path, task: Task, record: dict) -> None:
    atomic_write_text(records_dir / f"{task.key}.json", json.dumps(record) + "\n")


__all__ = ["Task", "plan", "run_task", "run_benchmark", "draw_session"]
