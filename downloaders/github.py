"""GitHub releases: ``owner/repo`` + tag -> the release assets (sha256 from ``digest`` since 2025-06).

Assets are fetched from ``browser_download_url`` (a redirect to a signed CDN URL, which
never receives the token). Older assets have no digest: their hashes come from the card.
"""

from __future__ import annotations

from omnimedseg.downloaders._platform import Listing, PlatformDownloader
from omnimedseg.downloaders._transfer import safe_name
from omnimedseg.registry import Card, RemoteFile


class GitHubDownloader(PlatformDownloader):
    platform = "github"
    default_url = "https://api.github.com"
    rate = 1.0
    token_env = ("GITHUB_TOKEN", "GH_TOKEN")

    def listing(self, card: Card) -> Listing:
        repo = card.source.record.strip().strip("/")
        tag = card.source.version or "latest"
        path = "releases/latest" if tag == "latest" else f"releases/tags/{tag}"
        body = self.client.get_json(f"{self.base}/repos/{repo}/{path}",
                                    headers={"Accept": "application/vnd.github+json"}, what=f"GitHub {repo} {tag}")
        files = []
        for asset in body.get("assets") or []:
            alg, _, digest = str(asset.get("digest") or "").partition(":")
            files.append(RemoteFile(safe_name(asset["name"], f"GitHub release {repo} {tag}"), asset.get("size"),
                                    {alg: digest.lower()} if digest else {}, asset["browser_download_url"]))
        return Listing(record=repo, version=body.get("tag_name") or tag, files=files,
                       extra={"release_id": body.get("id")})
