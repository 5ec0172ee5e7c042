"""Per-platform emulators: routes and JSON shapes only; bytes and faults come from :mod:`._server`.

Shapes follow docs captured from the real services (see the download-layer reference):
Zenodo's three file-entry dialects plus the native InvenioRDM record, Figshare's paged
files and WAF 202, Dataverse's envelope and checksum types, GitHub release assets with
``digest``, and plain HTTP / S3 objects with multipart ETags.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from urllib.parse import quote, unquote

from omnimedseg.downloaders.emulators._server import Blob, Emulator, Reply, json_reply


def _blob(name: str, value) -> Blob:
    if isinstance(value, Blob):
        return value
    if isinstance(value, (str, Path)):
        return Blob(name, path=Path(value))
    return Blob(name, data=bytes(value))


def _blobs(files: dict) -> dict[str, Blob]:
    return {name: _blob(name, value) for name, value in files.items()}


def folder_files(folder: Path) -> dict[str, Path]:
    """Every file under ``folder`` by relative POSIX path (what ``add_folder`` serves)."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


class ZenodoEmulator(Emulator):
    """Zenodo (InvenioRDM). ``shape``: "zenodo" (since 2023-10-25), "oct2023" (filename/filesize,
    2023-10-13..25, whose ``links.self`` 404s as it did), or "legacy" (before 2023-10-13).
    ``Accept: application/vnd.inveniordm.v1+json`` always gets the native record."""

    platform = "zenodo"
    env_var = "OMNIMEDSEG_ZENODO_URL"
    content_pattern = r"/api/records/\d+/files/.+/content|/api/files/.+|/records/\d+/files/.+"

    def __init__(self, shape: str = "zenodo", **kw):
        super().__init__(**kw)
        self.shape = shape
        self.records: dict[str, dict] = {}

    def add_record(self, recid: str, files: dict, concept: str | None = None, version: str = "1.0") -> dict[str, Blob]:
        blobs = _blobs(files)
        self.records[str(recid)] = {"files": blobs, "concept": str(concept or int(recid) - 1), "version": version,
                                    "bucket": uuid.uuid4().hex, "ids": {k: str(uuid.uuid4()) for k in blobs}}
        return blobs

    def add_folder(self, folder: Path) -> dict:
        self.add_record("2", folder_files(folder), concept="1")
        return {"platform": "zenodo", "record": "10.5281/zenodo.1", "version": "2"}

    def latest(self, concept: str) -> str | None:
        ids = [r for r, rec in self.records.items() if rec["concept"] == concept]
        return max(ids, key=int) if ids else None

    def routes(self):
        return [("GET", r"/api/records/(\w+)", self.record),
                ("GET", r"/api/records/(\w+)/versions/latest", self.versions_latest),
                ("GET", r"/api/records/(\d+)/files", self.files_native),
                ("GET", r"/api/records/(\d+)/files/(.+)/content", self.file_content),
                ("GET", r"/api/files/([0-9a-f]+)/(.+)", self.legacy_content),
                ("GET", r"/records/(\d+)/files/(.+)", self.file_content),
                ("GET", r"/record/(.+)", lambda req, m: Reply(301, {"Location": f"/records/{m.group(1)}"})),
                ("GET", r"/doi/10\.5281/zenodo\.(\d+)", self.doi)]

    def _record_or_404(self, recid: str):
        rec = self.records.get(recid)
        return rec, (None if rec else self.error(404, f"The persistent identifier does not exist: {recid}"))

    def record(self, req, m):
        recid = m.group(1)
        if recid not in self.records and self.latest(recid):  # a concept id: redirect to its newest version
            return Reply(302, {"Location": f"{self.url}/api/records/{self.latest(recid)}"})
        rec, err = self._record_or_404(recid)
        if err:
            return err
        native = "application/vnd.inveniordm.v1+json" in req.headers.get("Accept", "")
        body = self._native(recid, rec) if native else self._zenodo_json(recid, rec)
        return json_reply(body, headers={"ETag": '"4"'})

    def versions_latest(self, req, m):
        ident = m.group(1)
        concept = self.records[ident]["concept"] if ident in self.records else ident
        latest = self.latest(concept)
        if latest is None:
            return self.error(404, f"The persistent identifier does not exist: {ident}")
        return Reply(302, {"Location": f"{self.url}/api/records/{latest}"})

    def doi(self, req, m):
        return Reply(302, {"Location": f"{self.url}/records/{m.group(1)}"})

    def _links(self, recid: str) -> dict:
        api = f"{self.url}/api/records/{recid}"
        return {"self": api, "self_html": f"{self.url}/records/{recid}", "files": f"{api}/files",
                "archive": f"{api}/files-archive", "latest": f"{api}/versions/latest", "versions": f"{api}/versions"}

    def _content_url(self, recid: str, key: str) -> str:
        return f"{self.url}/api/records/{recid}/files/{quote(key, safe='/')}/content"

    def _entry(self, recid: str, rec: dict, key: str, blob: Blob) -> dict:
        if self.shape == "legacy":
            return {"bucket": rec["bucket"], "checksum": f"md5:{blob.md5}", "key": key, "size": blob.size,
                    "type": Path(key).suffix.lstrip("."),
                    "links": {"self": f"{self.url}/api/files/{rec['bucket']}/{quote(key, safe='/')}"}}
        if self.shape == "oct2023":
            return {"id": rec["ids"][key], "filename": key, "filesize": blob.size, "checksum": blob.md5,
                    "links": {"self": f"{self.url}/api/records/{recid}/files/{rec['ids'][key]}"}}
        return {"id": rec["ids"][key], "key": key, "size": blob.size, "checksum": f"md5:{blob.md5}",
                "links": {"self": self._content_url(recid, key)}}

    def _zenodo_json(self, recid: str, rec: dict) -> dict:
        return {"id": int(recid), "recid": recid, "conceptrecid": rec["concept"], "doi": f"10.5281/zenodo.{recid}",
                "conceptdoi": f"10.5281/zenodo.{rec['concept']}", "revision": 4, "status": "published",
                "metadata": {"title": f"Record {recid}", "version": rec["version"], "access_right": "open",
                             "relations": {"version": [{"index": 0, "is_last": self.latest(rec["concept"]) == recid,
                                                        "parent": {"pid_type": "recid", "pid_value": rec["concept"]}}]}},
                "links": self._links(recid),
                "files": [self._entry(recid, rec, k, b) for k, b in rec["files"].items()]}

    def _native_entry(self, recid: str, key: str, blob: Blob) -> dict:
        api = f"{self.url}/api/records/{recid}/files/{quote(key, safe='/')}"
        return {"key": key, "size": blob.size, "checksum": f"md5:{blob.md5}", "mimetype": blob.content_type,
                "storage_class": "L", "status": "completed", "links": {"self": api, "content": f"{api}/content"}}

    def _native(self, recid: str, rec: dict) -> dict:
        return {"id": recid, "parent": {"id": rec["concept"]}, "pids": {"doi": {"identifier": f"10.5281/zenodo.{recid}"}},
                "versions": {"is_latest": self.latest(rec["concept"]) == recid, "index": 1},
                "metadata": {"title": f"Record {recid}", "version": rec["version"]}, "links": self._links(recid),
                "files": {"enabled": True, "count": len(rec["files"]), "order": [],
                          "total_bytes": sum(b.size for b in rec["files"].values()),
                          "entries": {k: self._native_entry(recid, k, b) for k, b in rec["files"].items()}}}

    def files_native(self, req, m):
        rec, err = self._record_or_404(m.group(1))
        if err:
            return err
        return json_reply({"enabled": True, "links": {"self": f"{self.url}/api/records/{m.group(1)}/files"},
                           "entries": [self._native_entry(m.group(1), k, b) for k, b in rec["files"].items()],
                           "default_preview": None, "order": []})

    def file_content(self, req, m):
        rec, err = self._record_or_404(m.group(1))
        if err:
            return err
        key = unquote(m.group(2))
        if key not in rec["files"]:
            return self.error(404, f"Record '{m.group(1)}' has no file '{key}'.")
        return self.content(req, rec["files"][key])

    def legacy_content(self, req, m):
        for rec in self.records.values():
            if rec["bucket"] == m.group(1) and unquote(m.group(2)) in rec["files"]:
                return self.content(req, rec["files"][unquote(m.group(2))])
        return self.error(404, "File not found")


class FigshareEmulator(Emulator):
    """Figshare API v2: articles, versions, paged ``/files``, WAF-challenged ``download_url``,
    and the working ``/v2/file/download/<id>`` that 302s to signed storage."""

    platform = "figshare"
    env_var = "OMNIMEDSEG_FIGSHARE_URL"
    content_pattern = r"/v2/file/download/\d+|/ndownloader/files/\d+"

    def __init__(self, **kw):
        kw.setdefault("redirect_to_storage", True)
        super().__init__(**kw)
        self.articles: dict[str, dict[int, dict]] = {}
        self.by_file: dict[int, Blob] = {}
        self._next = 3000000

    def add_article(self, article_id: str, files: dict, version: int = 1, folders: dict | None = None,
                    empty_md5: tuple[str, ...] = ()) -> dict[str, Blob]:
        blobs = _blobs(files)
        entries = []
        for name, blob in blobs.items():
            self._next += 1
            self.by_file[self._next] = blob
            md5 = "" if name in empty_md5 else blob.md5
            entries.append({"id": self._next, "name": name, "size": blob.size, "is_link_only": False,
                            "download_url": f"{self.url}/ndownloader/files/{self._next}",
                            "supplied_md5": blob.md5, "computed_md5": md5, "mimetype": blob.content_type})
        self.articles.setdefault(str(article_id), {})[version] = {"files": entries, "folders": folders or {}}
        return blobs

    def add_folder(self, folder: Path) -> dict:
        self.add_article("1000001", folder_files(folder))
        return {"platform": "figshare", "record": "10.6084/m9.figshare.1000001.v1", "version": "1"}

    def routes(self):
        return [("GET", r"/v2/articles/(\d+)", self.article),
                ("GET", r"/v2/articles/(\d+)/versions", self.versions),
                ("GET", r"/v2/articles/(\d+)/versions/(\d+)", self.article),
                ("GET", r"/v2/articles/(\d+)/files", self.files),
                ("GET", r"/v2/articles/(\d+)/versions/(\d+)/files", self.files),
                ("GET", r"/v2/file/download/(\d+)", self.download),
                ("GET", r"/ndownloader/files/(\d+)", self.waf)]

    def _version(self, m):
        versions = self.articles.get(m.group(1))
        if not versions:
            return None, json_reply({"message": "Entity not found: ArticleVersion", "code": "EntityNotFound"}, 404)
        n = int(m.group(2)) if m.lastindex and m.lastindex >= 2 else max(versions)
        if n not in versions:
            return None, json_reply({"message": "Entity not found: ArticleVersion", "code": "EntityNotFound"}, 404)
        return (n, versions[n]), None

    def article(self, req, m):
        found, err = self._version(m)
        if err:
            return err
        n, art = found
        folder = {str(f["id"]): art["folders"][f["name"]] for f in art["files"] if f["name"] in art["folders"]}
        return json_reply({"id": int(m.group(1)), "version": n, "doi": f"10.6084/m9.figshare.{m.group(1)}.v{n}",
                           "is_public": True, "status": "public", "download_disabled": False,
                           "files": art["files"][:10], "folder_structure": folder,
                           "url": f"{self.url}/v2/articles/{m.group(1)}"})

    def versions(self, req, m):
        versions = self.articles.get(m.group(1), {})
        return json_reply([{"version": n, "url": f"{self.url}/v2/articles/{m.group(1)}/versions/{n}"}
                           for n in sorted(versions)])

    def files(self, req, m):
        found, err = self._version(m)
        if err:
            return err
        q = req.query
        size = min(int(q.get("page_size", 10)), 1000)
        page = int(q.get("page", 1))
        return json_reply(found[1]["files"][(page - 1) * size: page * size])

    def download(self, req, m):
        blob = self.by_file.get(int(m.group(1)))
        return self.content(req, blob) if blob else json_reply({"message": "Not found", "code": "NotFound"}, 404)

    def waf(self, req, m):  # figshare.com/ndownloader behind the AWS WAF: an empty 202 challenge
        return Reply(202, {"x-amzn-waf-action": "challenge", "Content-Length": "0"})


class DataverseEmulator(Emulator):
    """A Dataverse installation: ``{"status","data"}`` envelope, MD5/SHA-1/SHA-256 checksums,
    tabular files with ``format=original``, 303 to signed storage (HEAD there is 403), embargo 403."""

    platform = "dataverse"
    env_var = "OMNIMEDSEG_DATAVERSE_URL"
    content_pattern = r"/api/access/datafile/\d+"

    def __init__(self, checksum: str = "MD5", **kw):
        kw.setdefault("redirect_to_storage", True)
        super().__init__(**kw)
        self.checksum = checksum
        self.datasets: dict[str, dict] = {}
        self.by_id: dict[int, tuple[Blob, dict]] = {}
        self._next = 14000000

    def add_dataset(self, doi: str, files: dict, version: str = "1.0", folders: dict | None = None,
                    embargoed: tuple[str, ...] = (), deaccessioned: bool = False) -> dict[str, Blob]:
        blobs = _blobs(files)
        entries = []
        alg = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512"}[self.checksum]
        for name, blob in blobs.items():
            self._next += 1
            data_file = {"id": self._next, "filename": Path(name).name, "contentType": blob.content_type,
                         "filesize": blob.size, "checksum": {"type": self.checksum, "value": blob.digest(alg)}}
            if self.checksum == "MD5":
                data_file["md5"] = blob.md5
            entry = {"label": Path(name).name, "restricted": False, "version": 1, "dataFile": data_file}
            folder = (folders or {}).get(name) or (str(Path(name).parent) if "/" in name else None)
            if folder:
                entry["directoryLabel"] = folder
            if name in embargoed:
                entry["dataFile"]["embargo"] = {"dateAvailable": "2099-01-31", "reason": "embargo"}
            entries.append(entry)
            self.by_id[self._next] = (blob, entry)
        major, minor = version.split(".")
        self.datasets[doi] = {"deaccessioned": deaccessioned, "version": {
            "versionNumber": int(major), "versionMinorNumber": int(minor), "versionState": "RELEASED", "files": entries}}
        return blobs

    def add_folder(self, folder: Path) -> dict:
        self.add_dataset("10.70122/FK2/EMULAT", folder_files(folder))
        return {"platform": "dataverse", "record": "doi:10.70122/FK2/EMULAT", "version": "1.0"}

    def routes(self):
        return [("GET", r"/api/datasets/:persistentId/?", self.dataset),
                ("GET", r"/api/datasets/:persistentId/versions/([^/]+)", self.dataset),
                ("GET", r"/api/access/datafile/(\d+)", self.datafile)]

    def dataset(self, req, m):
        pid = req.query.get("persistentId", "").removeprefix("doi:")
        ds = self.datasets.get(pid)
        if ds is None:
            return json_reply({"status": "ERROR", "message": f"Dataset with Persistent ID doi:{pid} not found."}, 404)
        if m.lastindex:  # /versions/<v>
            return json_reply({"status": "OK", "data": ds["version"]})
        data = {"id": 1, "persistentUrl": f"https://doi.org/{pid}"}
        if not ds["deaccessioned"]:
            data["latestVersion"] = ds["version"]
        return json_reply({"status": "OK", "data": data})

    def datafile(self, req, m):
        found = self.by_id.get(int(m.group(1)))
        if not found:
            return json_reply({"status": "ERROR", "message": "File not found"}, 404)
        blob, entry = found
        if "embargo" in entry["dataFile"]:
            return json_reply({"status": "ERROR", "message": "Access to this file is restricted (embargo)."}, 403)
        if self.redirect_to_storage:
            return Reply(303, {"Location": self.sign(blob)})
        return self.serve_blob(req, blob)


class GitHubEmulator(Emulator):
    """GitHub releases: ``/repos/{o}/{r}/releases/tags/{tag}`` and ``/latest`` with asset ``digest``;
    ``browser_download_url`` 302s to a signed CDN (storage) URL."""

    platform = "github"
    env_var = "OMNIMEDSEG_GITHUB_URL"
    content_pattern = r"/[^/]+/[^/]+/releases/download/.+"

    def __init__(self, **kw):
        kw.setdefault("redirect_to_storage", True)
        super().__init__(**kw)
        self.releases: dict[tuple[str, str], dict] = {}

    def add_release(self, repo: str, tag: str, files: dict, digest: bool = True) -> dict[str, Blob]:
        blobs = _blobs(files)
        self.releases[(repo, tag)] = {"blobs": blobs, "digest": digest, "id": len(self.releases) + 1}
        return blobs

    def add_folder(self, folder: Path) -> dict:
        self.add_release("emu/folder", "v1", folder_files(folder))
        return {"platform": "github", "record": "emu/folder", "version": "v1"}

    def routes(self):
        return [("GET", r"/repos/([^/]+/[^/]+)/releases/tags/(.+)", self.release),
                ("GET", r"/repos/([^/]+/[^/]+)/releases/latest", self.release),
                ("GET", r"/([^/]+/[^/]+)/releases/download/([^/]+)/(.+)", self.download)]

    def release(self, req, m):
        repo = m.group(1)
        tags = [t for (r, t) in self.releases if r == repo]
        tag = m.group(2) if m.lastindex >= 2 else (tags[-1] if tags else None)
        rel = self.releases.get((repo, tag))
        if rel is None:
            return json_reply({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, 404)
        assets = []
        for i, (name, blob) in enumerate(rel["blobs"].items()):
            asset = {"id": rel["id"] * 1000 + i, "name": name, "size": blob.size, "state": "uploaded",
                     "content_type": blob.content_type, "url": f"{self.url}/repos/{repo}/releases/assets/{i}",
                     "browser_download_url": f"{self.url}/{repo}/releases/download/{tag}/{quote(name)}"}
            if rel["digest"]:
                asset["digest"] = f"sha256:{blob.sha256}"
            assets.append(asset)
        return json_reply({"id": rel["id"], "tag_name": tag, "assets": assets},
                          headers={"X-RateLimit-Resource": "core", "X-RateLimit-Used": "1"})

    def download(self, req, m):
        rel = self.releases.get((m.group(1), m.group(2)))
        blob = rel["blobs"].get(unquote(m.group(3))) if rel else None
        return self.content(req, blob) if blob else Reply(404, {}, b"Not Found")


class StaticEmulator(Emulator):
    """A plain web server or an S3 bucket: ``GET /<path>`` with Range; ``/?list-type=2`` lists
    objects (XML); ``multipart`` names get ``"<hex>-<parts>"`` ETags that are not MD5s."""

    platform = "http"
    env_var = "OMNIMEDSEG_HTTP_URL"
    content_pattern = r"/.+"

    def __init__(self, platform: str = "http", multipart: tuple[str, ...] = (), **kw):
        super().__init__(**kw)
        self.platform = platform
        self.env_var = f"OMNIMEDSEG_{platform.upper()}_URL"
        self.objects: dict[str, Blob] = {}
        self.multipart = set(multipart)

    def add_files(self, files: dict) -> dict[str, Blob]:
        blobs = _blobs(files)
        self.objects.update(blobs)
        return blobs

    def add_folder(self, folder: Path) -> dict:
        self.add_files(folder_files(folder))
        return {"platform": self.platform, "record": self.url + "/", "version": ""}

    def routes(self):
        return [("GET", r"/", self.listing), ("GET", r"/(.+)", self.get)]

    def etag(self, key: str, blob: Blob) -> str:
        if key in self.multipart:
            return f'"{hashlib.md5(blob.md5.encode()).hexdigest()}-3"'
        return f'"{blob.md5}"'

    def listing(self, req, m):
        if req.query.get("list-type") != "2":
            return Reply(200, {"Content-Type": "text/html"}, b"<html><body>index</body></html>")
        prefix = req.query.get("prefix", "")
        items = "".join(f"<Contents><Key>{k}</Key><LastModified>2020-01-01T00:00:00.000Z</LastModified>"
                        f"<ETag>{self.etag(k, b)}</ETag><Size>{b.size}</Size><StorageClass>STANDARD</StorageClass>"
                        f"</Contents>" for k, b in sorted(self.objects.items()) if k.startswith(prefix))
        body = (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/'
                f'2006-03-01/"><Name>bucket</Name><Prefix>{prefix}</Prefix><KeyCount>{len(self.objects)}</KeyCount>'
                f"<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>{items}</ListBucketResult>")
        return Reply(200, {"Content-Type": "application/xml"}, body.encode())

    def get(self, req, m):
        key = unquote(m.group(1))
        blob = self.objects.get(key)
        if blob is None:
            return Reply(404, {"Content-Type": "application/xml"}, b"<Error><Code>NoSuchKey</Code></Error>")
        return Reply(200, {"ETag": self.etag(key, blob)}, blob=blob)



