"""DOI -> (platform, record, version): by prefix where it is unambiguous, else by asking doi.org.

Prefixes settle Zenodo, Figshare (m9), Mendeley Data, Harvard Dataverse and OSF offline.
Everything else (institutional Figshare portals, other Dataverse installations, TCIA
collection DOIs, GitHub/Kaggle landing pages) goes through the handle API
``$OMNIMEDSEG_DOI_URL/api/handles/<doi>?type=URL`` (default https://doi.org) and is routed
by the host of the registered URL, as pooch does; the landing URL is read, never followed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

from omnimedseg.downloaders._http import HttpClient, platform_url
from omnimedseg.errors import DatasetNotFoundError, UsageError


@dataclass(frozen=True)
class Route:
    """Where a DOI lives: what a card's ``[source]`` needs."""

    platform: str
    record: str
    version: str = ""
    doi: str = ""
    url: str = ""  # the landing page doi.org gave, when it was asked


def normalize(doi: str) -> str:
    """``doi:10.1/X``, ``https://doi.org/10.1/X`` -> ``10.1/X`` (the suffix keeps its case)."""
    text = unquote(doi.strip())
    text = re.sub(r"^(?:doi:|https?://(?:dx\.)?doi\.org/)", "", text, flags=re.I).strip().strip("/")
    if not re.fullmatch(r"10\.\d{4,9}/\S+", text):
        raise UsageError(f"{doi!r} is not a DOI (expected 10.<registrant>/<suffix>, e.g. 10.5281/zenodo.1327317)")
    return text


_PREFIXES = [
    (r"10\.5281/zenodo\.(\d+)", lambda m, d: Route("zenodo", m[1], "", d)),
    (r"10\.6084/m9\.figshare\.(\d+)(?:\.v(\d+))?", lambda m, d: Route("figshare", m[1], m[2] or "", d)),
    (r"10\.17632/([a-z0-9]{10})(?:\.(\d+))?", lambda m, d: Route("mendeley", m[1].lower(), m[2] or "", d)),
    (r"10\.7910/dvn/([a-z0-9]{6})(?:/[a-z0-9]+)?", lambda m, d: Route("dataverse", f"doi:{d.split('/')[0]}/DVN/"
                                                                                    f"{m[1].upper()}", "", d)),
    (r"10\.17605/osf\.io/([a-z0-9]{5,})", lambda m, d: Route("osf", m[1].lower(), "", d)),
]

_HOSTS = [  # (host regex, path regex, route builder) for a landing URL
    (r"(sandbox\.)?zenodo\.org", r"/(?:records?|doi/10\.5281/zenodo\.)/?(\d+)",
     lambda m, d, u: Route("zenodo", m[1], "", d, u)),
    (r"([\w-]+\.)*figshare\.com", r"/articles/(?:[^/]+/[^/]+/)?(\d+)(?:/(\d+))?",
     lambda m, d, u: Route("figshare", m[1], m[2] or "", d, u)),
    (r"data\.mendeley\.com", r"/datasets/([a-z0-9]{10})(?:/(\d+))?",
     lambda m, d, u: Route("mendeley", m[1], m[2] or "", d, u)),
    (r"(www\.)?osf\.io", r"/([a-z0-9]{5,})", lambda m, d, u: Route("osf", m[1], "", d, u)),
    (r"github\.com", r"/([\w.-]+/[\w.-]+)/releases/tag/([^/?#]+)",
     lambda m, d, u: Route("github", m[1], unquote(m[2]), d, u)),
    (r"(www\.)?kaggle\.com", r"/datasets/([\w-]+/[\w.-]+)", lambda m, d, u: Route("kaggle", m[1], "", d, u)),
    (r"(www\.)?kaggle\.com", r"/(?:competitions|c)/([\w-]+)",
     lambda m, d, u: Route("kaggle", f"competition:{m[1]}", "", d, u)),
    (r"(www\.)?cancerimagingarchive\.net", r"/collection/([\w.-]+)",
     lambda m, d, u: Route("tcia", m[1].upper(), "", d, u)),
    (r"wiki\.cancerimagingarchive\.net", r"/(?:display/Public|pages/viewpage)/([\w.+-]+)",
     lambda m, d, u: Route("tcia", unquote(m[1].replace("+", " ")), "", d, u)),
]


def route_by_prefix(doi: str) -> Route | None:
    for pattern, build in _PREFIXES:
        match = re.fullmatch(pattern, doi, re.I)
        if match:
            return build(match, doi)
    return None


def route_url(url: str, doi: str) -> Route:
    """The platform serving landing page ``url`` (Dataverse: any installation's ``dataset.xhtml``)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.path.rstrip("/").endswith("/dataset.xhtml") or parts.path.startswith("/citation"):
        pid = (parse_qs(parts.query).get("persistentId") or [f"doi:{doi}"])[0]
        return Route("dataverse", f"{parts.scheme}://{parts.netloc}/{pid}", "", doi, url)
    for host_re, path_re, build in _HOSTS:
        if re.fullmatch(host_re, host):
            match = re.match(path_re, parts.path)
            if match:
                return build(match, doi, url)
    raise DatasetNotFoundError(f"DOI {doi} resolves to {url}, which no omnimedseg platform serves; "
                               f"use platform = \"http\" with the file URLs in the card")


def resolve_doi(doi: str, client: HttpClient | None = None, online: bool = True) -> Route:
    """Route ``doi``: by prefix when it is unambiguous, else by the handle API of doi.org."""
    doi = normalize(doi)
    found = route_by_prefix(doi)
    if found is not None or not online:
        if found is None:
            raise DatasetNotFoundError(f"DOI {doi}: its prefix is not one omnimedseg knows offline; "
                                       f"rerun without OMNIMEDSEG_OFFLINE to ask doi.org")
        return found
    base = platform_url("doi", "https://doi.org")
    client = client or HttpClient(rate=2.0)
    response = client.request("GET", f"{base}/api/handles/{quote(doi, safe='/')}", params={"type": "URL"},
                              headers={"Accept": "application/json"}, ok=(200, 404), what=f"DOI {doi}")
    body = response.json() if response.content.strip() else {}
    if response.status_code == 404 or body.get("responseCode") != 1:
        raise DatasetNotFoundError(f"DOI {doi} is not registered at doi.org (responseCode "
                                   f"{body.get('responseCode')}); check it for typos")
    urls = [v["data"]["value"] for v in body.get("values") or [] if v.get("type") == "URL"]
    if not urls:
        raise DatasetNotFoundError(f"DOI {doi}: doi.org lists no URL for it; check it on https://doi.org/{doi}")
    return route_url(urls[0], doi)
