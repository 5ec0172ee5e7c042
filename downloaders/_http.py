"""The one HTTP client every platform uses: retries, rate limits, safe redirects, credentials.

Why not plain ``requests.get``: platforms answer 429/503 with ``Retry-After``, redirect to
signed storage URLs on other hosts (where a token must never follow), and slow down clients
that do not identify themselves. Everything here is per host and shared by all threads.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import os
import random
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import requests
import urllib3

from omnimedseg import __version__
from omnimedseg.errors import DownloadError

USER_AGENT = f"omnimedseg/{__version__} (+https://github.com/omnimedseg/omnimedseg)"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
ENV_OFFLINE = "OMNIMEDSEG_OFFLINE"
ENV_MAX_RPS = "OMNIMEDSEG_MAX_RPS"  # overrides every per-host request rate (0 = unlimited)
ENV_TIMEOUT = "OMNIMEDSEG_TIMEOUT"  # read timeout in seconds
ENV_RETRIES = "OMNIMEDSEG_RETRIES"
ENV_MAX_WAIT = "OMNIMEDSEG_MAX_RETRY_WAIT"  # cap on one Retry-After / backoff wait, seconds


def platform_url(platform: str, default: str) -> str:
    """Scheme and host of ``platform``: ``$OMNIMEDSEG_<PLATFORM>_URL`` or the real one.

    Only scheme/host/port (and an optional path prefix) are replaced; API paths stay real,
    so emulators, mirrors and institutional proxies stand in without code changes.
    """
    value = os.environ.get(f"OMNIMEDSEG_{platform.upper()}_URL", "").strip()
    return (value or default).rstrip("/")


def offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in ("1", "true", "yes")


@functools.lru_cache(maxsize=4096)  # pure; asked several times per request (a parse is ~20 us)
def origin(url: str) -> tuple[str, str]:
    """(scheme, host:port) as urllib3 will connect: the unit of trust for credentials and of rate limiting.

    Parsed with urllib3 (the library that opens the connection), not ``urllib.parse``: the two
    disagree on hostile authorities such as ``http://evil\\@platform/``, and trust must be
    decided on the host that really receives the request. Unparseable URLs have no origin.
    """
    try:
        parts = urllib3.util.parse_url(url)
    except (urllib3.exceptions.LocationParseError, ValueError):
        return "", ""
    scheme = (parts.scheme or "").lower()
    port = parts.port or {"http": 80, "https": 443, "ftp": 21}.get(scheme, 0)
    return scheme, f"{(parts.host or '').lower().rstrip('.')}:{port}"


_BAD_AUTHORITY = re.compile(r"[\\@\s\x00-\x1f\x7f]")
WEB_SCHEMES = ("http", "https")


@functools.lru_cache(maxsize=4096)  # pure; every request checks its URL twice
def unsafe_url(url: str, schemes: tuple[str, ...] = WEB_SCHEMES) -> str | None:
    """Why ``url`` must not be requested (a scheme we do not speak, an ambiguous authority), or None.

    An authority holding ``\\``, ``@`` (user info: credentials in a URL), whitespace, control
    characters or a port that is not a number in 1-65535 is refused outright: such URLs are
    read differently by different parsers, which is how a token reaches another host.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"it cannot be parsed ({exc})"
    if parts.scheme.lower() not in schemes:
        return f"its scheme {parts.scheme or 'none'!r} is not one of {', '.join(schemes)}"
    authority = parts.netloc
    bad = _BAD_AUTHORITY.search(authority)
    if not authority or bad:
        what = {"\\": "a backslash", "@": "user info ('@')"}.get(bad.group(), "whitespace or a control character") \
            if bad else "no host"
        return f"its authority holds {what}"
    if ":" in authority.rpartition("]")[2]:  # a port follows the host (or the IPv6 literal)
        port = authority.rpartition(":")[2]
        if not port.isdigit() or not 0 < int(port) < 65536:
            return f"its port {port!r} is not a number in 1-65535"
    ours = (urlsplit(url).hostname or "").lower().rstrip(".")
    theirs = origin(url)[1].rpartition(":")[0].strip("[]")
    if not theirs or ours != theirs:
        return "its host is read differently by the connection library"
    try:
        theirs.encode("idna")  # what the connection will do (an empty label, ``a..b``, fails only there)
    except UnicodeError:
        return "its host name is not a valid name"
    return None


def check_url(url: str, what: str, schemes: tuple[str, ...] = WEB_SCHEMES, via: str = "") -> None:
    """Raise a one-line :class:`DownloadError` naming ``what`` when :func:`unsafe_url` refuses ``url``."""
    reason = unsafe_url(url, schemes)
    if reason:
        raise DownloadError(f"{what}: refusing {via or 'URL'} {redact(url)}: {reason}")


_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*:)?//[^/?#]*@")
_SECRET_PARAM = re.compile(r"(sig|signature|token|key|secret|password|passwd|auth|credential|expires|policy|"
                           r"x-amz-|x-goog-|se$|sp$|sv$|st$|skoid|sktid|skt$|ske$|sks$|skv$)", re.I)


def redact(url: str) -> str:
    """``url`` fit to print or log: user info (``user:pass@``) and the query string (signed URLs,
    tokens) replaced by ``***`` / ``…``. The one redaction for every URL shown to anyone."""
    text = str(url)
    match = _USERINFO.match(text)
    if match:
        text = f"{match.group(1) or ''}//***@" + text[match.end():]
    base, sep, query = text.partition("?")
    base = base.split("#", 1)[0]
    return base + ("?…" if sep and query.split("#", 1)[0] else "")


def lock_url(url: str | None) -> str | None:
    """``url`` fit to store in a lock file: no user info and no signed or secret query parameters
    (they expire anyway; an expired link is listed again through the platform's ``refresh``).
    Parameters that select content (``format=original``, ``datasetVersionNumber=3``) are kept."""
    if not url:
        return url
    text = str(url)
    match = _USERINFO.match(text)
    if match:
        text = f"{match.group(1) or ''}//" + text[match.end():]
    base, sep, query = text.partition("?")
    if not sep:
        return text
    query = query.split("#", 1)[0]
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if not _SECRET_PARAM.search(k)]
    return base + (f"?{urlencode(kept)}" if kept else "")


def retry_after_seconds(response: requests.Response) -> float | None:
    """The server's requested wait: ``Retry-After`` (seconds or HTTP-date) or ``X-RateLimit-Reset``."""
    value = response.headers.get("Retry-After")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError):
            pass
    if response.status_code == 429:
        reset = response.headers.get("X-RateLimit-Reset", "")
        if reset.isdigit():
            reset_at = float(reset)
            # epoch seconds (Zenodo, GitHub) or seconds-from-now (some proxies)
            return max(0.0, reset_at - time.time()) if reset_at > 1e9 else reset_at
    return None


@dataclass
class Credential:
    """Headers that authenticate to exactly one origin; never sent anywhere else."""

    url: str
    headers: dict[str, str]

    def applies_to(self, url: str) -> bool:
        return origin(url) == origin(self.url)

    def __repr__(self) -> str:  # never leak the secret through logs or tracebacks
        return f"Credential(origin={origin(self.url)[1]!r}, headers=[{', '.join(self.headers)}])"


class _RedactingFilter(logging.Filter):
    """urllib3 logs each request line ("GET /path?X-Amz-Signature=..."): its query strings and user
    info go through :func:`redact` too, so a debug log never holds a signed URL's secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_log_arg(arg) for arg in record.args)
        return True


def _redact_log_arg(arg):
    if isinstance(arg, str) and ("?" in arg or "@" in arg) and (arg.startswith("/") or "://" in arg):
        return redact(arg) if "://" in arg else arg.split("?", 1)[0] + "?…"
    return arg


logging.getLogger("urllib3.connectionpool").addFilter(_RedactingFilter())


class _NoNetrc(requests.auth.AuthBase):
    """Session auth that adds nothing: its presence stops requests' ``~/.netrc`` lookup."""

    def __call__(self, request):
        return request


@dataclass
class _Host:
    interval: float
    semaphore: threading.BoundedSemaphore
    burst: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_at: float = 0.0  # when the bucket is full again (GCRA theoretical arrival time)
    blocked_until: float = 0.0  # a server-requested pause (Retry-After), never shortened by the burst

    def reserve(self) -> float:
        """Token bucket: ``burst`` requests at once, then one per ``interval`` to this host. Takes the next
        turn and returns when it comes (``time.monotonic``); a transport that waits on many requests at
        once (libcurl's) starts it then instead of sleeping."""
        with self.lock:
            now = time.monotonic()
            due = max(now, self.next_at)
            start = max(now, due - (self.burst - 1) * self.interval, self.blocked_until)
            self.next_at = max(due, start) + self.interval
        return start

    def wait_turn(self) -> None:
        delay = self.reserve() - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def hold_off(self, seconds: float) -> None:
        with self.lock:
            self.blocked_until = max(self.blocked_until, time.monotonic() + seconds)


class HttpClient:
    """A pooled ``requests.Session`` with per-host limits, retries and redirect rules.

    ``rate``: requests per second per host (``$OMNIMEDSEG_MAX_RPS`` overrides, 0 = none);
    ``per_host``: concurrent requests per host; ``burst``: requests allowed at once before the rate applies.
    """

    def __init__(self, rate: float = 2.0, per_host: int = 2, credentials: list[Credential] | None = None,
                 timeout: tuple[float, float] | None = None, retries: int | None = None,
                 max_wait: float | None = None, allow_downgrade: bool = False, burst: int = 1):
        env_rate = os.environ.get(ENV_MAX_RPS)
        self.rate = float(env_rate) if env_rate else rate
        self.per_host = per_host
        self.burst = max(1, burst)
        self.credentials = list(credentials or [])
        read = float(os.environ.get(ENV_TIMEOUT, 60))
        self.timeout = timeout or (min(read, 30.0), read)
        self.retries = int(os.environ.get(ENV_RETRIES, 6)) if retries is None else retries
        self.max_wait = float(os.environ.get(ENV_MAX_WAIT, 120)) if max_wait is None else max_wait
        self.allow_downgrade = allow_downgrade
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        # trust_env keeps proxies and CA bundles from the environment; the no-op auth stops requests
        # from reading ~/.netrc ($NETRC), whose passwords would go to any host named there and
        # override a platform's Bearer token. The only credentials sent are ``self.credentials``.
        self.session.trust_env = True
        self.session.auth = _NoNetrc()
        adapter = requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=32, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._hosts: dict[tuple[str, str], _Host] = {}
        self._hosts_lock = threading.Lock()
        # requests reads proxies and CA bundles from os.environ on every request (a scan of the whole
        # environment, ~0.4 ms: more than receiving a small file); they are the same for one origin
        self._env_settings: dict[tuple[str, str], dict] = {}

    def host(self, url: str) -> _Host:
        key = origin(url)
        with self._hosts_lock:
            if key not in self._hosts:
                interval = 1.0 / self.rate if self.rate > 0 else 0.0
                self._hosts[key] = _Host(interval, threading.BoundedSemaphore(self.per_host), self.burst)
            return self._hosts[key]

    def _headers_for(self, url: str, headers: dict | None) -> dict:
        out = dict(headers or {})
        for cred in self.credentials:
            if cred.applies_to(url):
                out.update(cred.headers)
        return out

    def _send_once(self, method: str, url: str, headers: dict | None, stream: bool, max_redirects: int = MAX_REDIRECTS,
                   params: dict | None = None, what: str = "") -> requests.Response:
        """One logical request, following redirects by hand so credentials stay on their origin."""
        first = url
        what = what or redact(first)
        for hop in range(max_redirects + 1):
            prepared, host = self.prepare_hop(method, url, params, headers, what, hop)
            host.wait_turn()
            with host.semaphore:
                response = self._send(prepared, stream)
            params = None
            self.respect_quota(response, host)
            location = response.headers.get("Location") if response.status_code in REDIRECT_STATUSES else None
            if location is None:
                return response
            response.close()
            if response.status_code == 303:
                method = "GET"
            url = self.redirect_target(prepared.url, location, what)
        raise DownloadError(f"{what}: more than {max_redirects} redirects from {redact(first)}")

    def prepare_hop(self, method: str, url: str, params: dict | None, headers: dict | None, what: str,
                    hop: int = 0) -> tuple[requests.PreparedRequest, _Host]:
        """One hop's request exactly as it will be sent, and its host (for pacing); both transports send these.

        The URL is checked as received and as it will be sent (after ``params`` are merged): its scheme
        and authority (:func:`unsafe_url`); a credential goes only to the origin urllib3 will connect to,
        never to another parser's idea of it.
        """
        via = "redirect to" if hop else "URL"
        check_url(url, what, via=via)  # as received: parsers disagree on exactly the URLs refused here
        try:
            prepared = self._prepare(method, url, params, headers)
        except ValueError as exc:  # requests' InvalidURL and InvalidHeader are ValueErrors too
            raise DownloadError(f"{what}: refusing {via} {redact(url)}: it cannot be sent ({exc})") from None
        check_url(prepared.url, what, via=via)  # as it will be sent
        if offline():
            raise DownloadError(f"{what}: offline mode (${ENV_OFFLINE}) forbids network access "
                                f"({redact(url)}); unset {ENV_OFFLINE} to download")
        prepared.headers.update(self._headers_for(prepared.url, None))
        return prepared, self.host(prepared.url)

    def redirect_target(self, url: str, location: str, what: str) -> str:
        """Where a redirect from ``url`` leads; a step down from https to plain http is refused."""
        try:
            target = urljoin(url, location)
        except ValueError as exc:  # "http://[": an unclosed IPv6 literal
            raise DownloadError(f"{what}: refusing redirect to {redact(location)}: it cannot be parsed ({exc})") \
                from None
        if urlsplit(url).scheme == "https" and urlsplit(target).scheme == "http" and not self.allow_downgrade:
            raise DownloadError(f"{what}: refusing redirect from https to plain http ({redact(target)})")
        return target

    def _prepare(self, method: str, url: str, params: dict | None, headers: dict | None) -> requests.PreparedRequest:
        """The request as ``Session.prepare_request`` would build it (session headers under ours, the
        session's cookies), without its merging of hooks, auth and settings that this client never sets:
        a third of its cost (30 us instead of 90 us per request, more than receiving a small file's body)."""
        prepared = requests.PreparedRequest()
        merged = {**self.session.headers, **(headers or {})}
        prepared.prepare(method=method.upper(), url=url, params=params, cookies=self.session.cookies,
                         headers={key: value for key, value in merged.items() if value is not None})
        return prepared

    def _send(self, prepared: requests.PreparedRequest, stream: bool) -> requests.Response:
        """One hop through the session's adapter (what ``Session.send`` does, without its hooks and
        redirect machinery: redirects are followed by :meth:`_send_once`); cookies the server sets are
        kept in the session as ``Session.send`` keeps them."""
        settings = self.environment_settings(prepared.url)
        adapter = self.session.get_adapter(prepared.url)
        response = adapter.send(prepared, stream=stream, timeout=self.timeout, verify=settings["verify"],
                                cert=settings["cert"], proxies=settings["proxies"])
        if "Set-Cookie" in response.headers:
            requests.cookies.extract_cookies_to_jar(self.session.cookies, prepared, response.raw)
        if not stream:
            response.content  # noqa: B018  (read the body now: the connection goes back to the pool)
        return response

    def environment_settings(self, url: str) -> dict:
        """requests' proxies, CA bundle and client certificate for ``url``, read from the environment
        once per origin for the life of this client (never changed by callers)."""
        key = origin(url)
        settings = self._env_settings.get(key)
        if settings is None:
            settings = self._env_settings[key] = self.session.merge_environment_settings(url, {}, None, None, None)
        return settings

    @staticmethod
    def respect_quota(response: requests.Response, host: _Host) -> None:
        """Slow down before the quota runs out (X-RateLimit-Remaining), not after a 429."""
        remaining = response.headers.get("X-RateLimit-Remaining", "")
        if remaining.isdigit() and int(remaining) == 0:
            wait = retry_after_seconds(response)
            reset = response.headers.get("X-RateLimit-Reset", "")
            if wait is None and reset.isdigit():
                wait = max(0.0, float(reset) - time.time()) if float(reset) > 1e9 else float(reset)
            if wait:
                host.hold_off(min(wait, 120.0))

    def backoff(self, attempt: int, response: requests.Response | None = None) -> float:
        """Capped exponential backoff with full jitter; the server's ``Retry-After`` wins."""
        hinted = retry_after_seconds(response) if response is not None else None
        if hinted is not None:
            return min(hinted, self.max_wait)
        return random.uniform(0, min(self.max_wait, 0.5 * 2 ** attempt))

    def request(self, method: str, url: str, headers: dict | None = None, stream: bool = False,
                params: dict | None = None, ok: tuple[int, ...] = (200,), what: str = "") -> requests.Response:
        """Send with retries on transient failures; raise a one-line :class:`DownloadError` otherwise."""
        last = ""
        for attempt in range(self.retries + 1):
            try:
                response = self._send_once(method, url, headers, stream, params=params, what=what)
            except (requests.ConnectionError, requests.Timeout) as exc:
                hop = getattr(getattr(exc, "request", None), "url", None) or url  # a redirect's target, maybe
                refused = certificate_refused(exc)
                if refused:  # not transient: retrying would only delay the advice
                    raise DownloadError(f"{what or redact(url)}: the TLS certificate of {origin(hop)[1]} was refused "
                                        f"({refused}); if your network inspects HTTPS (many hospital and university "
                                        f"proxies do), set REQUESTS_CA_BUNDLE to its CA bundle (a PEM file) and "
                                        f"rerun") from None
                last = network_failure(exc, hop)
                if attempt < self.retries:
                    time.sleep(self.backoff(attempt))
                    continue
                break
            if response.status_code in ok:
                return response
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                wait = self.backoff(attempt, response)
                self.host(url).hold_off(wait)
                response.close()
                time.sleep(wait)
                continue
            raise http_error(response, url, what)
        raise DownloadError(f"{what or redact(url)}: {last} after {self.retries + 1} attempts "
                            f"({redact(url)}); check the network and rerun the same command to resume")

    def get_json(self, url: str, params: dict | None = None, headers: dict | None = None, what: str = "",
                 ok: tuple[int, ...] = (200,)):
        response = self.request("GET", url, headers={"Accept": "application/json", **(headers or {})},
                                params=params, ok=ok, what=what)
        if not response.content.strip():
            return None  # e.g. TCIA's "no results" is an empty 200
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "?")
            raise DownloadError(f"{what or redact(url)}: expected JSON from {redact(response.url)}, "
                                f"got {kind} ({len(response.content)} bytes)") from None


def _cause(exc: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of ``kind`` in the chain requests and urllib3 wrap the socket's error in."""
    seen, todo = set(), [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, kind):
            return item
        todo += [x for x in (getattr(item, "reason", None), item.__cause__, item.__context__, *item.args)
                 if isinstance(x, BaseException)]
    return None


def certificate_refused(exc: BaseException) -> str | None:
    """Why a server's TLS certificate was refused (``unable to get local issuer certificate``,
    ``IP address mismatch``...), or None."""
    refused = _cause(exc, ssl.SSLCertVerificationError)
    return (refused.verify_message or str(refused)) if refused is not None else None


def network_failure(exc: BaseException, url: str) -> str:
    """What went wrong on the network reaching ``url``, in words (for the one-line error after the last retry)."""
    host = origin(url)[1] or "the server"
    if _cause(exc, socket.gaierror) is not None:
        return f"{host.rpartition(':')[0] or host} could not be resolved (no network, or no DNS)"
    if _cause(exc, ConnectionRefusedError) is not None:
        return f"{host} refused the connection"
    if isinstance(exc, requests.Timeout) or _cause(exc, TimeoutError) is not None:
        return f"{host} did not answer in time (${ENV_TIMEOUT} sets the read timeout)"
    return f"{type(exc).__name__} from {host}"


def http_error(response: requests.Response, url: str, what: str = "") -> DownloadError:
    """One line: which URL, which status, the server's own message, what to do next."""
    detail = ""
    try:
        if "json" in response.headers.get("Content-Type", ""):
            body = response.json()
            if isinstance(body, dict):
                detail = str(body.get("message") or body.get("detail") or body.get("error") or "")[:200]
    except ValueError:
        pass
    status = response.status_code
    hint = {401: "the platform wants credentials (see docs/download.md)",
            403: "access denied: accept the dataset's terms or provide credentials (see docs/download.md)",
            404: "not found: check the record id in the dataset card",
            429: "rate limited: wait and rerun, or provide a token"}.get(status, "rerun later; partial files are kept")
    response.close()
    text = f"{what + ': ' if what else ''}HTTP {status} from {redact(response.url or url)}"
    return DownloadError(text + (f" ({detail})" if detail else "") + f"; {hint}")


def load_json_file(path: str) -> dict | None:
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None
