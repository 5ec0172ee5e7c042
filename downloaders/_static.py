"""URL helpers for platforms without an API (plain HTTP, S3): joining and host override."""

from __future__ import annotations

from urllib.parse import quote, urljoin, urlsplit


def rebase(record: str, url_or_name: str, override: str) -> str:
    """``url_or_name`` made absolute against ``record``; scheme+host replaced by ``override`` if set."""
    if "://" in url_or_name:
        url = url_or_name
    else:
        url = urljoin(record.rstrip("/") + "/", quote(url_or_name, safe="/"))
    if override:
        parts, new = urlsplit(url), urlsplit(override)
        url = parts._replace(scheme=new.scheme, netloc=new.netloc).geturl()
    return url
