"""Optional engine: zenodo-get (AGPL-3.0-only, ``pip install zenodo-get``) behind a safety adapter.

zenodo-get 3.1.0 writes straight to the final name, has no Range resume, hard-codes
zenodo.org and wrote a ``../`` key outside its folder. So it runs in a *subprocess*
(its SIGINT handler and ``os.chdir`` never touch our process) into a private staging
folder, only after every file name was validated; its host is redirected to
``$OMNIMEDSEG_ZENODO_URL`` through its transport; every file is then verified by size and
hash here and moved into place atomically. It is never imported into this process.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from omnimedseg.downloaders._base import Manifest
from omnimedseg.downloaders._http import USER_AGENT, platform_url
from omnimedseg.downloaders._transfer import repin_command, safe_name, target_path, verify_file
from omnimedseg.errors import ChecksumMismatchError, DownloadError, UsageError
from omnimedseg.progress import SILENT, Progress

_RUNNER = r"""
import sys, httpx2
import zenodo_get.downloader as d
base = httpx2.URL(sys.argv[3])
original = d._create_client_transport
def redirected(*a, **k):
    inner = original(*a, **k)
    class Rewrite(httpx2.BaseTransport):
        def handle_request(self, request):
            if request.url.host in ("zenodo.org", "sandbox.zenodo.org"):
                request.url = request.url.copy_with(scheme=base.scheme, host=base.host, port=base.port)
            request.headers["User-Agent"] = sys.argv[4]  # Zenodo throttles anonymous library User-Agents
            return inner.handle_request(request)
        def close(self):
            inner.close()
    return Rewrite()
d._create_client_transport = redirected
import zenodo_get
zenodo_get.download(record=sys.argv[1], output_dir=sys.argv[2], exceptions_on_failure=True, verbosity=0,
                    start_fresh=True)
"""


def fetch_with_zenodo_get(manifest: Manifest, folder: Path, progress: Progress = SILENT) -> None:
    if importlib.util.find_spec("zenodo_get") is None:  # never import it here: that replaces our SIGINT handler
        raise UsageError("--engine zenodo-get needs the optional package: pip install zenodo-get "
                         "(AGPL-3.0-only); or run without --engine")
    for remote in manifest.files:
        safe_name(remote.name, f"Zenodo record {manifest.version}")  # refuse before zenodo-get writes anything
    todo = [r for r in manifest.files if not _valid(folder, r)]
    if not todo:
        return
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=f".zenodo-get-{manifest.version}-"))
    env = child_environment()
    try:
        with progress.task(f"zenodo-get {manifest.version}", len(todo), unit="file") as advance:
            done = subprocess.run([sys.executable, "-c", _RUNNER, manifest.version, str(staging),
                                   platform_url("zenodo", "https://zenodo.org"), f"{USER_AGENT} zenodo-get"],
                                  env=env, capture_output=True, text=True, timeout=24 * 3600)
            if done.returncode != 0:
                tail = ((done.stderr or done.stdout).strip().splitlines() or ["no output"])[-1][:200]
                error = ChecksumMismatchError if "checksum" in tail.lower() else DownloadError
                raise error(f"zenodo-get failed for record {manifest.version} ({tail}); nothing was kept; "
                            f"rerun without --engine to use the resumable default engine")
            for remote in todo:
                got = target_path(staging, remote.name)
                if not got.is_file():
                    raise DownloadError(f"zenodo-get did not produce {remote.name} for record {manifest.version}; "
                                        f"rerun without --engine")
                try:
                    verify_file(got, remote)  # our own size + hash check, whatever zenodo-get claimed
                except ChecksumMismatchError as exc:
                    raise ChecksumMismatchError(f"zenodo-get delivered other bytes than pinned for {remote.name} "
                                                f"({str(exc).split(': ', 1)[-1]}); nothing was kept; rerun "
                                                f"without --engine, or re-pin with "
                                                f"{repin_command(manifest.dataset_id)}") from None
                final = target_path(folder, remote.name)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(got, final)
                advance(1)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # never leave unverified bytes behind


# what the child needs to start Python, find its packages, reach the network through a proxy and
# check certificates; nothing else (no tokens, no cloud keys, no other secrets of the parent)
CHILD_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV", "PYTHONPATH",
             "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
             "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")


def child_environment() -> dict[str, str]:
    """The minimal environment for the zenodo-get subprocess (see :data:`CHILD_ENV`)."""
    env = {k: os.environ[k] for k in CHILD_ENV if k in os.environ}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _valid(folder: Path, remote) -> bool:
    try:
        verify_file(target_path(folder, remote.name), remote)
        return True
    except (OSError, ValueError):
        return False
