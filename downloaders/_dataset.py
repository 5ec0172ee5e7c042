"""Download one dataset and make its raw tree: the orchestration every platform shares."""

from __future__ import annotations

import json
import os
from pathlib import Path

from omnimedseg import paths
from omnimedseg.downloaders._archives import extract
from omnimedseg.downloaders._base import Downloader, Manifest
from omnimedseg.downloaders._http import offline as offline_env
from omnimedseg.downloaders._transfer import atomic_write_text, fetch_all, link_or_copy, target_path, verify_file
from omnimedseg.errors import ChecksumMismatchError, ConversionError, DatasetNotFoundError, UsageError
from omnimedseg.files import staged_folder
from omnimedseg.plugins import load_plugin
from omnimedseg.progress import SILENT, Progress
from omnimedseg.registry import Card

PREPARED_MARKER = ".prepared.json"


def downloader_for(card: Card, sources: list[Path] | None = None) -> Downloader:
    """The local source when ``sources`` are given, else the card's platform downloader."""
    if sources:
        from omnimedseg.downloaders._local import LocalSource

        return LocalSource(sources)
    return load_plugin("downloaders", card.source.platform, Downloader)()


def download_dataset(card: Card, root: str | os.PathLike | None = None, sources: list[Path] | None = None,
                     offline: bool = False, progress: Progress = SILENT, jobs: int = 4,
                     engine: str = "default") -> Path:
    """Fetch and verify every file of ``card``, write the lock, and prepare the raw tree.

    ``offline`` (or ``$OMNIMEDSEG_OFFLINE``) fetches nothing: it verifies the files already
    on disk against the lock. ``engine="zenodo-get"`` uses the optional zenodo-get adapter.
    Returns the raw folder a converter reads.
    """
    folder = paths.downloads_dir(card.id, root)
    if offline or offline_env():
        manifest = Manifest.read(folder, card.id)
        for remote in manifest.files:
            target = target_path(folder, remote.name)
            if not target.is_file():
                raise DatasetNotFoundError(f"{target} is missing (offline mode fetches nothing); "
                                           f"run: omnimedseg download {card.id}")
            verify_file(target, remote)
    else:
        downloader = downloader_for(card, sources)
        manifest = downloader.resolve(card)
        if engine == "zenodo-get":
            if manifest.platform != "zenodo":
                raise UsageError(f"--engine zenodo-get only works for Zenodo datasets; {card.id} is on "
                                 f"{manifest.platform}; run without --engine")
            from omnimedseg.downloaders._zenodo_get import fetch_with_zenodo_get

            fetch_with_zenodo_get(manifest, folder, progress)
        elif engine != "default":
            raise UsageError(f"unknown engine {engine!r}; choose 'default' or 'zenodo-get'")
        else:
            fetch_all(manifest.files, folder, progress, client=getattr(downloader, "client", None), jobs=jobs,
                      refresh=getattr(downloader, "refresh", None), check=getattr(downloader, "check_part", None))
        manifest = pin_unhashed(manifest, folder)
        manifest.write(folder)
    return prepare_raw(card, manifest, root, progress)


def verify_dataset(card: Card, root: str | os.PathLike | None = None, repair: bool = False,
                   progress: Progress = SILENT, jobs: int = 4) -> dict[str, str]:
    """Re-check every downloaded file against the lock; with ``repair``, fetch what is bad again.

    Returns ``{file name: "ok" | "missing" | "corrupt" | "repaired"}``; never raises for a bad file
    unless repair was asked for and failed.
    """
    folder = paths.downloads_dir(card.id, root)
    manifest = Manifest.read(folder, card.id)
    status: dict[str, str] = {}
    bad = []
    partial = set(manifest.extra.get("sample", {}).get("partial", ()))  # download --sample read parts only
    with progress.task(f"verify {card.id}", len(manifest.files), unit="file") as advance:
        for remote in manifest.files:
            target = target_path(folder, remote.name)
            if not target.is_file() and remote.name in partial:
                status[remote.name] = "sample"
            elif not target.is_file():
                status[remote.name] = "missing"
            else:
                try:
                    verify_file(target, remote)
                    status[remote.name] = "ok"
                except ChecksumMismatchError:
                    status[remote.name] = "corrupt"
            if status[remote.name] not in ("ok", "sample"):
                bad.append(remote)
            advance(1)
    if repair and bad:
        for remote in bad:  # set aside, never delete: the user may want to inspect it
            target = target_path(folder, remote.name)
            if target.is_file():
                os.replace(target, target.with_name(target.name + ".corrupt"))
        downloader = None
        if manifest.platform not in ("local",):
            downloader = load_plugin("downloaders", manifest.platform, Downloader)()
            if hasattr(downloader, "bind"):
                downloader.bind(manifest)  # expiring links are re-listed from the lock's record and version
        fetch_all(bad, folder, progress, client=getattr(downloader, "client", None), jobs=jobs,
                  refresh=getattr(downloader, "refresh", None), check=getattr(downloader, "check_part", None))
        for remote in bad:
            status[remote.name] = "repaired"
        prepare_raw(card, manifest, root, progress)
    return status


def pin_unhashed(manifest: Manifest, folder: Path) -> Manifest:
    """The manifest with size and sha256 of what was verified on arrival for files the platform gives
    no hash for (TCIA zips, Kaggle), so ``verify`` and offline mode can check them later."""
    from dataclasses import replace

    from omnimedseg.downloaders._transfer import file_hashes

    files = []
    for remote in manifest.files:
        if not remote.hashes or remote.size is None:
            target = target_path(folder, remote.name)
            remote = replace(remote, size=target.stat().st_size,
                             hashes=remote.hashes or file_hashes(target, ("sha256",)))
        files.append(remote)
    return replace(manifest, files=tuple(files))


def prepare_raw(card: Card, manifest: Manifest, root: str | os.PathLike | None = None,
                progress: Progress = SILENT) -> Path:
    """Build ``raw/<id>``: archives extracted, other files linked; downloads stay untouched.

    Built in a staging folder and renamed into place; redone only when the lock changed.
    """
    downloads = paths.downloads_dir(card.id, root)
    target = paths.raw_dir(card.id, root)
    stamp = json.dumps({"files": {f.name: f.strongest_hash[1] for f in manifest.files}}, sort_keys=True)
    marker = target / PREPARED_MARKER
    if marker.is_file() and marker.read_text() == stamp:
        return target
    with staged_folder(target) as staging, \
            progress.task(f"prepare {card.id}", len(manifest.files), unit="file") as advance:
        for remote in manifest.files:
            source = target_path(downloads, remote.name)
            if remote.extract:
                unpacked = staging / f".unpack-{remote.name}"
                extract(source, unpacked)
                _merge(unpacked, staging, source)
            else:
                link_or_copy(source, staging / remote.name)
            advance(1)
        atomic_write_text(staging / PREPARED_MARKER, stamp)
    return target


def _merge(unpacked: Path, staging: Path, archive: Path) -> None:
    """Move an extracted archive's top-level entries into the raw tree; clashes are errors."""
    for entry in sorted(unpacked.iterdir()):
        destination = staging / entry.name
        if destination.exists():
            raise ConversionError(f"{archive}: extracting would overwrite {entry.name!r}, "
                                  f"which another file of this dataset already provides")
        os.replace(entry, destination)
    unpacked.rmdir()
