"""Small files through libcurl's multi interface: the fast lane of :func:`~._transfer.fetch_all`.

Why: below :data:`~._transfer.NO_RECORD_BELOW` (files never resumed) a file costs more CPU in requests, urllib3 and
``http.client`` (about 1.4 ms, mostly holding the GIL) than in receiving it, so thousands of them
(an IDC series, a folder of PNGs) ran at a third of curl's speed. libcurl receives many at once in C
from one thread (pycurl, a thin binding; optional: ``pip install 'omnimedseg[fast]'``).

The lane takes only the happy path and keeps the engine's rules: every hop is prepared by the same
:class:`~._http.HttpClient` (URL checks, credentials for their own origin only, cookies, pacing per
host, proxies and CA bundle from the environment), redirects follow the client's rule, and a file is
renamed into place only when it has the pinned size and hash and its part was fsynced. A file it
cannot finish (an error status, a wrong hash, a full disk) is handed back to the engine's own
transfer, whose retries and one-line errors then apply; a failure of the network or TLS, or a server
asking to slow down, hands back every file not yet finished. ``OMNIMEDSEG_LIBCURL=0`` turns it off.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import requests

from omnimedseg.downloaders import _transfer
from omnimedseg.downloaders._http import (
    MAX_REDIRECTS,
    REDIRECT_STATUSES,
    RETRY_STATUSES,
    HttpClient,
    _Host,
    offline,
    origin,
    redact,
)
from omnimedseg.downloaders._transfer import PART, SIDE, _expected, _sibling, _Tee, goog_md5
from omnimedseg.errors import DownloadError
from omnimedseg.registry import RemoteFile

try:
    import pycurl
except ImportError:  # optional: without it every file goes through the engine's own transfer
    pycurl = None

ENV_LIBCURL = "OMNIMEDSEG_LIBCURL"
log = logging.getLogger(__name__)
FINISHERS = 4  # threads that hash, write, fsync and rename received bodies (the fsync waits for the disk)
BACKLOG = 4 * FINISHERS  # received bodies waiting for them: when the disk is slower than the network, we wait
# libcurl errors that say the host cannot be reached as asked (DNS, connect, proxy, TLS, timeout): the lane
# stops at once and the engine retries, then names the failure. Any other error (a dropped or cut body, a
# body longer than pinned) concerns one file, until ``MISSES_IN_A_ROW`` files in a row went to the engine.
_UNREACHABLE = frozenset(getattr(pycurl, f"E_{name}") for name in (
    "COULDNT_RESOLVE_PROXY", "COULDNT_RESOLVE_HOST", "COULDNT_CONNECT", "OPERATION_TIMEDOUT", "SSL_CONNECT_ERROR",
    "PEER_FAILED_VERIFICATION", "SSL_CERTPROBLEM", "SSL_CIPHER", "SSL_CACERT_BADFILE", "SSL_ISSUER_ERROR",
    "SSL_PINNEDPUBKEYNOTMATCH", "SSL_INVALIDCERTSTATUS", "USE_SSL_FAILED")) | {97} if pycurl else frozenset()  # CURLE_PROXY
MISSES_IN_A_ROW = 8


def available() -> bool:
    """Whether the lane can run: pycurl is installed on libcurl >= 8.4 (older ones check ``MAXFILESIZE``
    only against a Content-Length, so an endless body would fill memory), ``$OMNIMEDSEG_LIBCURL`` does not
    turn it off, and the network may be used (offline mode is the engine's to report)."""
    off = os.environ.get(ENV_LIBCURL, "").strip().lower() in ("0", "false", "no", "off")
    return pycurl is not None and pycurl.version_info()[2] >= 0x080400 and not off and not offline()


def takes(remote: RemoteFile, target: Path) -> bool:
    """Whether the lane fetches ``remote``: over http(s), of known size too small to resume, not yet at
    ``target`` (a file already there is the engine's to verify or replace)."""
    return (remote.size is not None and remote.size <= _transfer.NO_RECORD_BELOW
            and (remote.url or "").startswith(("http://", "https://")) and not os.path.lexists(target))


@dataclass(eq=False)
class _Transfer:
    index: int
    remote: RemoteFile
    target: Path
    url: str
    hop: int = 0
    host: _Host | None = None
    start_at: float = 0.0
    prepared_url: str = ""
    options: list = field(default_factory=list)
    body: list = field(default_factory=list)
    header_lines: list = field(default_factory=list)


class CurlLane:
    """Fetch small files ``jobs`` at a time; :meth:`run` returns the indices it finished."""

    def __init__(self, client: HttpClient, jobs: int, progress: _Tee, cancel: threading.Event):
        self.client, self.jobs, self.progress, self.cancel = client, max(1, jobs), progress, cancel
        self.finished: set[int] = set()
        self.lock = threading.Lock()
        self.stopped = False  # the network failed or a server asked to slow down: the engine takes the rest
        self.misses = 0  # files in a row handed to the engine
        self._options: dict[tuple[str, str], list | None] = {}
        self._folders: set[str] = set()
        self._backlog = threading.Semaphore(BACKLOG)

    # --- the loop -------------------------------------------------------------------------------
    def run(self, items: list[tuple[int, RemoteFile, Path]]) -> set[int]:
        todo = deque(_Transfer(i, remote, target, remote.url) for i, remote, target in items)
        multi = pycurl.CurlMulti()
        idle = [self._handle() for _ in range(min(self.jobs, len(todo)))]
        active: dict = {}
        held: _Transfer | None = None  # the next transfer, waiting for its host's turn or a free slot there
        with ThreadPoolExecutor(FINISHERS, thread_name_prefix="omnimedseg-finish") as finisher:
            try:
                while (todo or held or active) and not self.stopped and not self.cancel.is_set():
                    held = self._start_ready(held, todo, idle, active, multi)
                    while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
                        pass
                    ended = False
                    for handle, error, message in self._completed(multi):
                        multi.remove_handle(handle)
                        transfer = active.pop(handle)
                        transfer.host.semaphore.release()
                        idle.append(handle)
                        self._settle(transfer, handle, error, message, todo, finisher)
                        ended = True
                    if not ended:  # else start the next ones at once: their slots are free
                        self._wait(multi, held, bool(active))
            finally:
                for handle, transfer in active.items():
                    multi.remove_handle(handle)
                    transfer.host.semaphore.release()
                for handle in [*idle, *active]:
                    handle.close()
                multi.close()
                if self.cancel.is_set():  # Ctrl-C: bodies not yet written stay unfinished
                    finisher.shutdown(cancel_futures=True)
        return self.finished

    def _start_ready(self, held: _Transfer | None, todo: deque, idle: list, active: dict, multi) -> _Transfer | None:
        """Start transfers while handles are idle and hosts' turns and slots allow; returns the one held back."""
        while idle and not self.stopped:
            if held is None:
                if not todo:
                    break
                held = self._prepare(todo.popleft())
                if held is None:
                    continue
            if held.start_at > time.monotonic() or not held.host.semaphore.acquire(blocking=False):
                break
            handle = idle.pop()
            try:
                self._start(handle, held)
                multi.add_handle(handle)
                active[handle] = held
            except Exception as exc:  # noqa: BLE001 - an option libcurl refuses: the engine's file
                log.debug("libcurl: %s not started (%r); the engine takes it", held.remote.name, exc)
                held.host.semaphore.release()
                idle.append(handle)
                self._miss()
            held = None
        return held

    @staticmethod
    def _wait(multi, held: _Transfer | None, active: bool) -> None:
        """Until a socket is ready, libcurl has work due, or the held transfer's turn comes."""
        timeout = 1.0
        if held is not None:
            early = held.start_at - time.monotonic()
            timeout = early if early > 0 else 0.01 if not active else 1.0  # else: a slot at its host frees
        if active:
            due = multi.timeout()  # ms; libcurl's own timers (a resolver thread's answer has no socket to watch)
            multi.select(min(timeout, due / 1000 if due >= 0 else 1.0))
        elif held is not None:
            time.sleep(min(timeout, 0.2))

    @staticmethod
    def _completed(multi):
        """(handle, libcurl error number or 0, its message) of every transfer that ended since the last call."""
        while True:
            queued, ok, failed = multi.info_read()
            yield from ((handle, 0, "") for handle in ok)
            yield from failed
            if not queued:
                return

    # --- one hop --------------------------------------------------------------------------------
    def _prepare(self, transfer: _Transfer) -> _Transfer | None:
        """The hop's request from the client (its checks, credentials, cookies) and its host's turn;
        None when the engine must take the file (it raises the client's error for it)."""
        try:
            prepared, transfer.host = self.client.prepare_hop("GET", transfer.url, None,
                                                              {"Accept-Encoding": "identity"},
                                                              transfer.remote.name, transfer.hop)
            options = self._origin_options(prepared.url)
            # latin-1, as http.client encodes header values (a cookie may hold any byte)
            headers = [f"{key}: {value}".encode("latin-1") for key, value in prepared.headers.items()]
        except (DownloadError, UnicodeError):
            return self._miss()
        if options is None:
            return self._miss()
        transfer.prepared_url = prepared.url
        transfer.options = [(pycurl.URL, prepared.url), *options, (pycurl.HTTPHEADER, headers)]
        transfer.start_at = transfer.host.reserve()
        return transfer

    def _origin_options(self, url: str) -> list | None:
        """libcurl options for requests' settings of ``url``'s origin (proxy, CA bundle), once per origin;
        None where the lane cannot keep them (a client certificate): the engine fetches from there."""
        key = origin(url)
        if key not in self._options:
            settings = self.client.environment_settings(url)
            # requests already applied NO_PROXY in choosing; "" and "" keep libcurl from reading the environment
            proxy = requests.utils.select_proxy(url, settings["proxies"]) or ""
            options = [(pycurl.PROXY, proxy), (pycurl.NOPROXY, "")]
            verify = settings["verify"]
            if verify is True:
                verify = requests.utils.extract_zipped_paths(requests.utils.DEFAULT_CA_BUNDLE_PATH)
            if verify is False:
                options += [(pycurl.SSL_VERIFYPEER, 0), (pycurl.SSL_VERIFYHOST, 0)]
            else:  # exactly requests' CAs: a file or a folder, never libcurl's built-in bundle besides
                folder = os.path.isdir(verify)
                options += [(pycurl.SSL_VERIFYPEER, 1), (pycurl.SSL_VERIFYHOST, 2),
                            (pycurl.CAPATH, verify if folder else None), (pycurl.CAINFO, None if folder else verify),
                            (pycurl.PROXY_CAPATH, verify if folder else None),
                            (pycurl.PROXY_CAINFO, None if folder else verify)]
            self._options[key] = None if settings["cert"] else options
        return self._options[key]

    def _handle(self):
        handle = pycurl.Curl()
        connect, read = self.client.timeout
        for option, value in ((pycurl.NOSIGNAL, 1), (pycurl.FOLLOWLOCATION, 0),  # the client's redirect rule
                              (pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1),  # as requests speaks
                              (pycurl.CONNECTTIMEOUT_MS, int(connect * 1000)),
                              (pycurl.LOW_SPEED_LIMIT, 1), (pycurl.LOW_SPEED_TIME, max(1, round(read))),
                              (pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)):
            handle.setopt(option, value)
        return handle

    def _start(self, handle, transfer: _Transfer) -> None:
        transfer.body, transfer.header_lines = [], []
        for option, value in transfer.options:
            if value is None:
                handle.unsetopt(option)  # NULL: not libcurl's default either
            else:
                handle.setopt(option, value)
        handle.setopt(pycurl.MAXFILESIZE, max(1, transfer.remote.size))  # a longer body is cut off (0: no limit)
        handle.setopt(pycurl.WRITEFUNCTION, transfer.body.append)
        handle.setopt(pycurl.HEADERFUNCTION, transfer.header_lines.append)

    def _settle(self, transfer: _Transfer, handle, error: int, message: str, todo: deque,
                finisher: ThreadPoolExecutor) -> None:
        """What an ended hop leads to: the next hop, a body to keep, or the engine."""
        if error:
            log.debug("libcurl: GET %s failed: %s (%s); the engine takes it", redact(transfer.prepared_url),
                      message, error)
            self._miss(stop=error in _UNREACHABLE)  # the engine retries, then names what failed
            return
        status = handle.getinfo(pycurl.RESPONSE_CODE)
        log.debug("libcurl: GET %s %s", redact(transfer.prepared_url), status)  # as urllib3 logs the engine's
        headers, reply = self._headers(transfer, status)
        self.client.respect_quota(reply, transfer.host)
        if status in REDIRECT_STATUSES and "Location" in headers:
            try:
                transfer.url = self.client.redirect_target(transfer.prepared_url, headers["Location"],
                                                           transfer.remote.name)
            except DownloadError:
                return self._miss()
            transfer.hop += 1
            if transfer.hop > MAX_REDIRECTS:
                return self._miss()
            todo.appendleft(transfer)
            return
        if status in RETRY_STATUSES:
            transfer.host.hold_off(self.client.backoff(0, reply))
            return self._miss(stop=True)  # the server asks us to slow down: the engine's pacing and retries
        if status != 200 or headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity") \
                or (headers.get("Content-Type", "").lower().startswith("text/html")
                    and not transfer.remote.name.lower().endswith((".html", ".htm"))):
            return self._miss()  # an error page, an encoded body, a maintenance page: the engine's messages
        self.misses = 0
        self._backlog.acquire()  # released by _keep
        finisher.submit(self._keep, transfer, goog_md5(headers.get("x-goog-hash", "")))

    def _miss(self, stop: bool = False) -> None:
        """A file handed to the engine; the lane stops when told to or after ``MISSES_IN_A_ROW``."""
        self.misses += 1
        self.stopped = self.stopped or stop or self.misses >= MISSES_IN_A_ROW

    def _headers(self, transfer: _Transfer, status: int):
        """The response's headers, and a response-like object for the client's quota and backoff rules;
        cookies the server sets go into the client's session, as with the engine's transfer."""
        lines = transfer.header_lines
        last = max((i for i, line in enumerate(lines) if line.startswith(b"HTTP/")), default=-1)
        lines = lines[last + 1:]  # the final response's (a proxy's CONNECT answer may come first)
        headers = requests.structures.CaseInsensitiveDict()
        for line in lines:
            name, colon, value = line.decode("latin-1").partition(":")
            if colon:
                headers[name.strip()] = value.strip()
        if "Set-Cookie" in headers:
            message = http.client.parse_headers(io.BytesIO(b"".join(lines)))
            request = requests.Request("GET", transfer.prepared_url).prepare()
            self.client.session.cookies.extract_cookies(requests.cookies.MockResponse(message),
                                                        requests.cookies.MockRequest(request))
        return headers, SimpleNamespace(status_code=status, headers=headers)  # what retry_after_seconds reads

    # --- keeping a body (finisher threads) --------------------------------------------------------
    def _keep(self, transfer: _Transfer, server_md5: str | None) -> None:
        """Verify the body, write and fsync its part, rename it into place; leave it to the engine otherwise."""
        try:
            data, transfer.body = b"".join(transfer.body), []
            if self._verified(transfer.remote, data, server_md5):
                self._write(transfer, data)
        finally:
            self._backlog.release()

    @staticmethod
    def _verified(remote: RemoteFile, data: bytes, server_md5: str | None) -> bool:
        alg, expected = _expected(remote)
        if len(data) != remote.size:
            return False
        if expected is not None:
            return hashlib.new(alg, data).hexdigest() == expected
        return not server_md5 or hashlib.md5(data).hexdigest() == server_md5

    def _write(self, transfer: _Transfer, data: bytes) -> None:
        remote, target = transfer.remote, transfer.target
        part = _sibling(target, PART)
        try:
            folder = str(target.parent)
            if folder not in self._folders:
                os.makedirs(folder, exist_ok=True)
                self._folders.add(folder)
            part.unlink(missing_ok=True)  # a part left by a killed run, or a link planted there: never written through
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_CLOEXEC", 0), 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)  # durable before the rename, as every part of the engine's
            finally:
                os.close(fd)
            os.replace(part, target)
            _sibling(target, SIDE).unlink(missing_ok=True)
        except OSError:  # a full disk or a permission: the engine's transfer says so in one line
            part.unlink(missing_ok=True)
            return
        with self.progress.task(remote.name, remote.size, unit="B") as advance:
            advance(remote.size)
        with self.lock:
            self.finished.add(transfer.index)
