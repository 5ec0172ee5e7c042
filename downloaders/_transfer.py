"""The shared transfer engine: fetch to ``<name>.part``, hash while streaming, verify, rename.

A file only ever appears under its final name after its size and hash have been
checked, so a crash, SIGKILL or Ctrl-C can leave a ``.part`` file but never a corrupt
final file. ``<name>.part.json`` records what the part belongs to (expected size and
hash, ETag/Last-Modified), so a rerun resumes with ``Range`` only when that still holds.
Callers hold the dataset's lock (:func:`omnimedseg.files.dataset_lock`), so no two
processes write the same folder. All platforms go through :func:`fetch` / :func:`fetch_all`.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import http.client
import json
import mmap
import os
import queue
import re
import shutil
import stat
import threading
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable
from urllib.parse import unquote, urlparse

import requests
import urllib3

from omnimedseg.downloaders._http import HttpClient, check_url, offline, redact
from omnimedseg.errors import ChecksumMismatchError, DownloadError
from omnimedseg.files import CHUNK, atomic_write_text, file_hashes, naming_errors  # noqa: F401  (re-exported)
from omnimedseg.progress import SILENT, Progress
from omnimedseg.registry import RemoteFile

# A body this small is fetched again rather than resumed: its part record (the validators a resume
# needs) would cost two file creations and a rename, more than receiving it (file creation alone was
# 0.6 ms here); a part without its record is never resumed, so a killed transfer simply starts over.
NO_RECORD_BELOW = 64 << 10
NET_CHUNK = 1 << 20  # network reads: large reads cut per-call overhead (a FIN keeps the short read)
PART = ".part"
SIDE = ".part.json"


class _BodyReadError(Exception):
    """A socket or ``http.client`` error while reading a body straight into our buffers."""


class _PartWriteError(Exception):
    """An ``OSError`` writing the part (ENOSPC, EIO): not a network error, so never retried."""


_STREAM_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                  requests.exceptions.ContentDecodingError, urllib3.exceptions.HTTPError, _BodyReadError)


class Cancelled(DownloadError):
    """The user interrupted; ``.part`` files were kept so a rerun resumes."""


def safe_name(name: str, where: str = "remote file name") -> str:
    """A remote (API, archive member, Content-Disposition) name as a safe relative POSIX path.

    Refuses absolute paths, drive letters, ``..``, NUL and control characters: a server
    must never choose where on disk we write.
    """
    text = unicodedata.normalize("NFC", str(name))
    if not text or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise DownloadError(f"{where}: refusing unsafe name {name!r} (empty or control characters)")
    text = text.replace("\\", "/")
    parts = [p for p in text.split("/") if p not in ("", ".")]  # as PurePosixPath reads it, at a tenth of the cost
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text) or ".." in parts:
        raise DownloadError(f"{where}: refusing unsafe name {name!r} (absolute path or '..')")
    if not parts:
        raise DownloadError(f"{where}: refusing unsafe name {name!r} (no file name)")
    return "/".join(parts)


def target_path(dest_dir: Path, name: str) -> Path:
    """``dest_dir/name``, checked to stay inside ``dest_dir`` even through symlinks."""
    return _inside(os.path.realpath(dest_dir), name)


def _inside(root: str, name: str) -> Path:
    """``root/name`` for a resolved ``root``, checked to stay inside it even through symlinks.

    Only a symlink below ``root`` can lead out of it, so the whole path is resolved only when one
    is there: one ``lstat`` per existing component of the name (usually two) instead of one per
    component of the whole path, twice. Each system call releases the GIL, which many transfer
    threads then pass around (futex wake-ups were a fifth of the CPU with 16 transfers at once).
    """
    rel = safe_name(name)
    path = os.path.join(root, rel)
    probe = root
    parts = rel.split("/")
    for depth, part in enumerate(parts, start=1):
        probe = os.path.join(probe, part)
        try:
            if not stat.S_ISLNK(os.lstat(probe).st_mode):
                continue
        except OSError:
            break  # nothing below a missing component: no link either
        if depth == len(parts):
            break  # the name itself is a link: never read through (verify_file) and replaced by the rename
        if not os.path.realpath(path).startswith(os.path.join(root, "")):
            raise DownloadError(f"{name!r} would be written outside {root}")
        break
    return Path(path)


def filename_from_disposition(header: str | None) -> str | None:
    """File name from ``Content-Disposition`` (``filename*=UTF-8''…`` wins over ``filename=``), sanitised."""
    if not header:
        return None
    star = re.search(r"filename\*\s*=\s*([^']*)'[^']*'([^;]+)", header, re.I)
    if star:
        name = unquote(star.group(2).strip().strip('"'), encoding=star.group(1) or "utf-8")
    else:
        plain = re.search(r'filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]+))', header, re.I)
        if not plain:
            return None
        name = (plain.group(1) if plain.group(1) is not None else plain.group(2)).strip()
    return PurePosixPath(safe_name(name, "Content-Disposition")).name


def goog_md5(header: str) -> str | None:
    """Hex md5 from Google Cloud Storage's ``x-goog-hash: crc32c=...,md5=<base64>`` (whole object)."""
    match = re.search(r"md5=([A-Za-z0-9+/=]+)", header or "")
    try:
        raw = base64.b64decode(match.group(1), validate=True) if match else b""
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None


def _expected(remote: RemoteFile) -> tuple[str, str | None]:
    """(algorithm, digest) to verify with; sha256 and ``None`` when the platform gave no hash."""
    return remote.strongest_hash if remote.hashes else ("sha256", None)


def verify_file(path: Path, remote: RemoteFile) -> dict[str, str]:
    """Raise unless ``path`` has the pinned size and (strongest) hash; return the digest. A symlink is never
    one of our files, whatever it points to: it is fetched again (``verify`` calls it corrupt)."""
    if path.is_symlink():
        if not path.exists():
            raise FileNotFoundError(f"{path}: a dangling symbolic link")
        raise ChecksumMismatchError(f"{path}: a symbolic link, not a file omnimedseg downloaded")
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        raise ChecksumMismatchError(f"{path}: expected {remote.size} bytes, found {size}")
    alg, expected = _expected(remote)
    actual = file_hashes(path, (alg,))[alg]
    if expected is not None and actual != expected:
        raise ChecksumMismatchError(f"{path}: expected {alg} {expected}, found {actual}")
    return {alg: actual}


def _sibling(target: Path, suffix: str) -> Path:
    return target.with_name(target.name + suffix)


def fetch(remote: RemoteFile, dest_dir: Path, progress: Progress = SILENT, client: HttpClient | None = None,
          refresh: Callable[[RemoteFile], str] | None = None, cancel: threading.Event | None = None,
          check: Callable[[Path, RemoteFile], None] | None = None, dataset_id: str = "") -> Path:
    """Bring ``remote`` to ``dest_dir/remote.name``, verified; skip when already there and valid.

    ``dataset_id`` only completes the advice in errors (``omnimedseg registry lock <id> --write``).

    ``refresh`` returns a new URL when a signed one expired (403); ``cancel`` stops between chunks;
    ``check(part, remote)`` is a platform's own content check (TCIA's per-file MD5 list) run
    before the rename, raising :class:`ChecksumMismatchError` (an HTTP transfer then retries once).
    """
    return _fetch_to(target_path(Path(dest_dir), remote.name), remote, progress, client, refresh, cancel, check,
                     dataset_id)


def _fetch_to(target: Path, remote: RemoteFile, progress: Progress, client: HttpClient | None,
              refresh: Callable[[RemoteFile], str] | None, cancel: threading.Event | None,
              check: Callable[[Path, RemoteFile], None] | None, dataset_id: str) -> Path:
    """:func:`fetch` to a ``target`` already checked (:func:`fetch_all` resolves its folder once for all files)."""
    try:
        verify_file(target, remote)
        if check is not None and not remote.hashes:
            check(target, remote)
        return target
    except FileNotFoundError:
        if not target.parent.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
    except ChecksumMismatchError:
        pass  # stale or foreign: fetch again; replaced only after verification
    if not remote.url:
        raise DownloadError(f"{remote.name}: no URL to fetch it from; check the dataset card")
    scheme = urlparse(remote.url).scheme
    part = _sibling(target, PART)
    if part.is_symlink():  # a planted or stale link: never resumed or written through (what it points to is not ours)
        part.unlink()
    # the task ends ("done") only after the bytes were verified and renamed into place
    with progress.task(remote.name, remote.size, unit="B") as advance:
        if scheme == "file":
            digest = _copy_local(remote, part, advance)
        elif scheme in ("http", "https"):
            check_url(remote.url, remote.name)
            if offline():
                raise DownloadError(f"{target} is missing and offline mode forbids fetching {redact(remote.url)}; "
                                    f"unset OMNIMEDSEG_OFFLINE and rerun")
            digest = _HttpTransfer(remote, part, advance, client or HttpClient(), refresh, cancel, check,
                                   dataset_id).run()
        elif scheme == "ftp":
            check_url(remote.url, remote.name, schemes=("ftp",))
            digest = _fetch_ftp(remote, part, advance)
        else:
            raise DownloadError(f"{remote.name}: unsupported URL scheme {scheme!r} in {redact(remote.url)}")
        _check_digest(part, remote, digest, dataset_id)
        if check is not None and scheme != "http" and scheme != "https":
            check(part, remote)
        os.replace(part, target)  # every transport fsyncs its part: a crash never leaves a truncated final file
        _sibling(target, SIDE).unlink(missing_ok=True)
    return target


def repin_command(dataset_id: str) -> str:
    """The command that pins a record's current files again (after the platform changed them)."""
    return f"omnimedseg registry lock {dataset_id or '<dataset id>'} --write"


def _check_digest(part: Path, remote: RemoteFile, digest: dict[str, str], dataset_id: str = "") -> None:
    size = part.stat().st_size
    alg, expected = _expected(remote)
    local = urlparse(remote.url or "").scheme == "file"
    advice = ("that file is not the one the card pins: take the right file, or download without --from"
              if local else "rerun the same command to fetch it again")
    if remote.size is not None and size != remote.size:
        part.unlink(missing_ok=True)
        raise ChecksumMismatchError(f"{remote.name}: expected {remote.size} bytes, received {size} "
                                    f"from {redact(remote.url or '')}; {advice}")
    if expected is not None and digest.get(alg) != expected:
        part.unlink(missing_ok=True)
        if local:
            raise ChecksumMismatchError(f"{remote.name}: expected {alg} {expected}, received {digest.get(alg)} "
                                        f"from {redact(remote.url or '')}; {advice}")
        raise ChecksumMismatchError(f"{remote.name}: expected {alg} {expected}, received {digest.get(alg)} "
                                    f"from {redact(remote.url or '')}; the platform serves other bytes than "
                                    f"pinned: rerun later, or re-pin with {repin_command(dataset_id)}")


def fetch_all(remotes: Iterable[RemoteFile], dest_dir: Path, progress: Progress = SILENT,
              client: HttpClient | None = None, jobs: int = 4,
              refresh: Callable[[RemoteFile], str] | None = None,
              check: Callable[[Path, RemoteFile], None] | None = None, dataset_id: str = "") -> list[Path]:
    """Fetch many files with at most ``jobs`` in flight (the client also limits per host).

    Small files go first through libcurl when it is installed (:mod:`._curl`); whatever it does not
    finish, and every other file, goes through :func:`fetch`'s transfer in ``jobs`` threads.
    Ctrl-C cancels the workers between chunks; their ``.part`` files stay for a rerun.
    A file whose bytes fail verification does not stop the others (their bytes are good and a
    rerun needs them); any other failure (network, access) stops new transfers. The error raised
    at the end names every file that failed.
    """
    remotes = list(remotes)
    client = client or HttpClient()
    root = os.path.realpath(dest_dir)  # once, not per file
    cancel = threading.Event()
    total = sum(r.size or 0 for r in remotes)
    with progress.task(f"{len(remotes)} files", total or None, unit="B") as overall:
        overall_progress = _Tee(progress, overall)
        paths = _through_libcurl(remotes, root, client, jobs, overall_progress, cancel, check)
        rest = [(i, r) for i, r in enumerate(remotes) if i not in paths]
        finished, lock, unsettled = threading.Event(), threading.Lock(), len(rest)

        def stops(future) -> bool:
            return future.done() and not future.cancelled() and future.exception() is not None \
                and not isinstance(future.exception(), ChecksumMismatchError)

        def settle(future) -> None:
            """Runs as each transfer ends: O(1) per file (waiting on every future in turn cost O(files)
            every round, a tenth of the CPU for thousands of small files)."""
            nonlocal unsettled
            with lock:
                unsettled -= 1
                if not unsettled or stops(future):
                    finished.set()
        with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="omnimedseg-fetch") as pool:
            def one(remote: RemoteFile) -> Path:
                return _fetch_to(_inside(root, remote.name), remote, overall_progress, client, refresh, cancel,
                                 check, dataset_id)
            futures = [pool.submit(one, r) for _, r in rest]
            for future in futures:
                future.add_done_callback(settle)
            if not futures:
                finished.set()
            try:
                _wait_for(finished, cancel)
            except KeyboardInterrupt:
                for f in futures:
                    f.cancel()
                raise
            finally:
                if any(stops(f) for f in futures):
                    cancel.set()
                    for f in futures:
                        f.cancel()
    failed = [(r.name, f.exception()) for (_, r), f in zip(rest, futures)
              if f.done() and not f.cancelled() and f.exception() and not isinstance(f.exception(), Cancelled)]
    if failed:
        first = failed[0][1]
        if len(failed) > 1:
            others = ", ".join(name for name, _ in failed[1:])
            raise type(first)(f"{first} (also failed: {others})")
        raise first
    paths.update((i, f.result()) for (i, _), f in zip(rest, futures))
    return [paths[i] for i in range(len(remotes))]


def _wait_for(finished: threading.Event, cancel: threading.Event) -> None:
    """Wait in the main thread with a timeout, so that Ctrl-C is seen; Ctrl-C sets ``cancel``."""
    try:
        while not finished.wait(0.2):
            pass
    except KeyboardInterrupt:
        cancel.set()
        raise


def _through_libcurl(remotes: list[RemoteFile], root: str, client: HttpClient, jobs: int, progress: _Tee,
                     cancel: threading.Event, check: Callable[[Path, RemoteFile], None] | None) -> dict[int, Path]:
    """{index: path} of the small files libcurl's lane fetched (:mod:`._curl`); none when pycurl is
    missing or a platform check (TCIA's) must see each part, which the engine's transfer runs."""
    from omnimedseg.downloaders import _curl  # it builds on this module

    if check is not None or not _curl.available():
        return {}
    items = []
    for i, remote in enumerate(remotes):
        try:
            target = _inside(root, remote.name)
        except DownloadError:
            continue  # the engine raises it, naming the file
        if _curl.takes(remote, target):
            items.append((i, remote, target))
    if not items:
        return {}
    lane = _curl.CurlLane(client, jobs, progress, cancel)
    with ThreadPoolExecutor(1, thread_name_prefix="omnimedseg-libcurl") as runner:
        done = threading.Event()
        future = runner.submit(lane.run, items)
        future.add_done_callback(lambda _: done.set())
        _wait_for(done, cancel)
        if future.exception() is not None:  # a bug in the lane must not cost the download: the engine goes on
            _curl.log.warning("libcurl's lane stopped (%r); the requests transport takes the files left",
                              future.exception())
    return {i: target for i, _, target in items if i in lane.finished}


def _reuse_connection(response: requests.Response) -> None:
    """Give the connection back to the pool once ``http.client`` has read the body to its end (closing a
    response whose body we read ourselves would close the connection: a new connect for every small file)."""
    fp = getattr(response.raw, "_fp", None)
    if isinstance(fp, http.client.HTTPResponse) and fp.isclosed() and not fp.will_close:
        response.raw.release_conn()


class _Tee:
    """A Progress whose per-file tasks also advance one overall byte counter.

    A file of known size under ``OWN_TASK_FROM`` bytes only advances the overall task: an IDC collection is
    tens of thousands of small DICOM objects, and a bar (or, in a log, a "started" and a "done" line) for
    each would bury the one line that says how far the download is.
    """

    OWN_TASK_FROM = 16 << 20

    def __init__(self, progress: Progress, overall: Callable[[float], None]):
        self.progress, self.overall, self.lock = progress, overall, threading.Lock()

    def _overall_only(self, n: float = 1) -> None:
        with self.lock:
            self.overall(n)

    def task(self, description, total=None, unit="it"):
        from contextlib import contextmanager

        @contextmanager
        def both():
            if total is not None and total < self.OWN_TASK_FROM:
                yield self._overall_only
                return
            with self.progress.task(description, total, unit) as advance:
                def step(n: float = 1) -> None:
                    advance(n)
                    with self.lock:
                        self.overall(n)
                yield step
        return both()


class _HttpTransfer:
    """One file over HTTP(S): Range resume, validators, retries on dropped streams, hashing."""

    def __init__(self, remote: RemoteFile, part: Path, advance: Callable[[float], None], client: HttpClient,
                 refresh: Callable[[RemoteFile], str] | None, cancel: threading.Event | None,
                 check: Callable[[Path, RemoteFile], None] | None = None, dataset_id: str = ""):
        self.remote, self.part, self.advance, self.client = remote, part, advance, client
        self.repin = repin_command(dataset_id)
        self.refresh, self.cancel, self.check = refresh, cancel, check
        self.server_md5: str | None = None  # from x-goog-hash (GCS: Kaggle, OSF) when nothing is pinned
        self.side = part.with_name(part.name + ".json")
        self.url = remote.url
        self.alg, self.expected = _expected(remote)
        self.size = remote.size
        self.failures = 0
        self.shown = 0  # bytes already reported to progress (never reported twice)

    # --- the side record: what the .part belongs to -------------------------------------------
    def _load_state(self) -> dict:
        if self.size is not None and self.size <= NO_RECORD_BELOW:
            self.part.unlink(missing_ok=True)  # never resumed (no record is written for it): written anew
            return {}
        try:
            state = json.loads(self.side.read_text())
        except (OSError, ValueError):
            state = None
        if not self.part.exists():
            return {}
        if not state or state.get("size") != self.size or state.get("hash") != [self.alg, self.expected]:
            self._reset()  # a part of unknown or other provenance: never resume into it
            return {}
        return state

    def _save_state(self, response: requests.Response) -> None:
        etag = response.headers.get("ETag", "")
        state = {"url": redact(self.url), "size": self.size, "hash": [self.alg, self.expected],
                 "etag": etag, "last_modified": response.headers.get("Last-Modified", ""), "saved": time.time()}
        atomic_write_text(self.side, json.dumps(state))

    def _reset(self) -> None:
        self.part.unlink(missing_ok=True)
        self.side.unlink(missing_ok=True)

    def _fail(self, reason: str) -> None:
        """Count a failed attempt; raise once the client's retry budget is spent, else back off."""
        self.failures += 1
        if self.failures > self.client.retries:
            raise DownloadError(f"{self.remote.name}: {reason} from {redact(self.url)} "
                                f"(gave up after {self.failures} attempts); rerun the same command to resume")
        time.sleep(self.client.backoff(self.failures - 1))

    def run(self) -> dict[str, str]:
        restarted = False
        advance = self.advance  # the progress task is the caller's: it ends after verification
        while True:
            state = self._load_state()
            offset = self.part.stat().st_size if state else 0
            if self.size is not None and offset > self.size:
                self._reset()
                offset = 0
            hasher = hashlib.new(self.alg)
            if offset:
                with open(self.part, "rb") as fh:
                    for chunk in iter(lambda: fh.read(CHUNK), b""):
                        hasher.update(chunk)
            if self.size is not None and offset == self.size and offset > 0:
                digest = hasher.hexdigest()
                if self.expected is None or digest == self.expected:
                    _fsync(self.part)  # complete from an earlier run, which may have died before its fsync
                    advance(max(0, offset - self.shown))
                    return {self.alg: digest}
                self._reset()
                continue
            result = self._attempt(offset, state, hasher, advance)
            if result is None:
                continue
            problem = self._problem(result)
            if problem is not None:
                self._reset()
                if restarted:
                    raise ChecksumMismatchError(
                        f"{self.remote.name}: {problem} from {redact(self.url)} twice; the platform serves "
                        f"other bytes than pinned: rerun later, or re-pin with {self.repin}")
                restarted = True
                continue
            return {self.alg: result}

    def _problem(self, digest: str) -> str | None:
        """Why the complete part is not the file (pinned hash, server md5, platform check), or None."""
        if self.expected is not None and digest != self.expected:
            return f"expected {self.alg} {self.expected}, received {digest}"
        if self.expected is None and self.server_md5:
            actual = file_hashes(self.part, ("md5",))["md5"]
            if actual != self.server_md5:
                return f"expected md5 {self.server_md5} (x-goog-hash), received {actual}"
        if self.check is not None:
            try:
                self.check(self.part, self.remote)
            except ChecksumMismatchError as exc:
                return str(exc).removeprefix(f"{self.remote.name}: ")
        return None

    def _attempt(self, offset: int, state: dict, hasher, advance) -> str | None:
        """One GET; returns the final digest, or ``None`` to go round again (resume or restart)."""
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            validator = state.get("etag") if state.get("etag") and not state["etag"].startswith("W/") \
                else state.get("last_modified")
            if validator:
                headers["If-Range"] = validator
        try:
            response = self.client.request("GET", self.url, headers=headers, stream=True,
                                           ok=(200, 202, 206, 403, 416), what=self.remote.name)
        except DownloadError:
            raise
        status = response.status_code
        if status == 403:
            response.close()
            if self.refresh is None:
                raise DownloadError(f"{self.remote.name}: HTTP 403 from {redact(self.url)}; access denied: accept "
                                    f"the dataset's terms or provide credentials (see docs/download.md)")
            self.url = self.refresh(self.remote)  # a signed URL expired: ask the API for a new one
            self._fail("HTTP 403 on a signed URL")
            return None
        if status == 416:
            response.close()
            self._reset()  # the server has fewer bytes than our part: it is not ours
            self._fail("HTTP 416 (range not satisfiable)")
            return None
        length = response.headers.get("Content-Length")
        if status == 202 or (length == "0" and (self.size or 0) > 0):
            waf = " (bot challenge: x-amzn-waf-action)" if "x-amzn-waf-action" in response.headers else ""
            response.close()
            raise DownloadError(f"{self.remote.name}: HTTP {status} with an empty body{waf} from "
                                f"{redact(self.url)}; this host does not serve files to scripts, "
                                f"use the platform's download host (see docs/download.md)")
        ctype = response.headers.get("Content-Type", "").lower()
        if ctype.startswith("text/html") and not self.remote.name.lower().endswith((".html", ".htm")):
            response.close()
            self._fail(f"an HTML page ({ctype}) instead of the file")
            return None
        if status == 206:
            match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
            start = int(match.group(1)) if match else -1
            total = int(match.group(3)) if match and match.group(3) != "*" else None
            if start != offset or (self.size is not None and total is not None and total != self.size):
                received_range = response.headers.get("Content-Range", "none")
                response.close()
                self._reset()  # a range we did not ask for: start over rather than splice
                self._fail(f"HTTP 206 with Content-Range {received_range!r} for a request of bytes={offset}-")
                return None
        elif offset:
            self._reset()  # 200 to a Range request (or changed validator): full body follows
            offset = 0
            hasher = hashlib.new(self.alg)
        if self.expected is None:
            self.server_md5 = goog_md5(response.headers.get("x-goog-hash", "")) or self.server_md5
        if offset or self.size is None or self.size > NO_RECORD_BELOW:
            self._save_state(response)
        received = offset

        def show(n: int) -> None:
            if received > self.shown:
                advance(received - self.shown)
                self.shown = received
        show(0)
        # decoding makes urllib3 read on until a full chunk, losing a short read to a dropped connection
        decode = response.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity")
        readinto = _body_reader(response, decode)
        try:
            with naming_errors(self.part):
                pipe = _Pipeline(hasher, self.part, append=bool(offset),
                                 expect=None if self.size is None else self.size - offset)
            try:
                while True:
                    slot, view = pipe.take()
                    try:
                        n = readinto(view)
                    except (http.client.HTTPException, OSError) as exc:  # from the socket or http.client
                        raise _BodyReadError(exc) from exc
                    if not n:
                        break
                    if self.cancel is not None and self.cancel.is_set():
                        raise Cancelled(f"{self.remote.name}: cancelled; {received} bytes kept in {self.part}")
                    received += n
                    if self.size is not None and received > self.size:
                        self._reset()
                        raise DownloadError(f"{self.remote.name}: {redact(self.url)} sent more than the "
                                            f"expected {self.size} bytes; the record changed: re-pin with "
                                            f"{self.repin}")
                    pipe.put(slot, n)
                    show(n)
                pipe.close(sync=self.size is None or received == self.size)  # a complete part is made durable
            finally:
                pipe.close()  # the digest covers every byte written
            _reuse_connection(response)
        except _PartWriteError as exc:
            cause = exc.__cause__
            raise DownloadError(f"{self.remote.name}: writing {self.part} failed "
                                f"({getattr(cause, 'strerror', None) or cause}); free disk space or fix "
                                f"permissions, then rerun to resume") from None
        except _STREAM_ERRORS as exc:
            response.close()
            cause = exc.__cause__ if isinstance(exc, _BodyReadError) else exc
            self._fail(f"connection lost after {received} bytes ({type(cause).__name__})")
            return None  # the part keeps what arrived; the next round resumes with Range
        finally:
            response.close()
        if self.size is not None and received < self.size:
            self._fail(f"body ended after {received} of {self.size} bytes")
            return None
        return hasher.hexdigest()


def _body_reader(response: requests.Response, decode: bool) -> Callable[[memoryview], int]:
    """``readinto(view) -> n`` for the response body; 0 at its end.

    Identity bodies are read by ``http.client`` straight into our buffer (one kernel copy,
    no per-chunk allocation: urllib3's ``read(amt)`` allocates a zeroed bytearray and copies
    it into a new ``bytes`` for every chunk). ``readinto`` fills the whole view unless the
    body ends (a FIN keeps the short read); the call after a body shorter than its
    Content-Length raises ``IncompleteRead`` (``http.client.readinto`` itself just returns 0),
    as urllib3's ``read`` does. Encoded bodies go through urllib3 to be decoded.
    """
    fp = getattr(response.raw, "_fp", None)
    if not decode and isinstance(fp, http.client.HTTPResponse):
        def direct(view: memoryview) -> int:
            n = fp.readinto(view)
            if not n and fp.length:  # the connection closed before Content-Length bytes
                raise http.client.IncompleteRead(b"", fp.length)
            return n
        return direct
    pending = memoryview(b"")

    def readinto(view: memoryview) -> int:
        nonlocal pending
        if not pending:
            pending = memoryview(response.raw.read(len(view), decode_content=decode))
        n = min(len(view), len(pending))
        view[:n] = pending[:n]
        pending = pending[n:]
        return n
    return readinto


ALIGN = 4096  # O_DIRECT wants buffer address, length and file offset aligned to the device's block (<= 4 KiB)
DIRECT_IO = hasattr(os, "O_DIRECT")  # off: every part is written through the page cache (tests cover both)


def _hash_in_thread() -> bool:
    """Hash in a second thread only when a second core can run it: on one core the thread only adds
    context switches (measured: inline is as fast there)."""
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    return len(cores) > 1


class _Buffers:
    """Page-aligned receive buffers (anonymous mmaps: O_DIRECT needs the alignment), reused across
    transfers: allocating and zeroing 4 MiB per file cost more than receiving a small file."""

    KEEP = 16  # spare buffers kept (16 MiB): enough for 8 small transfers at once and one big one

    def __init__(self, size: int):
        self.size, self.lock, self.spare = size, threading.Lock(), []

    def borrow(self, count: int) -> list[mmap.mmap]:
        with self.lock:
            taken, self.spare = self.spare[:count], self.spare[count:]
        return taken + [mmap.mmap(-1, self.size) for _ in range(count - len(taken))]

    def give_back(self, buffers: list[mmap.mmap]) -> None:
        with self.lock:
            self.spare.extend(buffers[:max(0, self.KEEP - len(self.spare))])


_BUFFERS = _Buffers(NET_CHUNK)


class _Pipeline:
    """Received chunks written to the part and hashed, in order, from reused buffers.

    Why: hashing (md5 above all) costs more CPU than receiving and writing; hashlib releases
    the GIL, so with a second core a thread hashes the previous chunk while the socket is read
    (on one core, hashing inline saves the thread switches). A writer thread keeps disk waits
    off the receiving thread. The part is opened with O_DIRECT where the file system allows it:
    the bytes go from our buffer to the disk without a page cache copy and are on disk when the
    write returns, so the fsync before the rename has nothing left to flush (elsewhere the writer
    asks the kernel every ``FLUSH_EVERY`` bytes to write the part as it grows, for the same reason).
    ``close`` waits for the threads, so the digest covers exactly the bytes written to the part;
    a write error is raised (:class:`_PartWriteError`) by the next ``take`` or ``put``, or by ``close``.
    """

    FLUSH_EVERY = 8 << 20  # bytes of a part written through the page cache between writeback starts

    def __init__(self, hasher, path: Path, append: bool = False, expect: int | None = None,
                 threaded: bool | None = None, depth: int = 4):
        one_buffer = expect is not None and expect <= _BUFFERS.size
        self.threaded = not one_buffer and (_hash_in_thread() if threaded is None else threaded)
        depth = 1 if one_buffer else depth
        self.hasher, self.buffers = hasher, _BUFFERS.borrow(depth)
        self.views = [memoryview(b) for b in self.buffers]
        self.free: queue.SimpleQueue = queue.SimpleQueue()
        for slot in range(depth):
            self.free.put(slot)
        # a small body through the page cache: a direct write would wait for the disk, then the fsync again
        self.fd, self.direct = self._open(path, append, direct=DIRECT_IO and not one_buffer)
        self.closed, self.unflushed, self.error = False, 0, None
        self.to_hash: queue.SimpleQueue = queue.SimpleQueue()
        self.to_write: queue.SimpleQueue = queue.SimpleQueue()
        self.threads = []
        if not one_buffer:  # a small body is written and hashed inline: starting threads would cost more
            self.threads.append(threading.Thread(target=self._write_queued, daemon=True, name="omnimedseg-write"))
        if self.threaded:
            self.threads.append(threading.Thread(target=self._hash_queued, daemon=True, name="omnimedseg-hash"))
        for thread in self.threads:
            thread.start()

    @staticmethod
    def _open(path: Path, append: bool, direct: bool) -> tuple[int, bool]:
        flags = (os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
                 | (0 if append else os.O_TRUNC))
        fd = -1
        if direct:
            try:
                fd = os.open(path, flags | os.O_DIRECT, 0o644)
            except OSError:  # the file system refuses O_DIRECT (EINVAL): write through the page cache
                fd = -1
        direct = fd >= 0
        if not direct:
            fd = os.open(path, flags, 0o644)
        end = os.lseek(fd, 0, os.SEEK_END) if append else 0
        if direct and end % ALIGN:  # a resumed part of odd length: direct writes would be refused
            direct = not _clear_direct(fd)
        return fd, direct

    def _write(self, view: memoryview) -> None:
        if not self.direct:
            self.unflushed += len(view)
        else:
            whole = len(view) - len(view) % ALIGN
            try:
                view = view[os.write(self.fd, view[:whole]):] if whole else view
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # some file systems accept O_DIRECT at open and refuse it on write
            if view:  # the body's tail (or a short read): this part continues through the page cache
                self.direct = not _clear_direct(self.fd)
        while view:
            view = view[os.write(self.fd, view):]

    def take(self) -> tuple[int, memoryview]:
        slot = self.free.get()
        if self.error is not None:
            raise self.error
        return slot, self.views[slot]

    def put(self, slot: int, n: int) -> None:
        """Hand the first ``n`` bytes of ``slot`` on: written to the part, then hashed (here or in a thread)."""
        if not self.threads:
            try:
                self._write(self.views[slot][:n])
            except OSError as exc:
                raise _PartWriteError(exc) from exc
            self.hasher.update(self.views[slot][:n])
            self.free.put(slot)
        elif self.threaded:
            self.to_hash.put((slot, n))  # the hasher passes it to the writer
        else:
            self.to_write.put((slot, n))
            self.hasher.update(self.views[slot][:n])  # the writer only reads the buffer; it frees the slot

    def _hash_queued(self) -> None:
        while (item := self.to_hash.get()) is not None:
            self.hasher.update(self.views[item[0]][:item[1]])
            self.to_write.put(item)
        self.to_write.put(None)

    def _start_writeback(self) -> None:
        """Have the kernel start writing the part's last ``FLUSH_EVERY`` bytes, without waiting for it.

        POSIX_FADV_DONTNEED starts writeback of dirty pages and does not wait (Linux), and drops the
        pages written back by the previous call, so a big part does not fill the page cache. Where it
        is missing, an fdatasync (it waits: measured 3x slower on one core for 1 GiB)."""
        end = os.lseek(self.fd, 0, os.SEEK_CUR)
        if hasattr(os, "posix_fadvise"):
            start = max(0, end - 2 * self.FLUSH_EVERY)
            os.posix_fadvise(self.fd, start, end - start, os.POSIX_FADV_DONTNEED)
        else:
            getattr(os, "fdatasync", os.fsync)(self.fd)

    def _write_queued(self) -> None:
        while (item := self.to_write.get()) is not None:
            slot, n = item
            if self.error is None:
                try:
                    self._write(self.views[slot][:n])
                    if self.unflushed >= self.FLUSH_EVERY:
                        self.unflushed = 0
                        self._start_writeback()
                except OSError as exc:  # the receiving thread raises it; later chunks are dropped
                    self.error = _PartWriteError(exc)
                    self.error.__cause__ = exc
            self.free.put(slot)

    def close(self, sync: bool = False) -> None:
        """Wait for the threads and close the part; ``sync`` fsyncs it first (on the fd that wrote it:
        opening the part again to fsync cost five more system calls per file)."""
        if self.closed:
            return
        self.closed = True
        (self.to_hash if self.threaded else self.to_write).put(None)
        for thread in self.threads:
            thread.join()
        try:
            if sync and self.error is None:
                os.fsync(self.fd)
        except OSError as exc:
            self.error = _PartWriteError(exc)
            self.error.__cause__ = exc
        finally:
            os.close(self.fd)
        self.views = []  # the buffers go back to the pool only once no view of ours can write into them
        _BUFFERS.give_back(self.buffers)
        if self.error is not None:
            raise self.error


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _clear_direct(fd: int) -> bool:
    """Turn O_DIRECT off on ``fd`` (Linux allows it with F_SETFL); True when done."""
    import fcntl

    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)
    except OSError:
        return False
    return True


def _copy_local(remote: RemoteFile, part: Path, advance: Callable[[float], None]) -> dict[str, str]:
    """``file://`` transport: copy a local file (never moving or touching the source), hashing as it goes."""
    source = Path(unquote(urlparse(remote.url).path))
    if not source.is_file():
        raise DownloadError(f"{remote.name}: source file {source} does not exist")
    alg = _expected(remote)[0]
    hasher = hashlib.new(alg)
    with open(source, "rb") as src, open(part, "wb") as dst, naming_errors(part):
        for chunk in iter(lambda: src.read(CHUNK), b""):
            dst.write(chunk)
            hasher.update(chunk)
            advance(len(chunk))
        dst.flush()
        os.fsync(dst.fileno())
    return {alg: hasher.hexdigest()}


def _fetch_ftp(remote: RemoteFile, part: Path, advance: Callable[[float], None]) -> dict[str, str]:
    """``ftp://`` with ``REST`` resume (stdlib ftplib; anonymous: a URL carrying ``user:password@`` is refused
    before this runs, as every URL with user info is, so no password is ever printed or stored)."""
    import ftplib

    url = urlparse(remote.url)
    alg = _expected(remote)[0]
    hasher = hashlib.new(alg)
    offset = part.stat().st_size if part.exists() else 0
    if remote.size is not None and offset > remote.size:
        part.unlink()
        offset = 0
    if offset:
        with open(part, "rb") as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                hasher.update(chunk)
    try:
        with ftplib.FTP() as ftp, open(part, "ab") as out:
            ftp.connect(url.hostname, url.port or 21, timeout=60)
            ftp.login()  # anonymous (check_url refused any user info)
            advance(offset)

            def write(chunk: bytes) -> None:
                out.write(chunk)
                hasher.update(chunk)
                advance(len(chunk))
            ftp.retrbinary(f"RETR {unquote(url.path)}", write, blocksize=CHUNK, rest=offset or None)
            out.flush()
            os.fsync(out.fileno())
    except (OSError, ftplib.Error) as exc:
        raise DownloadError(f"{remote.name}: FTP transfer from {redact(remote.url)} failed ({exc}); "
                            f"rerun to resume") from None
    return {alg: hasher.hexdigest()}


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link when possible (no extra disk), else copy; the source is never changed, nor is a file
    already at ``target`` (another file of the dataset, an archive's member: an error, never replaced)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except FileExistsError:
        raise DownloadError(f"{source}: would replace {target.name!r}, which another file of this dataset (an "
                            f"archive's member) already provides; the card must not list both") from None
    except OSError:  # another file system, or links not allowed: a copy
        with naming_errors(target):
            shutil.copy2(source, target)
