"""Download one dataset and make its raw tree: the orchestration every platform shares.

Every step that writes ``downloads/<id>`` or ``raw/<id>`` runs under the dataset's lock
(:func:`omnimedseg.files.dataset_lock`): a second process waits (or, with ``--no-wait``,
refuses), so two runs never build over each other. The raw tree is trusted only when its
marker matches both the lock and the files on disk (names and sizes), checked on every run.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Callable

from omnimedseg import paths
from omnimedseg.downloaders._archives import extract
from omnimedseg.downloaders._base import Downloader, Manifest
from omnimedseg.downloaders._http import offline as offline_env
from omnimedseg.downloaders._transfer import atomic_write_text, fetch_all, link_or_copy, target_path, verify_file
from omnimedseg.errors import (
    ChecksumMismatchError,
    ConversionError,
    DatasetNotFoundError,
    OmnimedsegError,
    UsageError,
)
from omnimedseg.files import dataset_lock, file_hashes, staged_folder, sweep_leftovers
from omnimedseg.plugins import load_plugin
from omnimedseg.progress import SILENT, Progress
from omnimedseg.registry import Card, RemoteFile

PREPARED_MARKER = ".prepared.json"
CORRUPT = ".corrupt"  # suffix of a file set aside by repair or a failed preparation (kept for inspection)


class PrepareError(ConversionError):
    """A downloaded file could not be made into the raw tree (a broken archive); ``remote`` names it."""

    def __init__(self, message: str, remote: RemoteFile):
        super().__init__(message)
        self.remote = remote


def downloader_for(card: Card, sources: list[Path] | None = None) -> Downloader:
    """The local source when ``sources`` are given, else the card's platform downloader."""
    if sources:
        from omnimedseg.downloaders._local import LocalSource

        return LocalSource(sources)
    return load_plugin("downloaders", card.source.platform, Downloader)()


def download_dataset(card: Card, root: str | os.PathLike | None = None, sources: list[Path] | None = None,
                     offline: bool = False, progress: Progress = SILENT, jobs: int | None = None,
                     engine: str = "default", wait: bool | None = None,
                     say: Callable[[str], None] | None = None) -> Path:
    """Fetch and verify every file of ``card``, prepare the raw tree, then write the lock.

    ``offline`` (or ``$OMNIMEDSEG_OFFLINE``) fetches nothing: it verifies the files already
    on disk against the lock. ``engine="zenodo-get"`` uses the optional zenodo-get adapter.
    ``wait=False`` refuses instead of waiting when another process works on the dataset;
    ``say`` receives notices (waiting, files kept instead of read from ``sources``).
    ``jobs``: files fetched in parallel (None: the platform's own default, ``Downloader.jobs``).
    Returns the raw folder a converter reads.
    """
    with dataset_lock(card.id, root, wait=wait, say=say):
        folder = paths.downloads_dir(card.id, root)
        if offline or offline_env():
            manifest = Manifest.read(folder, card.id)
            for remote in manifest.files:
                target = target_path(folder, remote.name)
                if not target.is_file():
                    raise DatasetNotFoundError(f"{target} is missing (offline mode fetches nothing); "
                                               f"run: omnimedseg download {card.id}")
                verify_file(target, remote)
            return prepare_raw(card, manifest, root, progress)
        downloader = downloader_for(card, sources)
        manifest = downloader.resolve(card)
        present = _identities(folder, manifest)
        if engine == "zenodo-get":
            if manifest.platform != "zenodo":
                raise UsageError(f"--engine zenodo-get only works for Zenodo datasets; {card.id} is on "
                                 f"{manifest.platform}; run without --engine")
            from omnimedseg.downloaders._zenodo_get import fetch_with_zenodo_get

            fetch_with_zenodo_get(manifest, folder, progress)
        elif engine != "default":
            raise UsageError(f"unknown engine {engine!r}; choose 'default' or 'zenodo-get'")
        else:
            fetch_all(manifest.files, folder, progress, client=getattr(downloader, "client", None),
                      jobs=jobs or downloader.jobs,
                      refresh=getattr(downloader, "refresh", None), check=getattr(downloader, "check_part", None),
                      dataset_id=card.id)
        if sources and say is not None:
            after = _identities(folder, manifest)
            kept = [name for name, ident in present.items() if ident == after.get(name)]
            if kept:
                say(f"{card.id}: {len(kept)} of {len(manifest.files)} files were already present and verified in "
                    f"{folder}, so they were not read from --from (delete them there to take them from it)")
        unpinned = {r.name for r in manifest.files if not r.hashes or r.size is None}
        manifest = pin_unhashed(manifest, folder)
        try:
            raw = prepare_raw(card, manifest, root, progress)
        except PrepareError as exc:
            if exc.remote.name not in unpinned:
                raise
            # no published hash vouches for these bytes: never keep them as trusted
            bad = target_path(folder, exc.remote.name)
            os.replace(bad, bad.with_name(bad.name + CORRUPT))
            raise PrepareError(f"{exc}; it has no published hash, so it was set aside as {bad.name}{CORRUPT}: "
                               f"rerun omnimedseg download {card.id} to fetch it again", exc.remote) from None
        manifest.write(folder)  # only now: the lock records files that were fetched, verified and prepared
        return raw


def _identities(folder: Path, manifest: Manifest) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of each manifest file on disk: tells a kept file from a replaced one."""
    found = {}
    for remote in manifest.files:
        try:
            st = target_path(folder, remote.name).stat()
        except OSError:
            continue
        found[remote.name] = (st.st_ino, st.st_mtime_ns)
    return found


def verify_dataset(card: Card, root: str | os.PathLike | None = None, repair: bool = False,
                   progress: Progress = SILENT, jobs: int | None = None, wait: bool | None = None,
                   say: Callable[[str], None] | None = None) -> dict[str, str]:
    """Re-check every downloaded file against the lock and the raw tree against its marker.

    Returns ``{file name: "ok" | "missing" | "corrupt" | "repaired"}`` plus ``raw/<id>``:
    ``"ok" | "missing" | "damaged" | "rebuilt"``. With ``repair``, bad files are fetched
    again and a bad raw tree is rebuilt; it never raises for a bad file unless repair failed.
    """
    with dataset_lock(card.id, root, wait=wait, say=say):
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
        raw_key = f"raw/{card.id}"
        # a sample's raw tree holds only the members --sample fetched (each checked by its CRC-32)
        status[raw_key] = "sample" if partial else raw_state(card, manifest, root)
        if repair and bad:
            for remote in bad:  # set aside, never delete: the user may want to inspect it
                target = target_path(folder, remote.name)
                if target.is_file():
                    os.replace(target, target.with_name(target.name + CORRUPT))
            downloader = None
            if manifest.platform not in ("local",):
                downloader = load_plugin("downloaders", manifest.platform, Downloader)()
                if hasattr(downloader, "bind"):
                    downloader.bind(manifest)  # expiring links are re-listed from the lock's record and version
            fetch_all(bad, folder, progress, client=getattr(downloader, "client", None),
                      jobs=jobs or getattr(downloader, "jobs", Downloader.jobs),
                      refresh=getattr(downloader, "refresh", None), check=getattr(downloader, "check_part", None),
                      dataset_id=card.id)
            for remote in bad:
                status[remote.name] = "repaired"
        if repair and (bad or status[raw_key] not in ("ok", "sample")):
            prepare_raw(card, manifest, root, progress, force=bool(bad))  # raw files may share the bad inodes
            status[raw_key] = "rebuilt"
        return status


def pin_unhashed(manifest: Manifest, folder: Path) -> Manifest:
    """The manifest with size and sha256 of what was verified on arrival for files the platform gives
    no hash for (TCIA zips, Kaggle), so ``verify`` and offline mode can check them later."""
    files = []
    for remote in manifest.files:
        if not remote.hashes or remote.size is None:
            target = target_path(folder, remote.name)
            remote = replace(remote, size=target.stat().st_size,
                             hashes=remote.hashes or file_hashes(target, ("sha256",)))
        files.append(remote)
    return replace(manifest, files=tuple(files))


def _stamp(manifest: Manifest) -> dict:
    return {f.name: list(f.strongest_hash) for f in manifest.files}


def _tree(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` (but the marker) with its size: what the marker vouches for."""
    found = {}
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            if rel != PREPARED_MARKER:
                found[rel] = path.lstat().st_size
    return found


def raw_state(card: Card, manifest: Manifest, root: str | os.PathLike | None = None) -> str:
    """``"ok"`` when ``raw/<id>``'s marker matches the lock and the tree on disk, else ``"missing"``/``"damaged"``."""
    target = paths.raw_dir(card.id, root)
    marker = target / PREPARED_MARKER
    if not marker.is_file():
        return "missing"
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "damaged"
    if not isinstance(recorded, dict) or recorded.get("downloads") != _stamp(manifest):
        return "damaged"
    return "ok" if recorded.get("tree") == _tree(target) else "damaged"


def prepare_raw(card: Card, manifest: Manifest, root: str | os.PathLike | None = None,
                progress: Progress = SILENT, force: bool = False) -> Path:
    """Build ``raw/<id>``: archives extracted, other files linked; downloads stay untouched.

    Built in a uniquely named staging folder and swapped into place; redone when the lock
    changed or the tree on disk no longer matches its marker (a file deleted or truncated).
    """
    with dataset_lock(card.id, root):
        downloads = paths.downloads_dir(card.id, root)
        target = paths.raw_dir(card.id, root)
        if not force and raw_state(card, manifest, root) == "ok":
            return target
        sweep_leftovers(target)  # what killed runs left; safe: we hold the lock
        with staged_folder(target) as staging, \
                progress.task(f"prepare {card.id}", len(manifest.files), unit="file") as advance:
            for remote in manifest.files:
                source = target_path(downloads, remote.name)
                if remote.extract:
                    unpacked = staging / f".unpack-{Path(remote.name).name}"
                    try:
                        extract(source, unpacked)
                    except OmnimedsegError as exc:
                        raise PrepareError(str(exc), remote) from None
                    _merge(unpacked, staging, source)
                else:
                    link_or_copy(source, staging / remote.name)
                advance(1)
            marker = {"downloads": _stamp(manifest), "tree": _tree(staging)}
            atomic_write_text(staging / PREPARED_MARKER, json.dumps(marker, sort_keys=True))
        return target


def _merge(unpacked: Path, staging: Path, archive: Path) -> None:
    """Move an extracted archive's top-level entries into the raw tree; clashes are errors."""
    for entry in sorted(unpacked.iterdir()):
        destination = staging / entry.name
        if entry.name == PREPARED_MARKER or entry.name.startswith(".unpack-"):  # the raw tree's own bookkeeping
            raise ConversionError(f"{archive}: member {entry.name!r} has a name the raw tree reserves for its own "
                                  f"records; the archive cannot be prepared")
        if destination.exists():
            raise ConversionError(f"{archive}: extracting would overwrite {entry.name!r}, "
                                  f"which another file of this dataset already provides")
        os.replace(entry, destination)
    unpacked.rmdir()
