"""The emulator core: a loopback HTTP server pair (API host + storage host) with faults and a request log.

Why our own: the download layer must be proven against the real endpoints, headers and
failure modes of each platform without the internet. Each platform module only adds
routes and JSON shapes; serving bytes (Range, validators, Content-Disposition, signed
storage redirects) and fault injection live here once.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, quote, urlsplit

CHUNK = 256 * 1024


@dataclass
class Blob:
    """One file the emulator serves: bytes in memory or a file on disk."""

    name: str
    data: bytes | None = None
    path: Path | None = None
    content_type: str = "application/octet-stream"
    mtime: float = field(default_factory=lambda: time.time() - 86400)

    def __post_init__(self):
        if self.data is None and self.path is None:
            raise ValueError("Blob needs data or path")
        self._digests: dict[str, str] = {}

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else Path(self.path).stat().st_size

    def digest(self, alg: str) -> str:
        if alg not in self._digests:
            h = hashlib.new(alg)
            if self.data is not None:
                h.update(self.data)
            else:
                with open(self.path, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
            self._digests[alg] = h.hexdigest()
        return self._digests[alg]

    @property
    def md5(self) -> str:
        return self.digest("md5")

    @property
    def sha256(self) -> str:
        return self.digest("sha256")

    @property
    def etag(self) -> str:
        return f'"md5:{self.md5}"'

    @property
    def last_modified(self) -> str:
        return email.utils.formatdate(self.mtime, usegmt=True)

    def read(self, start: int, end: int) -> bytes:
        if self.data is not None:
            return self.data[start:end]
        with open(self.path, "rb") as fh:
            fh.seek(start)
            return fh.read(end - start)


@dataclass
class Recorded:
    """One request as the emulator saw it, for assertions on headers, auth and budgets."""

    server: str  # "api" or "storage"
    method: str
    path: str
    query: dict
    headers: dict
    status: int = 0
    body_bytes: int = 0
    at: float = field(default_factory=time.monotonic)


@dataclass
class Reply:
    status: int = 200
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    blob: Blob | None = None


FAULTS = ("throttle", "status", "drop", "truncate", "ignore_range", "range_416", "html", "empty_202", "slow", "wrong_bytes",
          "expire", "duplicate_accept_ranges", "head_403", "wrong_range", "json_list")


class Emulator:
    """Base of all platform emulators. Use as a context manager; ``url`` is the API host.

    Faults: ``inject(kind, times=1, scope="content", **params)``; ``times=-1`` means always.
    ``match`` limits a fault to requests whose path (or served file name) contains it.
    Kinds: throttle (bps), status (code, retry_after), drop (after), truncate (after), ignore_range,
    range_416, html (a maintenance page; content or api), empty_202, slow (seconds), wrong_bytes, expire
    (the signed storage URL is already expired), duplicate_accept_ranges, wrong_range (a 206 for
    bytes 0- to a Range request, 1- to a plain GET), json_list (an API answers a JSON list). Scope: "content",
    "api" or "any". ``redirect_status`` is the status of the redirect to signed storage (302, 307...).
    """

    platform = "generic"
    env_var = ""  # OMNIMEDSEG_<PLATFORM>_URL

    def __init__(self, redirect_to_storage: bool = False, signed_ttl: float = 300.0, rate_headers: bool = True,
                 disposition: str = "both", honour_range: bool = True):
        self.redirect_to_storage = redirect_to_storage
        self.signed_ttl = signed_ttl
        self.rate_headers = rate_headers
        self.disposition = disposition
        self.honour_range = honour_range
        self.redirect_status = 302
        self.requests: list[Recorded] = []
        self.quota: int | None = None  # requests left before 429 (None = unlimited)
        self._faults: dict[str, list] = {}
        self._lock = threading.Lock()
        self._secret = b"emulator-signing-key"
        self._storage_blobs: dict[str, Blob] = {}
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self.url = self.storage_url = ""

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, port: int = 0, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> "Emulator":
        """Serve the API on ``host:port`` (0: any free port) and the storage host on a free port;
        over HTTPS with ``tls`` (a server context holding the certificate: tests make one with trustme)."""
        for role in ("api", "storage"):
            server = _Server((host, port if role == "api" else 0), _handler(self, role))
            if tls is not None:  # the handshake runs as each connection is accepted; a refused one is dropped
                server.socket = tls.wrap_socket(server.socket, server_side=True)
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                                      name=f"emulator-{self.platform}-{role}")
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://{host}:{self._servers[0].server_address[1]}"
        self.storage_url = f"{scheme}://{host}:{self._servers[1].server_address[1]}"
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        """Environment that points omnimedseg at this emulator."""
        return {self.env_var: self.url} if self.env_var else {}

    # --- faults ------------------------------------------------------------------------------
    def inject(self, kind: str, times: int = 1, scope: str = "content", **params) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
        with self._lock:
            self._faults.setdefault(kind, []).append({"times": times, "scope": scope, **params})

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, kind: str, scope: str, name: str = "") -> dict | None:
        """The next active fault of ``kind`` for ``scope`` (and whose ``match`` is in ``name``), consuming one use."""
        with self._lock:
            for fault in self._faults.get(kind, []):
                if fault["times"] != 0 and fault["scope"] in (scope, "any") and fault.get("match", "") in name:
                    if fault["times"] > 0:
                        fault["times"] -= 1
                    return fault
        return None

    # --- request log helpers -----------------------------------------------------------------
    def log(self, server: str | None = None, path_contains: str = "") -> list[Recorded]:
        return [r for r in list(self.requests) if (server is None or r.server == server) and path_contains in r.path]

    def bytes_served(self, path_contains: str = "") -> int:
        return sum(r.body_bytes for r in self.log(path_contains=path_contains))

    # --- routing (platforms override) ------------------------------------------------------------
    def routes(self) -> list[tuple[str, str, Callable]]:
        """(method, path regex, handler(request, match) -> Reply) for the API host."""
        return []

    def dispatch(self, req: "_Handler", role: str) -> Reply:
        path = urlsplit(req.path).path
        if role == "storage":
            return self._storage(req, path)
        for method, pattern, func in self.routes():
            if method != req.command and not (method == "GET" and req.command == "HEAD"):
                continue
            match = re.fullmatch(pattern, path)
            if match:
                return func(req, match)
        return self.error(404, f"no route for {path}")

    content_pattern = r".*/content"

    def is_content(self, path: str) -> bool:
        """Whether ``path`` downloads file bytes (faults of scope "content" apply to it)."""
        return re.fullmatch(self.content_pattern, path) is not None

    def error(self, status: int, message: str) -> Reply:
        return json_reply({"status": status, "message": message}, status)

    # --- serving file bytes --------------------------------------------------------------------
    def content(self, req: "_Handler", blob: Blob) -> Reply:
        """A file download: redirect to signed storage when enabled, else the bytes themselves."""
        if self.redirect_to_storage:
            return Reply(self.redirect_status, {"Location": self.sign(blob)})
        return self.serve_blob(req, blob)

    def sign(self, blob: Blob, ttl: float | None = None) -> str:
        """A pre-signed storage URL (S3 style) for ``blob``, valid for ``ttl`` seconds."""
        key = hashlib.sha1(blob.name.encode()).hexdigest()[:16]
        self._storage_blobs[key] = blob
        expires = int(time.time() + (self.signed_ttl if ttl is None else ttl))
        sig = hmac.new(self._secret, f"{key}:{expires}".encode(), "sha256").hexdigest()[:32]
        return f"{self.storage_url}/bucket/{key}/{quote(Path(blob.name).name)}?X-Amz-Expires={expires}&X-Amz-Signature={sig}"

    def _storage(self, req: "_Handler", path: str) -> Reply:
        match = re.fullmatch(r"/bucket/([0-9a-f]+)/[^/]+", path)
        query = parse_qs(urlsplit(req.path).query)
        if not match or match.group(1) not in self._storage_blobs:
            return Reply(404, {"Content-Type": "application/xml"}, b"<Error><Code>NoSuchKey</Code></Error>")
        if req.command == "HEAD":  # signed for GET only, like S3 behind Dataverse/Figshare
            return Reply(403, {"Content-Type": "application/xml"}, b"<Error><Code>AccessDenied</Code></Error>")
        key = match.group(1)
        expires = (query.get("X-Amz-Expires") or ["0"])[0]
        sig = (query.get("X-Amz-Signature") or [""])[0]
        good = hmac.new(self._secret, f"{key}:{expires}".encode(), "sha256").hexdigest()[:32]
        expired = not expires.isdigit() or int(expires) < time.time() or self.take("expire", "content", path)
        if sig != good or expired:
            return Reply(403, {"Content-Type": "application/xml"},
                         b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")
        return self.serve_blob(req, self._storage_blobs[key])

    def serve_blob(self, req: "_Handler", blob: Blob) -> Reply:
        return Reply(200, self.blob_headers(blob), blob=blob)

    def blob_headers(self, blob: Blob) -> dict:
        """Extra headers on a file's bytes (GCS-backed platforms send ``x-goog-hash``)."""
        return {}

    def add_folder(self, folder: Path) -> dict:
        """Serve every file under ``folder`` as one record; return the card's ``[source]`` for it."""
        raise NotImplementedError(f"{type(self).__name__} cannot serve a folder")


def json_reply(data, status: int = 200, headers: dict | None = None) -> Reply:
    return Reply(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(data).encode())


def content_disposition(name: str, form: str = "both") -> str:
    base = Path(name).name
    quoted = 'attachment; filename="{}"'.format(base.replace('"', r'\"'))
    star = f"attachment; filename*=UTF-8''{quote(base)}"
    return {"quoted": quoted, "rfc5987": star}.get(form, f"{quoted}; filename*=UTF-8''{quote(base)}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def _handler(emulator: Emulator, role: str):
    class Handler(_Handler):
        pass

    Handler.emulator = emulator
    Handler.role = role
    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as real file servers set it (nginx ``tcp_nodelay on``): headers and a small body go out
    # as two writes, and with Nagle the body waits for the client's delayed ACK (40 ms per small file)
    disable_nagle_algorithm = True
    emulator: Emulator
    role: str

    def log_message(self, *args) -> None:  # quiet: the request log is the record
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self._handle()

    @property
    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query, keep_blank_values=True).items()}

    def _handle(self) -> None:
        emu = self.emulator
        parts = urlsplit(self.path)
        record = Recorded(self.role, self.command, parts.path, self.query, dict(self.headers.items()))
        emu.requests.append(record)
        scope = "content" if self.role == "storage" or emu.is_content(parts.path) else "api"
        reply = self._fault_reply(scope)
        if reply is None:
            try:
                reply = emu.dispatch(self, self.role)
            except Exception as exc:  # an emulator bug must show up as a 500, not a hang
                reply = json_reply({"status": 500, "message": f"emulator error: {exc!r}"}, 500)
        if reply.blob is not None and reply.status == 200:
            self._send_blob(reply, record, scope)
        else:
            self._send(reply, record)

    def _fault_reply(self, scope: str) -> Reply | None:
        emu = self.emulator
        if emu.quota is not None:
            with emu._lock:
                emu.quota -= 1
                over = emu.quota < 0
            if over:
                return json_reply({"status": 429, "message": "Too many requests"}, 429, {"Retry-After": "1"})
        fault = emu.take("status", scope, self.path)
        if fault:
            retry = fault.get("retry_after", "1")
            if retry == "http-date":
                retry = email.utils.formatdate(time.time() + 1, usegmt=True)
            headers = {"Retry-After": str(retry)} if retry is not None else {}
            code = fault.get("code", 503)
            return json_reply({"status": code, "message": "injected fault"}, code, headers)
        if emu.take("html", scope, self.path):
            return Reply(200, {"Content-Type": "text/html; charset=utf-8"},
                         b"<!DOCTYPE html><html><body><h1>Service temporarily unavailable</h1></body></html>")
        if scope != "content":
            if emu.take("json_list", scope, self.path):
                return json_reply([{"unexpected": "shape"}])
            return None
        if emu.take("empty_202", scope, self.path):
            return Reply(202, {"x-amzn-waf-action": "challenge", "Content-Length": "0"})
        return None

    def _common_headers(self) -> dict:
        emu = self.emulator
        headers = {"Date": email.utils.formatdate(usegmt=True)}
        if emu.rate_headers:
            remaining = 133 if emu.quota is None else max(emu.quota, 0)
            headers.update({"X-RateLimit-Limit": "133", "X-RateLimit-Remaining": str(remaining),
                            "X-RateLimit-Reset": str(int(time.time()) + 60), "Retry-After": "60"})
        return headers

    def _send(self, reply: Reply, record: Recorded) -> None:
        headers = {**self._common_headers(), **reply.headers}
        if reply.status in (429, 503) and "Retry-After" in reply.headers:
            headers["Retry-After"] = reply.headers["Retry-After"]
        body = b"" if self.command == "HEAD" else reply.body
        headers["Content-Length"] = str(len(reply.body))
        self.send_response(reply.status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)
        record.status, record.body_bytes = reply.status, len(body)

    def _send_blob(self, reply: Reply, record: Recorded, scope: str) -> None:
        emu, blob = self.emulator, reply.blob
        size = blob.size
        start, end, status = 0, size, 200
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        validators_ok = not if_range or if_range in (blob.etag, blob.last_modified)
        if rng and emu.take("range_416", scope, blob.name):
            return self._send(Reply(416, {"Content-Range": f"bytes */{size}"}), record)
        if emu.take("wrong_range", scope, blob.name):
            start, status = (0 if rng else 1), 206  # never the range that was asked (or not asked)
        elif rng and validators_ok and emu.honour_range and not emu.take("ignore_range", scope, blob.name):
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if m:
                start = int(m.group(1))
                end = min(size, int(m.group(2)) + 1) if m.group(2) else size
                if start >= size:
                    return self._send(Reply(416, {"Content-Range": f"bytes */{size}"}), record)
                status = 206
        headers = {**self._common_headers(), "Content-Type": blob.content_type, "ETag": blob.etag,
                   "Last-Modified": blob.last_modified, "Accept-Ranges": "bytes",
                   "Content-Disposition": content_disposition(blob.name, emu.disposition), **reply.headers}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        truncate = emu.take("truncate", scope, blob.name) if self.command == "GET" else None
        drop = emu.take("drop", scope, blob.name) if self.command == "GET" else None
        slow = emu.take("slow", scope, blob.name) if self.command == "GET" else None
        wrong = emu.take("wrong_bytes", scope, blob.name) if self.command == "GET" else None
        if slow:
            time.sleep(float(slow.get("seconds", 2.0)))
        if truncate:
            headers["Connection"] = "close"  # close-delimited: the short body looks complete
        else:
            headers["Content-Length"] = str(end - start)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if emu.take("duplicate_accept_ranges", scope, blob.name):
            self.send_header("Accept-Ranges", "none")
        self.end_headers()
        record.status = status
        if self.command == "HEAD":
            return
        limit = end - start
        if truncate:
            limit = min(limit, int(truncate.get("after", limit // 2)))
            self.close_connection = True
        if drop:
            limit = min(limit, int(drop.get("after", limit // 2)))
        throttle = emu.take("throttle", scope, blob.name) if self.command == "GET" else None
        sent = self._write_range(blob, start, start + limit, wrong is not None, throttle)
        record.body_bytes = sent
        if drop or truncate:
            self.wfile.flush()
            self.close_connection = True
            try:
                import socket

                self.connection.shutdown(socket.SHUT_WR)  # FIN, not RST: the client reads what was sent
            except OSError:
                pass

    def _write_range(self, blob: Blob, start: int, end: int, corrupt: bool, throttle: dict | None = None) -> int:
        sent = 0
        try:
            if blob.path is not None and not corrupt and not throttle:
                with open(blob.path, "rb") as fh:
                    self.wfile.flush()
                    while sent < end - start:  # zero-copy for the benchmarks
                        n = self.connection.sendfile(fh, start + sent, end - start - sent)
                        if not n:
                            break
                        sent += n
                return sent
            pos = start
            while pos < end:
                chunk = blob.read(pos, min(end, pos + CHUNK))
                if corrupt and pos == start:
                    chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                self.wfile.write(chunk)
                pos += len(chunk)
                sent += len(chunk)
                if throttle:  # bytes per second, for kill-mid-file tests and demos
                    time.sleep(len(chunk) / float(throttle.get("bps", 1 << 20)))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        return sent
