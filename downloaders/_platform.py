"""What platform downloaders share: the listing step, the pin check, the HTTP client, credentials.

A platform module implements ``listing(card)`` (ask the API which files the record has);
``resolve`` then keeps the card's pinned files (refusing drift), and ``registry lock``
uses the same listing to write the pins, so the two can never disagree.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

from omnimedseg.downloaders._base import Downloader, Manifest
from omnimedseg.downloaders._http import Credential, HttpClient, check_url, platform_url, redact
from omnimedseg.downloaders._transfer import repin_command
from omnimedseg.errors import DatasetNotFoundError, DownloadError, OmnimedsegError
from omnimedseg.registry import Card, RemoteFile


@dataclass
class Listing:
    """The files of one exact version of a record, as the platform reports them."""

    record: str
    version: str
    files: list[RemoteFile]
    extra: dict = field(default_factory=dict)


class PlatformDownloader(Downloader):
    """Base for HTTP platforms. Subclasses set ``default_url`` and implement :meth:`listing`."""

    default_url = ""
    rate = 2.0  # requests per second per host
    per_host = 2  # concurrent requests per host
    burst = 1  # requests at once before ``rate`` applies (hourly quotas allow a burst)
    token_env: tuple[str, ...] = ()  # environment variables holding a token
    token_header = "Authorization"
    token_format = "Bearer {}"

    def __init_subclass__(cls, **kwargs):
        """Every platform's ``listing`` and ``refresh`` get the same boundary (:func:`metadata_boundary`)."""
        super().__init_subclass__(**kwargs)
        for name in ("listing", "refresh"):
            if name in cls.__dict__:
                setattr(cls, name, metadata_boundary(cls.__dict__[name]))

    def __init__(self, client: HttpClient | None = None):
        self.base = platform_url(self.platform, self.default_url)
        self.client = client or HttpClient(rate=self.rate, per_host=self.per_host, credentials=self.credentials(),
                                           burst=self.burst)
        self.manifest: Manifest | None = None

    def bind(self, manifest: Manifest) -> None:
        """Remember the pinned manifest, so ``refresh``/``check_part`` also work on a lock read from disk."""
        self.manifest = manifest

    def token(self) -> str | None:
        for name in self.token_env:
            if os.environ.get(name, "").strip():
                return os.environ[name].strip()
        return None

    def credentials(self) -> list[Credential]:
        """Credentials for this platform's own origin only (never sent to storage hosts)."""
        token = self.token()
        return [Credential(self.base, {self.token_header: self.token_format.format(token)})] if token else []

    def listing(self, card: Card) -> Listing:
        raise NotImplementedError(f"{type(self).__name__} must implement listing()")

    def refresh(self, remote: RemoteFile) -> str:
        """A fresh URL for ``remote`` (signed links expire); platforms with expiring links override."""
        return remote.url

    def find(self, listing: Listing, name: str) -> RemoteFile:
        """The file called ``name`` in a fresh ``listing``; a clear error when it vanished."""
        for remote in listing.files:
            if remote.name == name:
                return remote
        raise DatasetNotFoundError(f"{self.platform} record {listing.record} (version {listing.version}) no longer "
                                   f"lists {name!r}; check the record, then run: "
                                   f"{repin_command(self.manifest.dataset_id if self.manifest else '')}")

    def resolve(self, card: Card) -> Manifest:
        found = self.listing(card)
        if not found.files:
            raise DatasetNotFoundError(f"{card.id}: {self.platform} record {found.record} (version {found.version}) "
                                       f"lists no downloadable files; check source.record in {card.path}")
        for remote in found.files:  # a listing chooses URLs; only plain, unambiguous http(s) ones are followed
            if remote.url:
                check_url(remote.url, f"{card.id}: {remote.name}", schemes=("http", "https", "ftp"),
                          via=f"{self.platform} listing link")
        files = self.check_against_card(card, found.files) if card.source.files else tuple(found.files)
        manifest = Manifest(card.id, self.platform, found.record, found.version, files,
                            extra={"base_url": self.base, **found.extra})
        self.bind(manifest)
        return manifest


def metadata_boundary(method):
    """Turn a platform answer of the wrong shape (an HTML maintenance page, a JSON list where a record
    was expected, a missing field) into one line naming the platform and the record or file.

    Platform parsers index the JSON they were promised; this boundary is where "promised" is checked,
    once for all platforms, instead of a ``try`` around every field access.
    """
    @functools.wraps(method)
    def guarded(self, subject):
        try:
            return method(self, subject)
        except OmnimedsegError:
            raise
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
            label = getattr(subject, "id", None) or getattr(subject, "name", None) or subject
            detail = " ".join(str(exc).split())[:160]
            raise DownloadError(f"{label}: {self.platform} at {redact(self.base)} answered metadata of an unexpected "
                                f"shape ({type(exc).__name__}: {detail}); the platform may be in maintenance: "
                                f"rerun later") from None
    return guarded
