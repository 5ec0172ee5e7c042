"""``platform = "doi"``: the card names only a DOI; it is routed to the platform that serves it.

The lock (and so ``verify --repair``) records the real platform, record and version, so a
DOI is resolved once, at download or ``registry lock`` time, never again offline.
"""

from __future__ import annotations

from dataclasses import replace

from omnimedseg.downloaders._base import Downloader, Manifest
from omnimedseg.downloaders._doi import Route, resolve_doi
from omnimedseg.downloaders._platform import metadata_boundary
from omnimedseg.plugins import load_plugin
from omnimedseg.registry import Card


class DoiDownloader(Downloader):
    platform = "doi"

    def __init__(self):
        self.inner: Downloader | None = None
        self.route: Route | None = None

    def routed(self, card: Card) -> Card:
        """``card`` as if it named the DOI's platform, record and version directly."""
        self.route = resolve_doi(card.source.record or card.source.doi or "")
        self.inner = load_plugin("downloaders", self.route.platform, Downloader)()
        return replace(card, source=replace(card.source, platform=self.route.platform, record=self.route.record,
                                            version=card.source.version or self.route.version,
                                            doi=card.source.doi or self.route.doi))

    base = "https://doi.org"  # named in errors from the metadata boundary

    @metadata_boundary
    def listing(self, card: Card):
        found = self.routed(card)
        listing = self.inner.listing(found)
        listing.extra.update({"platform": self.route.platform, "doi": self.route.doi})
        return listing

    @metadata_boundary
    def resolve(self, card: Card) -> Manifest:
        routed = self.routed(card)
        return self.inner.resolve(routed)

    def __getattr__(self, name: str):
        """``client``, ``refresh``, ``check_part``: the routed platform's, once a card was resolved."""
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)
