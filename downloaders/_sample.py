"""``download --sample N``: fetch only what ``convert --sample N`` reads.

Steps: (1) build a *skeleton* of the raw tree in the staging folder: side files (CSV, JSON,
TXT...) and small files are fetched whole, every other file or ZIP member becomes an empty
placeholder (a platform whose files are all per-case files says so through
``Downloader.sample_headers``: then nothing is fetched whole and the files ``cases()`` reads
header-only hold their leading bytes, e.g. IDC's DICOM series); a ZIP is listed from its
central directory by HTTP Range requests (:mod:`._remote_zip`), never downloaded; macOS
debris members are left out. (2) Run the converter's ``cases()`` on the skeleton
(converters only read side files there) and keep the first N cases of each split
(:func:`omnimedseg.converters._sample.sample_cases`, the rule ``convert --sample`` uses). (3) Fetch
exactly the files and members those cases name, each verified (whole files by the card's
hash, members by their CRC-32), drop the placeholders, and record in the raw tree
(``.sample.json``) and the lock that this is a sample, not the release.

Fetched members and runs are kept under ``downloads/<id>/sample/``, so an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from omnimedseg import paths
from omnimedseg.converters._sample import SAMPLE_MARKER, case_paths, sample_cases
from omnimedseg.downloaders._archives import _checked_member_path, extract
from omnimedseg.downloaders._dataset import PREPARED_MARKER, _merge, downloader_for
from omnimedseg.downloaders._http import HttpClient
from omnimedseg.downloaders._remote_zip import Member, RangeSource, fetch_members, read_central_directory
from omnimedseg.downloaders._transfer import atomic_write_text, fetch_all, link_or_copy, target_path
from omnimedseg.errors import ConversionError
from omnimedseg.files import is_macos_debris, staged_folder
from omnimedseg.progress import SILENT, Progress
from omnimedseg.registry import Card, RemoteFile

# Small files a converter's cases() may read: always fetched whole.
SIDE_SUFFIXES = (".csv", ".tsv", ".json", ".txt", ".xml", ".yaml", ".yml", ".xlsx", ".xls", ".md", ".ini")
WHOLE_FILE_LIMIT = 16 << 20  # files (not ZIP members) up to this size are fetched whole
SAMPLE_DIR = "sample"


def is_side_file(name: str) -> bool:
    return name.lower().endswith(SIDE_SUFFIXES)


def download_sample(card: Card, n: int, root: str | os.PathLike | None = None, sources: list[Path] | None = None,
                    progress: Progress = SILENT, jobs: int | None = None) -> Path:
    """Fetch what the first ``n`` cases of each split need into ``raw/<id>``; returns the raw folder.

    A complete (non-sample) raw tree is left as it is: it already holds every case.
    """
    folder = paths.downloads_dir(card.id, root)
    raw = paths.raw_dir(card.id, root)
    if (raw / PREPARED_MARKER).is_file():
        return raw
    downloader = downloader_for(card, sources)
    manifest = downloader.resolve(card)
    jobs = jobs or downloader.jobs
    client = getattr(downloader, "client", None) or HttpClient()
    refresh = getattr(downloader, "refresh", None)
    check = getattr(downloader, "check_part", None)
    work = folder / SAMPLE_DIR
    headers = downloader.sample_headers(manifest.files, client)
    zips = [f for f in manifest.files if f.extract and f.name.lower().endswith(".zip")]
    if headers is not None:  # the platform's files are all case files; cases() reads the headers given
        whole = []
    else:
        headers = {}
        whole = [f for f in manifest.files if f not in zips and (f.extract or is_side_file(f.name)
                                                                 or (f.size or 0) <= WHOLE_FILE_LIMIT)]
    deferred = [f for f in manifest.files if f not in zips and f not in whole]
    fetched_bytes = 0
    with staged_folder(raw) as staging:
        fetch_all(whole, folder, progress, client=client, jobs=jobs, refresh=refresh, check=check)
        for remote in whole:
            _place_whole(remote, folder, staging)
        fetched_bytes += sum(f.size or 0 for f in whole)
        placeholders: dict[Path, tuple] = {}
        for remote in deferred:
            placeholders[_placeholder(staging, remote.name, headers.get(remote.name, b""))] = ("file", remote)
        fetched_bytes += sum(len(h) for h in headers.values())
        archives = {}
        for remote in zips:
            source = RangeSource(remote.url, remote.size, client, name=remote.name,
                                 refresh=(lambda r=remote: refresh(r)) if refresh else None)
            # the same name rules as extraction: a file member without a safe name refuses the archive
            members = [m for m in read_central_directory(source)
                       if not m.is_dir and _checked_member_path(Path(remote.name), m.name, False)
                       and not is_macos_debris(m.name)]  # never extracted into a raw tree
            archives[remote.name] = (source, members)
            side = [m for m in members if is_side_file(m.name)]
            _place_members(source, side, work / remote.name, staging, progress)
            for m in members:
                if not is_side_file(m.name):
                    placeholders[_placeholder(staging, m.name)] = ("member", remote.name, m)
        from omnimedseg.converters._run import collect_cases

        chosen = sample_cases(collect_cases(card, staging), n)
        needed = {_inside(staging, p) for case in chosen for p in case_paths(case)}
        wanted = {p: placeholders.pop(p) for p in sorted(needed) if p in placeholders}
        for path in placeholders:  # not needed: absent from the sample tree
            path.unlink()
        files = [origin[1] for origin in wanted.values() if origin[0] == "file"]
        for path in wanted:
            path.unlink()
        fetch_all(files, folder, progress, client=client, jobs=jobs, refresh=refresh, check=check)
        for remote in files:
            _place_whole(remote, folder, staging)
        fetched_bytes += sum(f.size or 0 for f in files)
        for name, (source, _) in archives.items():
            members = [origin[2] for origin in wanted.values() if origin[0] == "member" and origin[1] == name]
            _place_members(source, members, work / name, staging, progress)
            fetched_bytes += source.received
        _prune_empty_folders(staging)
        record = {"sample": n, "cases": {}, "partial": [f.name for f in zips + deferred],
                  "members": {name: sorted(o[2].name for o in wanted.values() if o[0] == "member" and o[1] == name)
                              for name in archives},
                  "bytes_fetched": fetched_bytes,
                  "release_bytes": sum(f.size or 0 for f in manifest.files)}
        for case in chosen:
            record["cases"].setdefault(case.split, []).append(case.case_id)
        atomic_write_text(staging / SAMPLE_MARKER, json.dumps(record, indent=2, sort_keys=True) + "\n")
    replace(manifest, extra={**manifest.extra, "sample": record}).write(folder)
    return raw


def _place_whole(remote: RemoteFile, folder: Path, staging: Path) -> None:
    """A verified download into the tree: extracted when it is an archive, else linked."""
    source = target_path(folder, remote.name)
    if remote.extract:
        unpacked = staging / f".unpack-{remote.name}"
        extract(source, unpacked)
        _merge(unpacked, staging, source)
    else:
        link_or_copy(source, staging / remote.name)


def _place_members(source: RangeSource, members: list[Member], cache: Path, staging: Path,
                   progress: Progress) -> None:
    """Fetch ``members`` (verified by CRC-32) into the cache and link them into the tree."""
    if not members:
        return
    with progress.task(f"{source.name}: {len(members)} members", sum(m.compressed_size for m in members),
                       unit="B") as advance:
        fetched = fetch_members(source, members, cache, cache.parent / ".runs", advance)
    for name, path in fetched.items():
        link_or_copy(path, target_path(staging, name))


def _placeholder(staging: Path, name: str, header: bytes = b"") -> Path:
    """An empty stand-in for a file not fetched yet (or its leading bytes, for a header-only read)."""
    path = target_path(staging, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header)
    return path


def _inside(staging: Path, path: Path) -> Path:
    path = Path(path)
    full = path if path.is_absolute() else staging / path
    try:
        full.relative_to(staging)
    except ValueError:
        raise ConversionError(f"{path}: a case names a file outside the raw folder {staging}; converters must "
                              f"only read files under the raw folder") from None
    return target_path(staging, full.relative_to(staging).as_posix())


def _prune_empty_folders(top: Path) -> None:
    for folder in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
