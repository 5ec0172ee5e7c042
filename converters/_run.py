"""Run a converter: read every case, check it, write the standard output atomically.

Output contract: docs/format.md. Cases are written into ``.<version>.partial`` beside
the final folder; each finished case leaves a record (its files and their sha256) in
``.cases/``, so a run that was killed half-way resumes at case granularity: a rerun
reuses every case whose recorded output hashes still match and converts the rest. The
dataset files are written last, ``.complete`` after them, and the folder is renamed into
place: a reader never sees a half-written dataset and a previous complete output stays
intact until a new one is complete.

Memory per case is bounded whatever the number of classes: the image channels, masks,
rater masks and instance maps are read, checked and written one at a time (a label map is
split class by class), so at most the image grid plus one label map and one mask is held.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from omnimedseg import __version__, paths
from omnimedseg.converters._base import CASE_ID_PATTERN, SPLIT_PATTERN, Case, Converter, Source
from omnimedseg.converters.formats.geometry import check_same_geometry, conform_to_grid
from omnimedseg.converters.formats.imagedata import ImageData
from omnimedseg.errors import ConversionError, DatasetNotFoundError, OmnimedsegError, UsageError
from omnimedseg.files import atomic_write_text, dataset_lock, file_hashes, naming_errors
from omnimedseg.plugins import load_plugin
from omnimedseg.progress import SILENT, Progress
from omnimedseg.registry import Card
from omnimedseg.registry.card import CONSENSUS
from omnimedseg.workers import die_with_parent

COMPLETE_MARKER = ".complete"
CASE_RECORDS = ".cases"  # finished-case records inside the partial folder (removed before completion)
RUN_RECORD = ".run.json"  # what the partial folder was started for; another run starts afresh


@dataclass(frozen=True)
class Layout:
    """File names inside one converted dataset folder (relative, POSIX); see docs/format.md."""

    suffix: str
    channels: tuple[str, ...] = ("image",)

    def image(self, case_id: str, channel: str | None = None) -> str:
        if len(self.channels) == 1:
            return f"images/{case_id}{self.suffix}"
        return f"images/{case_id}/{channel}{self.suffix}"

    def mask(self, case_id: str, class_name: str) -> str:
        return f"masks/{case_id}/{class_name}{self.suffix}"

    def rater_mask(self, rater: str, case_id: str, class_name: str) -> str:
        return f"raters/{rater}/{case_id}/{class_name}{self.suffix}"

    def instances(self, case_id: str, class_name: str) -> str:
        return f"instances/{case_id}/{class_name}{self.suffix}"

    def ignore(self, case_id: str) -> str:
        return f"ignore/{case_id}{self.suffix}"

    @classmethod
    def for_card(cls, card: Card) -> "Layout":
        return cls(".png" if card.dimensionality == 2 else ".nii.gz", tuple(card.channel_names))


def converter_for(card: Card) -> Converter:
    return load_plugin("converters", card.converter, Converter)(card)


def collect_cases(card: Card, raw: Path, converter: Converter | None = None) -> list[Case]:
    """All cases of ``card`` under ``raw``, checked for ids, splits, channels, raters and class names."""
    converter = converter or converter_for(card)
    try:
        cases = list(converter.cases(raw))
    except OmnimedsegError:
        raise
    except Exception as exc:  # a converter's own bug (a plugin's too): name the dataset and the converter
        raise ConversionError(f"{card.id}: converter {type(converter).__module__}.{type(converter).__name__} failed "
                              f"while listing the cases of {raw} ({type(exc).__name__}: {' '.join(str(exc).split())}); "
                              f"rerun with --debug for the traceback and report it to the converter's "
                              f"authors") from exc
    if not cases:
        raise ConversionError(f"{card.id}: the converter found no cases under {raw}; expected the layout in "
                              f"docs/datasets/{card.id}.md; re-run: omnimedseg download {card.id}")
    seen: set[str] = set()
    for case in cases:
        if not CASE_ID_PATTERN.match(case.case_id):
            raise ConversionError(f"{card.id}: case id {case.case_id!r} must be letters, digits, '.', '_' or '-'")
        if case.case_id in seen:
            raise ConversionError(f"{card.id}: case id {case.case_id!r} occurs twice; case ids must be unique")
        seen.add(case.case_id)
        problem = _contract_problem(card, case)
        if problem:
            raise ConversionError(f"{card.id}: case {case.case_id}: {problem} ({card.path})")
    return cases


def is_complete(out: Path, sample: int | None = None) -> bool:
    """Whether ``out`` holds a complete conversion of the same kind (all cases, or the same ``--sample``)."""
    try:
        return json.loads((out / COMPLETE_MARKER).read_text()).get("sample") == sample
    except (OSError, ValueError):
        return False


def _contract_problem(card: Card, case: Case) -> str | None:
    """What in a case record breaks the contract with its card (None when it is fine)."""
    classes, channels = set(card.class_names), card.channel_names
    if not SPLIT_PATTERN.match(case.split):
        return f"split {case.split!r} is not snake_case"
    if case.image is not None and case.channels:
        return "give either image or channels, not both"
    given = list(case.channels) if case.channels else (channels[:1] if case.image is not None else [])
    if sorted(given) != sorted(channels):
        return f"channels {given} differ from the card's channels {channels}"
    if case.masks and case.label is not None:
        return "give either masks or label, not both"
    for what, names in (("mask", case.masks), ("instance", case.instances),
                        *((f"rater {r!r} mask", m) for r, m in case.raters.items())):
        unknown = set(names) - classes
        if unknown:
            return f"{what} class(es) {sorted(unknown)} are not in the card's classes {sorted(classes)}"
    if case.unlabelled:
        unlabelled = set(case.unlabelled)
        if not unlabelled <= classes:
            return f"unlabelled class(es) {sorted(unlabelled - classes)} are not in the card's classes {sorted(classes)}"
        if not case.labelled or unlabelled >= classes:
            return "every class is unlabelled; a case without annotations gives no masks (and no unlabelled)"
        given = (set(case.masks) | set(case.instances)
                 | {c for by_class in case.raters.values() for c in by_class}) & unlabelled
        if given:
            return f"class(es) {sorted(given)} have a mask source but are listed as unlabelled"
    strangers = sorted(set(case.raters) - set(card.raters))
    if strangers:
        return f"raters {strangers} are not in the card's [raters] names {list(card.raters)}"
    return None


@dataclass(frozen=True)
class _Job:
    """Everything a worker (process or Dask) needs to convert one case."""

    card: Card
    case: Case
    label_values: dict[int, str]
    raw: Path
    staging: Path
    layout: Layout
    keep_going: bool
    shared: frozenset[Path] = frozenset()  # this case's files that other cases read too (see _presence)


def convert_dataset(card: Card, root: str | os.PathLike | None = None, force: bool = False, workers: int = 1,
                    progress: Progress = SILENT, *, raw: str | os.PathLike | None = None, keep_going: bool = False,
                    scheduler: str | None = None, sample: int | None = None) -> Path:
    """Convert ``card``'s raw data to the standard output; returns the output folder.

    ``raw``: an extracted raw tree to use instead of ``<root>/raw/<id>`` (not verified
    against the card; provenance says so). ``keep_going``: a broken case is listed as
    failed in dataset.json instead of stopping the run. ``scheduler``: address of a Dask
    distributed scheduler that converts the cases (else ``workers`` local processes).
    ``sample``: only the first ``sample`` cases of each split
    (:func:`~omnimedseg.converters._sample.sample_cases`), recorded in dataset.json.
    A complete output is not redone unless ``force``; an interrupted run resumes. The dataset's lock
    is held throughout (re-entrant: the CLI already holds it), as for downloads.
    """
    with dataset_lock(card.id, root):
        return _convert_locked(card, root, force, workers, progress, raw, keep_going, scheduler, sample)


def _convert_locked(card: Card, root, force: bool, workers: int, progress: Progress, raw, keep_going: bool,
                    scheduler: str | None, sample: int | None) -> Path:
    out = paths.converted_dir(card.id, card.converter_version, root)
    _finish_interrupted_swap(out)
    if is_complete(out, sample) and not force:
        shutil.rmtree(_partial_dir(out), ignore_errors=True)  # left by a killed --force or other --sample run
        return out
    if is_complete(out, None) and sample is not None and not force:
        raise UsageError(f"{card.id}: {out} holds a complete conversion of every case; --sample {sample} would "
                         f"replace it with a sample: use it as it is, or pass --force to replace it")
    raw_verified = raw is None
    raw = Path(raw).expanduser().resolve() if raw is not None else paths.raw_dir(card.id, root)
    if not raw.is_dir():
        hint = "pass the extracted release folder to --raw" if not raw_verified else \
            f"run: omnimedseg download {card.id}"
        raise DatasetNotFoundError(f"{card.id}: raw data not found in {raw}; {hint}")
    converter = converter_for(card)
    cases = collect_cases(card, raw, converter)
    shared = shared_files(cases)  # of the whole release, before any sampling
    if sample is not None:
        from omnimedseg.converters._sample import sample_cases

        cases = sample_cases(cases, sample)
    label_values = dict(converter.label_values or card.classes)
    if not set(label_values.values()) <= set(card.class_names):
        raise ConversionError(f"{card.id}: label_values name classes {sorted(set(label_values.values()))} "
                              f"but the card ({card.path}) defines {card.class_names}")
    staging = _open_partial(out, card, raw, raw_verified, force, sample)
    records = _write_cases(card, cases, label_values, raw, staging, workers, progress, keep_going, scheduler, shared)
    _remove_strays(staging, records)
    _write_dataset_files(card, cases, records, raw, raw_verified, staging, sample)
    shutil.rmtree(staging / CASE_RECORDS)
    (staging / RUN_RECORD).unlink()
    atomic_write_text(staging / COMPLETE_MARKER, json.dumps({"tool_version": __version__, "sample": sample}) + "\n")
    _swap_into_place(staging, out)
    return out


def _partial_dir(out: Path) -> Path:
    return out.with_name(f".{out.name}.partial")


def _old_dir(out: Path) -> Path:
    """Where the previous output waits during the swap (removed after it)."""
    return out.with_name(f".{out.name}.old")


def _finish_interrupted_swap(out: Path) -> None:
    """Complete what a run killed inside :func:`_swap_into_place` left: a complete partial folder
    and no output (killed between its two renames) becomes the output; the set-aside old output goes."""
    staging = _partial_dir(out)
    if not out.exists() and (staging / COMPLETE_MARKER).is_file():
        os.replace(staging, out)
    shutil.rmtree(_old_dir(out), ignore_errors=True)


def _open_partial(out: Path, card: Card, raw: Path, raw_verified: bool, force: bool,
                  sample: int | None = None) -> Path:
    """The partial folder of this run; kept from an interrupted run with the same inputs, else started afresh."""
    staging = _partial_dir(out)
    run = {"card_sha256": card.sha256, "converter_version": card.converter_version, "tool_version": __version__,
           "raw": str(raw), "raw_verified": raw_verified, "sample": sample}
    try:
        previous = json.loads((staging / RUN_RECORD).read_text())
    except (OSError, ValueError):
        previous = None
    if force or previous != run:
        shutil.rmtree(staging, ignore_errors=True)
    (staging / CASE_RECORDS).mkdir(parents=True, exist_ok=True)
    atomic_write_text(staging / RUN_RECORD, json.dumps(run, indent=2) + "\n")
    return staging


def _remove_strays(staging: Path, records: list[dict]) -> None:
    """Delete files an interrupted or failed case left behind (no finished record lists them), and the
    temporary files of a run killed while writing its records (``files.atomic_write_text``)."""
    for path in staging.glob(".*.tmp"):
        path.unlink()
    kept = {rel for r in records if r["status"] == "done" for rel in r["provenance"]}
    for sub in ("images", "masks", "raters", "instances", "ignore"):
        for path in sorted((staging / sub).rglob("*"), reverse=True):
            if path.is_file() and path.relative_to(staging).as_posix() not in kept:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def _swap_into_place(staging: Path, out: Path) -> None:
    """Replace ``out`` by the complete ``staging`` folder; the old one is removed only after the swap."""
    old = _old_dir(out)
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():  # a kill from here on is completed by the next run (_finish_interrupted_swap)
        os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def _write_cases(card: Card, cases: list[Case], label_values: dict[int, str], raw: Path, staging: Path,
                 workers: int, progress: Progress, keep_going: bool, scheduler: str | None,
                 shared: frozenset[Path] = frozenset()) -> list[dict]:
    """One record per case, in case order: finished ones reused, the rest converted."""
    layout = Layout.for_card(card)
    records: dict[str, dict] = {}
    jobs = []
    for case in cases:
        finished = _finished_record(staging, case)
        if finished is not None:
            records[case.case_id] = finished
        else:
            own_shared = frozenset(p for p in _case_files(case) if p in shared)
            jobs.append(_Job(card, case, label_values, raw, staging, layout, keep_going, own_shared))
    resumed = f" (resuming: {len(records)} of {len(cases)} cases already converted)" if records else ""
    with progress.task(f"convert {card.id}{resumed}", len(jobs), unit="case") as advance:
        for record in _run_jobs(jobs, workers, scheduler):
            records[record["case_id"]] = record
            advance(1)
    return [records[case.case_id] for case in cases]


def _run_jobs(jobs: list[_Job], workers: int, scheduler: str | None) -> Iterator[dict]:
    """Case records as jobs finish: here, in ``workers`` processes, or on a Dask cluster."""
    if scheduler:
        yield from _run_on_dask(jobs, scheduler)
    elif workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield convert_case(job)
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=workers, initializer=_start_worker,
                                 initargs=(workers, os.getpid())) as pool:
            futures = [pool.submit(convert_case, job) for job in jobs]
            try:
                for future in as_completed(futures):
                    yield future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise


def _start_worker(workers: int, parent: int) -> None:
    """A worker process ends with the run that started it, and the workers split the cores."""
    die_with_parent(parent)
    _share_cores(workers)


def _share_cores(workers: int) -> None:
    """Worker processes split the cores: each deflates .nii.gz with cores / workers threads, not all of them."""
    from omnimedseg.converters.formats import nifti

    if not os.environ.get("OMNIMEDSEG_GZIP_THREADS"):
        nifti.GZIP_THREADS = max(1, (os.cpu_count() or 1) // workers)


def _run_on_dask(jobs: list[_Job], scheduler: str) -> Iterator[dict]:
    """Send cases to an existing Dask distributed cluster (workers must see the same file system)."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise UsageError("--scheduler needs Dask distributed; install it: pip install 'omnimedseg[distributed]'") \
            from None
    try:
        _check_reachable(scheduler)
        client = Client(scheduler, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); start one (dask scheduler, "
                         f"dask-jobqueue) or omit --scheduler to convert locally") from None
    with client:
        futures = client.map(convert_case, jobs, pure=False, key=[f"convert-{j.case.case_id}" for j in jobs])
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            client.cancel(futures)


def _check_reachable(address: str) -> None:
    """Refuse a TCP scheduler address nobody listens on at once (Dask itself retries for its whole timeout)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme == "tcp" and parts.hostname and parts.port:
        socket.create_connection((parts.hostname, parts.port), timeout=5).close()


def _finished_record(staging: Path, case: Case) -> dict | None:
    """The record of a case a previous run finished, if its outputs and raw sources are unchanged."""
    path = staging / CASE_RECORDS / f"{case.case_id}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("case") != _case_fingerprint(case):
        return None
    for facts in record["raw_stat"].values():
        try:
            st = os.stat(facts["path"])
        except OSError:
            return None
        if _stat_facts(st) != facts["stat"]:
            return None
    for rel, prov in record["provenance"].items():
        target = staging / rel
        if not target.is_file() or file_hashes(target)["sha256"] != prov["sha256"]:
            return None
    return record


def _stat_facts(st: os.stat_result) -> list[int]:
    """What says a raw file is unchanged since a case read it: the change time too, since ``cp -p``,
    ``rsync -t`` and archive extraction restore size and mtime but cannot set ctime back."""
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def _case_fingerprint(case: Case) -> str:
    """What identifies a case record: its sources (paths + operations), split, spacing and meta."""
    text = json.dumps([case.case_id, case.split, [list(map(str, s.paths)) + [s.operation] for s in case.sources()],
                       list(case.spacing) if case.spacing is not None else None, dict(case.meta),
                       {k: list(map(str, s.paths)) + [s.operation] for k, s in case.masks.items()},
                       sorted(case.raters), sorted(case.instances), sorted(case.unlabelled), case.problem],
                      sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# ----------------------------------------------------------------------------------- one case

def convert_case(job: _Job) -> dict:
    """Read, check and write one case (a module-level function so processes and Dask can run it).

    Returns the case's record: ``status`` "done" (with its dataset.json entry and
    provenance), "absent" (none of its files exist) or "failed" (``keep_going`` only).
    """
    case = job.case
    try:
        if _presence(job.card, case, job.shared) == "absent":
            return {"case_id": case.case_id, "status": "absent", "split": case.split}
        if case.problem:
            raise ConversionError(case.problem)
        record = _CaseWriter(job).write()
    except OSError as exc:
        if exc.errno not in _OUTPUT_FULL:
            return _case_failed(job, exc)
        # the output side, not this case's data: never a "failed case" (with --keep-going a smaller output would
        # replace a good one), and the advice is about the disk
        raise ConversionError(f"{job.card.id}: case {case.case_id}: writing {exc.filename or job.staging} failed "
                              f"({exc.strerror}); free space (or write access) there, then rerun the same command: "
                              f"finished cases are kept") from None
    except Exception as exc:  # noqa: BLE001 - every failure of a case names the case
        return _case_failed(job, exc)
    record = json.loads(json.dumps(record))  # the same form a resumed run reads back
    atomic_write_text(job.staging / CASE_RECORDS / f"{case.case_id}.json", json.dumps(record) + "\n")
    return record


# Errors that come from where outputs are written (a full disk or quota, a read-only file system).
_OUTPUT_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def _case_failed(job: _Job, exc: Exception) -> dict:
    """Stop the run naming the case, or (``keep_going``) its "failed" record."""
    case = job.case
    message = str(exc) if isinstance(exc, OmnimedsegError) else f"{type(exc).__name__}: {exc}"
    message = " ".join(message.split())
    if not job.keep_going:
        raise ConversionError(f"{job.card.id}: case {case.case_id}: {message}; nothing was marked complete; "
                              f"fix or re-download the file and rerun (finished cases are kept), or pass "
                              f"--keep-going to convert the rest") from None
    return {"case_id": case.case_id, "status": "failed", "split": case.split, "error": message}


def _case_files(case: Case) -> list[Path]:
    """The raw files of a case: its sources' and its side files (``metadata_sources``, e.g. VerSe's per-case
    centroid JSON), so a missing side file makes a partial copy's case absent or a present case an error."""
    return list(dict.fromkeys([*(p for source in case.sources() for p in source.paths),
                               *map(Path, case.metadata_sources)]))


def shared_files(cases: list[Case]) -> frozenset[Path]:
    """Source files read by more than one case (a COCO JSON or CSV of masks for a whole split)."""
    seen: set[Path] = set()
    shared: set[Path] = set()
    for case in cases:
        for path in _case_files(case):
            (shared if path in seen else seen).add(path)
    return frozenset(shared)


def _presence(card: Card, case: Case, shared: frozenset[Path] = frozenset()) -> str:
    """"absent" when none of the case's OWN source files exists, "present" when all its files do;
    an error for a mix.

    Files other cases read too (``shared``: a split's COCO JSON) say nothing about whether this
    case is in a partial copy, so they are not evidence of presence; only when a case has no
    file of its own do they count. A present case still needs its shared files.
    """
    files = _case_files(case)
    missing = [p for p in files if not Path(p).exists()]
    if not missing:
        return "present"
    own = [p for p in files if p not in shared] or files
    if all(p in missing for p in own):
        return "absent"
    shown = ", ".join(str(p) for p in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    raise ConversionError(f"missing {shown} ({len(files) - len(missing)} of "
                          f"{len(files)} files of this case are present); expected every file of a present case; "
                          f"re-download: omnimedseg download {card.id}")


class _CaseWriter:
    """Writes one case's files into the staging folder, recording provenance for each."""

    def __init__(self, job: _Job):
        self.job, self.card, self.case, self.layout = job, job.card, job.case, job.layout
        self.provenance: dict[str, dict] = {}
        self._raw_hashes: dict[Path, str] = {}  # each raw file hashed once per case
        self._raw_stat: dict[str, dict] = {}
        self.grid: tuple[tuple[int, ...], np.ndarray | None, Path] | None = None  # spatial shape, affine, path
        self._image_facts: tuple = ((), None, None)  # full shape, affine, spacing of the first channel

    def write(self) -> dict:
        card, case, layout = self.card, self.case, self.layout
        channels = self._write_channels()
        masks, instances = self._write_masks()
        raters = self._write_raters(masks)
        ignore = None
        if case.ignore is not None:
            ignore = layout.ignore(case.case_id)
            self._write(ignore, self._load_mask(case.ignore, "ignore"), case.ignore)
        shape, affine, spacing = self._image_facts
        spacing = case.spacing if case.spacing is not None else spacing
        entry = {
            "case_id": case.case_id,
            "split": case.split,
            "image": channels[card.channel_names[0]],
            "channels": channels,
            "masks": masks,
            "raters": raters,
            "instances": instances,
            "ignore": ignore,
            "shape": list(shape),
            "spacing": [float(s) for s in spacing] if spacing is not None else None,
            "meta": dict(case.meta),
            "unlabelled": [c for c in card.class_names if c in case.unlabelled],
        }
        return {"case_id": case.case_id, "status": "done", "case": _case_fingerprint(case), "entry": entry,
                "provenance": self.provenance, "raw_stat": self._raw_stat}

    # -- images

    def _write_channels(self) -> dict[str, str]:
        case = self.case
        sources = dict(case.channels) if case.channels else {self.card.channel_names[0]: case.image}
        written = {}
        for channel in self.card.channel_names:
            source = sources[channel]
            image = source.load()
            self._check_image(image, source, channel)
            rel = self.layout.image(case.case_id, channel)
            self._write(rel, image, source)
            written[channel] = rel
            del image
        return written

    def _check_image(self, image: ImageData, source: Source, channel: str) -> None:
        card, where = self.card, source.paths[0]
        multi = len(card.channel_names) > 1
        if card.dimensionality == 2:
            if image.is_3d or image.array.ndim not in (2, 3) or \
                    (image.array.ndim == 3 and image.array.shape[2] > 4):
                raise ConversionError(f"{where}: expected a 2D image (rows, cols[, channels<=4]) for {card.id}, "
                                      f"found shape {image.array.shape}")
            if self.case.spacing is not None and len(self.case.spacing) != 2:
                raise ConversionError(f"{where}: 2D spacing must be (row, col) in mm, found {self.case.spacing}")
            spatial, affine = image.array.shape[:2], None
        else:
            if not image.is_3d or image.array.ndim not in (3, 4) or (multi and image.array.ndim != 3):
                raise ConversionError(f"{where}: expected a 3D volume with an affine for {card.id}"
                                      f"{f' channel {channel!r}' if multi else ''}, found shape {image.array.shape}"
                                      + ("" if image.is_3d else " without affine"))
            spatial, affine = image.array.shape[:3], image.affine
        if image.array.size == 0 or (multi and _constant(image.array)):
            raise ConversionError(f"{where}: channel {channel!r} is empty (every value "
                                  f"{image.array.flat[0] if image.array.size else 'missing'}); expected image data")
        if self.grid is None:
            self.grid = (tuple(spatial), affine, where)
            self._image_facts = (image.array.shape, affine, image.spacing)
        else:
            check_same_geometry(where, spatial, affine, self.grid[2], self.grid[0], self.grid[1])

    # -- masks

    def _check_on_grid(self, data: ImageData, path: Path) -> ImageData:
        """``data`` on the image grid: as read, or reoriented losslessly when it is the same voxel
        grid in another axis order (``meta["reoriented"]``, recorded in provenance); else an error."""
        return conform_to_grid(data, path, self.grid[0], self.grid[1], self.grid[2])

    def _load_mask(self, source: Source, what: str) -> ImageData:
        mask = self._check_on_grid(source.load(), source.paths[0])
        if mask.array.dtype != bool:
            raise ConversionError(f"{source.paths[0]}: reader {source.operation} returned {mask.array.dtype} for "
                                  f"{what}; mask readers must return a bool array")
        return mask

    def _write_masks(self) -> tuple[dict[str, str], dict[str, str]]:
        """Reference masks of every class (one at a time) and the instance maps; returns their paths."""
        case, layout = self.case, self.layout
        masks: dict[str, str] = {}
        instances: dict[str, str] = {}
        for name, mask, source in iter_reference_masks(self.card, case, self.job.label_values, self._check_on_grid,
                                                       self._load_mask):
            if mask is None:  # derived from the class's instance map
                instances[name] = layout.instances(case.case_id, name)
                mask = self._write_instances(name, instances[name])
            rel = layout.mask(case.case_id, name)
            self._write(rel, mask, source)
            masks[name] = rel
            del mask
        for name in self.card.class_names:
            if name in case.instances and name not in instances:
                instances[name] = layout.instances(case.case_id, name)
                self._write_instances(name, instances[name])
        return masks, instances

    def _write_instances(self, name: str, rel: str) -> ImageData:
        """Write the class's instance map (ids kept as published: stable) and return its semantic mask."""
        from omnimedseg.converters.formats.volumes import integral_labels

        source = self.case.instances[name]
        data = self._check_on_grid(source.load(), source.paths[0])
        ids = integral_labels(data.array, source.paths[0])
        low, high = (int(ids.min()), int(ids.max())) if ids.size else (0, 0)
        limit = 65535 if self.card.dimensionality == 2 else np.iinfo(np.uint32).max
        if low < 0 or high > limit:
            raise ConversionError(f"{source.paths[0]}: instance ids {low}..{high}; expected ids 0..{limit} "
                                  f"(0 = background)")
        stored = np.uint16 if high <= 65535 else np.uint32
        self._write(rel, ImageData(ids.astype(stored, copy=False), data.affine, meta=data.meta), source)
        return ImageData(ids != 0, data.affine, meta=data.meta)

    def _write_raters(self, masks: dict[str, str]) -> dict[str, dict[str, str]]:
        """Every rater's masks; the reference rater's are the reference masks (not written twice)."""
        case, card, layout = self.case, self.card, self.layout
        written: dict[str, dict[str, str]] = {}
        for rater in card.raters:
            if rater not in case.raters:
                continue
            by_class = case.raters[rater]
            missing = [c for c in card.class_names if c not in by_class and c not in case.unlabelled]
            if missing:
                raise ConversionError(f"rater {rater!r} has no mask for class(es) "
                                      f"{missing}; expected one source per class in {card.class_names}")
            if rater == card.reference_rater and _reference_from_rater(case, card):
                written[rater] = dict(masks)
                continue
            written[rater] = {}
            for name in (c for c in card.class_names if c not in case.unlabelled):
                rel = layout.rater_mask(rater, case.case_id, name)
                self._write(rel, self._load_mask(by_class[name], f"rater {rater!r} class {name!r}"), by_class[name])
                written[rater][name] = rel
        return written

    # -- files

    def _write(self, rel: str, data: ImageData, source: Source) -> None:
        path = self.job.staging / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        self.provenance[rel] = {"sha256": write_output(data, path), "operation": source.operation,
                                "sources": [self._raw_record(p) for p in source.paths],
                                **({"reoriented": data.meta["reoriented"]} if data.meta.get("reoriented") else {})}

    def _raw_record(self, path: Path) -> dict:
        path = Path(path)
        if path not in self._raw_hashes:
            rel = raw_relative(path, self.job.raw)
            st = path.stat()
            self._raw_hashes[path] = file_hashes(path)["sha256"]
            self._raw_stat[rel] = {"path": str(path), "stat": _stat_facts(st)}
        return {"path": raw_relative(path, self.job.raw), "sha256": self._raw_hashes[path]}


def _constant(array: np.ndarray) -> bool:
    first = array.flat[0]
    return bool((array == first).all())


def _reference_from_rater(case: Case, card: Card) -> bool:
    """True when the case gives no masks/label and the card's reference rater's masks stand in."""
    return not case.masks and case.label is None and card.reference_rater not in (None, CONSENSUS) \
        and card.reference_rater in case.raters


def iter_reference_masks(card: Card, case: Case, label_values: dict[int, str],
                         check_grid: Callable[[ImageData, Path], ImageData],
                         load_mask: Callable[[Source, str], ImageData]) -> Iterator[tuple[str, ImageData | None, Source]]:
    """(class, bool mask on the image grid, its source) for every class, one at a time.

    From a label map (read once, split class by class), per-class mask files, the
    reference rater's masks, or (mask None) the class's instance map. Only one mask is
    alive at a time, so memory does not grow with the number of classes. ``check_grid``
    returns the data on the image grid (reoriented when stored in another axis order).
    """
    if not case.labelled:
        return
    if case.label is not None:
        label = check_grid(case.label.load(), case.label.paths[0])
        present = present_values(label.array)
        unknown = sorted(set(present) - set(label_values) - {0})
        if unknown:
            raise ConversionError(f"{case.label.paths[0]}: label values {unknown} are not among the expected "
                                  f"{sorted(label_values)} (0 = background); map them in the card's classes "
                                  f"or the converter's label_values")
        by_class: dict[str, list[int]] = {}
        for value, name in label_values.items():
            by_class.setdefault(name, []).append(value)
    masks = dict(case.masks)
    if not masks and case.label is None and _reference_from_rater(case, card):
        masks = dict(case.raters[card.reference_rater])
    annotated = [n for n in card.class_names if n not in case.unlabelled]
    missing = [n for n in annotated
               if not (case.label is not None and n in by_class) and n not in masks and n not in case.instances]
    if missing:
        raise ConversionError(f"no mask for class(es) {missing}; every labelled "
                              f"case needs one source per class in {card.class_names} (masks, label, instances or "
                              f"the reference rater's masks) unless the case lists it in unlabelled")
    for name in annotated:
        if case.label is not None and name in by_class:
            values = by_class[name]
            array = label.array == values[0] if len(values) == 1 else np.isin(label.array, values)
            yield name, ImageData(array, label.affine, meta=label.meta), case.label
        elif name in masks:
            yield name, load_mask(masks[name], f"class {name!r}"), masks[name]
        else:
            yield name, None, case.instances[name]


def present_values(array: np.ndarray) -> list[int]:
    """Distinct values of an integer label array; a histogram instead of a sort when the range is small.

    Hand-written because ``np.unique`` sorts the whole volume (seconds for a CT-sized
    label map), while counting into a histogram is one pass.
    """
    if array.size and array.dtype.kind in "iub":
        flat = array.ravel(order="K")  # any memory order: no copy of a Fortran-ordered (nibabel) volume
        flat = flat.view(np.uint8) if flat.dtype == bool else flat
        low, high = int(flat.min()), int(flat.max())
        if high - low < (1 << 20):
            counts = np.bincount(flat if low == 0 else flat.astype(np.int64) - low, minlength=1)
            return [int(v) + low for v in np.flatnonzero(counts)]
    return [v.item() for v in np.unique(array)]


def write_output(data: ImageData, path: Path) -> str:
    """Write one output file (PNG for 2D, NIfTI for 3D); return its sha256.

    Both are hashed as they are written (PNGs are encoded in memory, NIfTI bytes are hashed
    on their way to the file): no output is read back.
    """
    if path.name.endswith(".png"):
        from omnimedseg.converters.formats.png import encode_png

        try:
            encoded = encode_png(data.array)
        except ConversionError as exc:
            raise ConversionError(f"{path}: {exc}") from None
        tmp = path.with_name(f".{path.name}.tmp")
        with naming_errors(path):  # a full disk's ENOSPC carries no file name
            tmp.write_bytes(encoded)
        os.replace(tmp, path)
        return hashlib.sha256(encoded).hexdigest()
    from omnimedseg.converters.formats.nifti import write_nifti

    digest = hashlib.sha256()
    write_nifti(data, path, digest=digest)
    return digest.hexdigest()


def raw_relative(path: Path, raw: Path) -> str:
    """``path`` relative to the raw folder; converters must read nothing outside it. Compared by name first:
    a raw tree of symlinks (``cp -rs``) lies under the folder although its targets do not."""
    for inside, folder in ((Path(os.path.abspath(path)), Path(os.path.abspath(raw))),
                           (Path(path).resolve(), raw.resolve())):
        try:
            return inside.relative_to(folder).as_posix()
        except ValueError:
            pass
    raise ConversionError(f"{path}: source file is outside the raw folder {raw}; converters must only "
                          f"read files under the raw folder")


# ------------------------------------------------------------------------------ dataset files

def _write_dataset_files(card: Card, cases: list[Case], records: list[dict], raw: Path, raw_verified: bool,
                         staging: Path, sample: int | None = None) -> None:
    done = [r for r in records if r["status"] == "done"]
    entries = [r["entry"] for r in done]
    absent = [{"case_id": r["case_id"], "split": r["split"]} for r in records if r["status"] == "absent"]
    failed = [{"case_id": r["case_id"], "split": r["split"], "error": r["error"]}
              for r in records if r["status"] == "failed"]
    if not entries:
        raise ConversionError(f"{card.id}: no case could be converted from {raw} ({len(absent)} absent, "
                              f"{len(failed)} failed); expected the raw files of at least one case")
    provenance = {"dataset_id": card.id, "platform": card.source.platform, "record": card.source.record,
                  "version": card.source.version, "converter": card.converter,
                  "converter_version": card.converter_version, "tool_version": __version__,
                  "card_sha256": card.sha256, "raw_verified": raw_verified, "files": {}, "metadata_sources": {}}
    for r in done:
        provenance["files"].update(r["provenance"])
    hashed: dict[Path, str] = {}
    for case in cases:
        for p in case.metadata_sources:
            if p not in hashed:
                hashed[p] = file_hashes(p)["sha256"]
            provenance["metadata_sources"][raw_relative(p, raw)] = hashed[p]
    splits: dict[str, list[str]] = {}
    for e in entries:
        splits.setdefault(e["split"], []).append(e["case_id"])
    layout = Layout.for_card(card)
    channel_names = {str(i): name for i, name in enumerate(card.channel_names)}
    multi = len(card.channel_names) > 1

    def training_item(e: dict) -> dict:
        return {"image": e["image"], **({"channels": e["channels"]} if multi else {}), "masks": e["masks"]}

    dataset = {
        "name": card.title,
        "description": card.description.strip(),
        "reference": card.homepage,
        "licence": card.license.spdx,
        "release": card.source.version,
        "tensorImageSize": f"{card.dimensionality}D",
        "modality": channel_names,
        "channel_names": channel_names,
        "labels": {"background": 0, **{name: i for i, name in sorted(card.classes.items())}},
        "file_ending": layout.suffix,
        "numTraining": sum(1 for e in entries if e["masks"]),
        "numTest": sum(1 for e in entries if not e["masks"]),
        "training": [training_item(e) for e in entries if e["masks"]],
        "test": [e["image"] for e in entries if not e["masks"]],
        "raters": list(card.raters),
        "reference_rater": card.reference_rater,
        "cases": entries,
        "absent": absent,
        "failed": failed,
        "omnimedseg": {
            "dataset_id": card.id, "modality": card.modality, "dimensionality": card.dimensionality,
            "classes": card.class_names, "channels": card.channel_names, "converter": card.converter,
            "converter_version": card.converter_version, "tool_version": __version__, "card_sha256": card.sha256,
            "license": card.license.spdx, "license_status": card.license.status,
            "license_source": card.license.source, "redistribution": card.license.redistributable,
            "raw_verified": raw_verified, "mask_format": "one binary mask per class per image",
            "sample": sample,  # N: only the first N cases of each split were converted (convert --sample N)
        },
    }
    _write_json(staging / "dataset.json", dataset)
    _write_json(staging / "splits.json", splits)
    _write_json(staging / "provenance.json", provenance)
    (staging / "LICENSE.txt").write_text(license_text(card), encoding="utf-8")
    (staging / "CITATION.bib").write_text(card.citation.bibtex, encoding="utf-8")


def license_text(card: Card) -> str:
    lic = card.license
    lines = [f"{card.title}", "", f"Licence: {lic.spdx}", f"Licence text: {lic.url}",
             f"Licence status: {lic.status} (source: {lic.source or 'not recorded'})",
             f"Redistribution of converted data allowed: {'yes' if lic.redistributable else 'NO'}"]
    if lic.attribution:
        lines += ["", f"Attribution: {lic.attribution}"]
    if lic.text:
        lines += ["", lic.text.strip()]
    lines += ["", f"Source: {card.homepage}", f"Cite: doi:{card.citation.doi} (see CITATION.bib)"]
    return "\n".join(lines) + "\n"


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
