"""Emulators for Mendeley Data, TCIA/NBIA v4, OSF, Kaggle and the doi.org handle API.

Shapes follow the download-layer reference: Mendeley's folder/file arrays with sha256 and
expiring ``download_url``; NBIA's bare ``getSeries`` array, empty-200 "no results" and
per-series ZIPs with ``md5hashes.csv`` (no Range); OSF's JSON:API pages, folders and
components with ``extra.hashes``; Kaggle's REST listing (no checksum), Basic/Bearer auth,
competition rules 403 and GCS ``x-goog-hash``; doi.org's ``/api/handles`` answer.
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
import uuid
import zipfile
from pathlib import Path
from urllib.parse import quote, unquote

from omnimedseg.downloaders.emulators._server import Blob, Emulator, Reply, json_reply
from omnimedseg.downloaders.emulators.idc import IdcEmulator
from omnimedseg.downloaders.emulators.platforms import (
    DataverseEmulator,
    FigshareEmulator,
    GitHubEmulator,
    StaticEmulator,
    ZenodoEmulator,
    _blobs,
    folder_files,
)


class MendeleyEmulator(Emulator):
    """Mendeley Data public API: dataset versions, folders, per-folder file arrays with sha256
    and pre-signed, expiring ``download_url``s on the storage host."""

    platform = "mendeley"
    env_var = "OMNIMEDSEG_MENDELEY_URL"
    content_pattern = r"(?!)"  # bytes only come from the signed storage host

    def __init__(self, **kw):
        kw.setdefault("redirect_to_storage", True)
        super().__init__(**kw)
        self.datasets: dict[str, dict[int, dict]] = {}

    def add_dataset(self, dataset: str, files: dict, version: int = 1, pending: tuple[str, ...] = ()) -> dict:
        blobs = _blobs(files)
        folders: dict[str, dict] = {}
        for name in blobs:
            parent = "root"
            parts = name.split("/")[:-1]
            for i in range(len(parts)):
                path = "/".join(parts[: i + 1])
                if path not in folders:
                    folders[path] = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{dataset}/{version}/{path}")),
                                     "name": parts[i], "parent_id": None if parent == "root" else parent}
                parent = folders[path]["id"]
        self.datasets.setdefault(dataset, {})[version] = {"blobs": blobs, "folders": folders, "pending": set(pending)}
        return blobs

    def add_folder(self, folder: Path) -> dict:
        self.add_dataset("abcde12345", folder_files(folder))
        return {"platform": "mendeley", "record": "10.17632/abcde12345.1", "version": "1"}

    def routes(self):
        return [("GET", r"/public-api/datasets/(\w+)", self.dataset),
                ("GET", r"/public-api/datasets/(\w+)/folders/(\d+)", self.folders),
                ("GET", r"/public-api/datasets/(\w+)/files", self.files)]

    def _version(self, dataset: str, version: str | None):
        versions = self.datasets.get(dataset)
        if not versions:
            return None, json_reply({"message": f"Dataset {dataset} not found"}, 404)
        n = int(version) if version else max(versions)
        if n not in versions:
            return None, json_reply({"message": f"Dataset {dataset} has no version {n}"}, 404)
        return (n, versions[n]), None

    def _entry(self, name: str, blob: Blob, ds: dict) -> dict:
        folder = "/".join(name.split("/")[:-1])
        expires = int((time.time() + self.signed_ttl) * 1000)
        return {"filename": name.split("/")[-1], "id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
                "folder_id": ds["folders"][folder]["id"] if folder else "root", "size": blob.size,
                "last_modified_date": "2024-01-01T00:00:00.000Z",
                "status": "PROCESSING" if name in ds["pending"] else "COMPLETED",
                "content_details": {"id": str(uuid.uuid5(uuid.NAMESPACE_OID, name)), "sha256_hash": blob.sha256,
                                    "content_type": blob.content_type, "size": blob.size,
                                    "created_date": "2024-01-01T00:00:00.000Z", "download_url": self.sign(blob),
                                    "view_url": f"{self.url}/view/{quote(name)}", "download_expiry_time": expires}}

    def dataset(self, req, m):
        found, err = self._version(m.group(1), req.query.get("version"))
        if err:
            return err
        n, ds = found
        return json_reply({"id": m.group(1), "name": f"Dataset {m.group(1)}", "version": n,
                           "publish_date": "2024-01-01T00:00:00.000Z", "doi": {"id": f"10.17632/{m.group(1)}.{n}"},
                           "data_licence": {"short_name": "CC BY 4.0"}, "contributors": [],
                           "files": [self._entry(k, b, ds) for k, b in ds["blobs"].items() if "/" not in k]})

    def folders(self, req, m):
        found, err = self._version(m.group(1), m.group(2))
        return err or json_reply(list(found[1]["folders"].values()))

    def files(self, req, m):
        found, err = self._version(m.group(1), req.query.get("version"))
        if err:
            return err
        ds = found[1]
        want = req.query.get("folder_id", "root")
        out = []
        for name, blob in ds["blobs"].items():
            folder = "/".join(name.split("/")[:-1])
            if (ds["folders"][folder]["id"] if folder else "root") == want:
                out.append(self._entry(name, blob, ds))
        return json_reply(out)


def series_zip(instances: dict[str, bytes], with_md5: bool = True, bad_md5: str | None = None) -> bytes:
    """A series ZIP as NBIA builds it: the DICOM files, plus ``md5hashes.csv`` for getImageWithMD5Hash."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        rows = ["FileName,MD5Hash"]
        for name, data in instances.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            zf.writestr(info, data)
            digest = hashlib.md5(data).hexdigest()
            rows.append(f"{name},{'0' * 32 if name == bad_md5 else digest}")
        if with_md5:
            zf.writestr(zipfile.ZipInfo("md5hashes.csv", date_time=(2020, 1, 1, 0, 0, 0)), "\n".join(rows) + "\n")
    return buf.getvalue()


class TciaEmulator(Emulator):
    """NBIA v4 (``/nbia-api/services/v4/``): ``getCollectionValues``, ``getSeries`` (a bare array, or an
    empty 200 for no results), ``getSeriesSize``, and per-series ZIPs from ``getImage`` /
    ``getImageWithMD5Hash``, built on the fly without Range support."""

    platform = "tcia"
    env_var = "OMNIMEDSEG_TCIA_URL"
    content_pattern = r"/nbia-api/services/v4/getImage(WithMD5Hash)?"
    API = "/nbia-api/services/v4"

    def __init__(self, **kw):
        kw.setdefault("honour_range", False)
        super().__init__(**kw)
        self.series: dict[str, dict] = {}

    def add_series(self, collection: str, patient: str, uid: str, instances: dict[str, bytes],
                   modality: str = "CT", bad_md5: str | None = None, image_count: int | None = None) -> Blob:
        blob = Blob(f"{patient}/{uid}.zip", data=series_zip(instances, bad_md5=bad_md5), content_type="application/zip")
        self.series[uid] = {"blob": blob, "plain": series_zip(instances, with_md5=False), "row": {
            "SeriesInstanceUID": uid, "StudyInstanceUID": f"{uid}.0", "Modality": modality,
            "SeriesDate": "2000-01-01 00:00:00.0", "BodyPartExamined": "CHEST", "SeriesNumber": 3000923,
            "AnnotationsFlag": True, "Collection": collection, "PatientID": patient,
            "Manufacturer": "GE MEDICAL SYSTEMS", "ImageCount": len(instances) if image_count is None else image_count,
            "FileSize": sum(len(d) for d in instances.values()), "DateReleased": "2020-01-01 00:00:00.0",
            "LicenseName": "Creative Commons Attribution 3.0 Unported License",
            "LicenseURI": "http://creativecommons.org/licenses/by/3.0/"}}
        return blob

    def add_folder(self, folder: Path) -> dict:
        """Each sub-folder ``<patient>/<series uid>/`` of DICOM files becomes one series of collection EMU."""
        for series_dir in sorted({p.parent for p in folder_files(folder).values()}):
            rel = series_dir.relative_to(folder).parts
            default = rel[0] if rel else "1.2.826.0.1.0"
            patient, uid = (rel[0], rel[-1]) if len(rel) >= 2 else ("EMU-0001", default)
            self.add_series("EMU", patient, uid, {p.name: p.read_bytes() for p in sorted(series_dir.iterdir())
                                                  if p.is_file()})
        return {"platform": "tcia", "record": "EMU", "version": ""}

    def routes(self):
        api = self.API
        return [("GET", f"{api}/getCollectionValues", self.collections),
                ("GET", f"{api}/getSeries", self.get_series),
                ("GET", f"{api}/getSeriesSize", self.series_size),
                ("GET", f"{api}/getImage", lambda req, m: self.image(req, False)),
                ("GET", f"{api}/getImageWithMD5Hash", lambda req, m: self.image(req, True))]

    def collections(self, req, m):
        names = sorted({s["row"]["Collection"] for s in self.series.values()})
        return json_reply([{"Collection": n} for n in names])

    def get_series(self, req, m):
        q = req.query
        rows = [s["row"] for s in self.series.values()
                if all(str(s["row"].get(k, "")).lower() == v.lower() for k, v in q.items() if k != "format")]
        if not rows:  # NBIA's "no results": 200 with an empty body, not []
            return Reply(200, {"Content-Type": "application/json"}, b"")
        return json_reply(rows)

    def series_size(self, req, m):
        found = self.series.get(req.query.get("SeriesInstanceUID", ""))
        if not found:
            return Reply(200, {"Content-Type": "application/json"}, b"")
        return json_reply([{"TotalSizeInBytes": str(found["row"]["FileSize"]),
                            "ObjectCount": found["row"]["ImageCount"]}])

    def image(self, req, with_md5: bool):
        found = self.series.get(req.query.get("SeriesInstanceUID", ""))
        if not found:
            return Reply(200, {"Content-Type": "application/json"}, b"")
        blob = found["blob"] if with_md5 else Blob(found["blob"].name, data=found["plain"])
        return self.serve_blob(req, blob)


class OsfEmulator(Emulator):
    """OSF API v2 (JSON:API): ``/v2/nodes/<guid>/files/osfstorage/`` pages with ``links.next``,
    folders via ``relationships.files.links.related.href``, child components, ``extra.hashes``;
    ``links.download`` (``/download/<id>/``) redirects to signed storage like WaterButler."""

    platform = "osf"
    env_var = "OMNIMEDSEG_OSF_URL"
    content_pattern = r"/download/\w+/?"

    def __init__(self, page_size: int = 10, **kw):
        kw.setdefault("redirect_to_storage", True)
        super().__init__(**kw)
        self.page_size = page_size
        self.nodes: dict[str, dict] = {}
        self.by_id: dict[str, Blob] = {}

    def add_project(self, guid: str, files: dict, children: dict | None = None, no_hash: tuple[str, ...] = (),
                    md5_only: tuple[str, ...] = ()) -> dict[str, Blob]:
        blobs = _blobs(files)
        self.nodes[guid] = {"blobs": blobs, "children": list(children or {}), "no_hash": set(no_hash),
                            "md5_only": set(md5_only)}
        for child, child_files in (children or {}).items():
            self.add_project(child, child_files)
        return blobs

    def add_folder(self, folder: Path) -> dict:
        self.add_project("emu12", folder_files(folder))
        return {"platform": "osf", "record": "10.17605/OSF.IO/EMU12", "version": "latest"}

    def routes(self):
        return [("GET", r"/v2/nodes/(\w+)/files/osfstorage/?", self.listing),
                ("GET", r"/v2/nodes/(\w+)/files/osfstorage/(\w+)/?", self.listing),
                ("GET", r"/v2/nodes/(\w+)/children/?", self.children),
                ("GET", r"/download/(\w+)/?", self.download)]

    @staticmethod
    def _fid(guid: str, path: str) -> str:
        return hashlib.sha1(f"{guid}/{path}".encode()).hexdigest()[:24]

    def _item(self, guid: str, node: dict, path: str, is_folder: bool) -> dict:
        fid = self._fid(guid, path)
        name = path.split("/")[-1]
        api = f"{self.url}/v2/nodes/{guid}/files/osfstorage/{fid}/"
        if is_folder:
            return {"id": fid, "type": "files", "attributes": {
                        "kind": "folder", "name": name, "path": f"/{fid}/", "materialized_path": f"/{path}/"},
                    "relationships": {"files": {"links": {"related": {"href": api, "meta": {}}}}},
                    "links": {"info": api, "self": api}}
        blob = node["blobs"][path]
        self.by_id[fid] = blob
        hashes = {} if path in node["no_hash"] else {"md5": blob.md5, "sha256": blob.sha256}
        if path in node["md5_only"]:
            hashes = {"md5": blob.md5}
        return {"id": fid, "type": "files", "attributes": {
                    "kind": "file", "name": name, "path": f"/{fid}", "materialized_path": f"/{path}",
                    "size": blob.size, "date_modified": "2024-01-01T00:00:00.000000Z",
                    "extra": {"hashes": hashes, "downloads": 0}},
                "links": {"download": f"{self.url}/download/{fid}/", "info": api, "self": api}}

    def _page(self, req, items: list, base: str) -> Reply:
        page = int(req.query.get("page", 1))
        chunk = items[(page - 1) * self.page_size: page * self.page_size]
        more = page * self.page_size < len(items)
        return json_reply({"data": chunk, "links": {"first": base, "last": None, "prev": None,
                                                    "next": f"{base}?page={page + 1}" if more else None,
                                                    "meta": {"total": len(items), "per_page": self.page_size}}},
                          headers={"Content-Type": "application/vnd.api+json"})

    def listing(self, req, m):
        guid = m.group(1)
        node = self.nodes.get(guid)
        if node is None:
            return json_reply({"errors": [{"detail": "Not found."}]}, 404)
        folder = ""
        if m.lastindex and m.lastindex >= 2:
            folders = {self._fid(guid, "/".join(k.split("/")[:i])): "/".join(k.split("/")[:i])
                       for k in node["blobs"] for i in range(1, k.count("/") + 1)}
            if m.group(2) not in folders:
                return json_reply({"errors": [{"detail": "Not found."}]}, 404)
            folder = folders[m.group(2)]
        prefix = f"{folder}/" if folder else ""
        items, seen = [], set()
        for key in node["blobs"]:
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix):]
            if "/" in rest:
                sub = prefix + rest.split("/")[0]
                if sub not in seen:
                    seen.add(sub)
                    items.append(self._item(guid, node, sub, True))
            else:
                items.append(self._item(guid, node, key, False))
        base = f"{self.url}/v2/nodes/{guid}/files/osfstorage/" + (f"{self._fid(guid, folder)}/" if folder else "")
        return self._page(req, items, base)

    def children(self, req, m):
        node = self.nodes.get(m.group(1))
        if node is None:
            return json_reply({"errors": [{"detail": "Not found."}]}, 404)
        items = [{"id": c, "type": "nodes", "attributes": {"title": f"Component {c}"}} for c in node["children"]]
        return self._page(req, items, f"{self.url}/v2/nodes/{m.group(1)}/children/")

    def download(self, req, m):
        blob = self.by_id.get(m.group(1))
        return self.content(req, blob) if blob else json_reply({"errors": [{"detail": "Not found."}]}, 404)


class KaggleEmulator(Emulator):
    """Kaggle's REST API (``/api/v1/datasets/list|download``, ``/api/v1/competitions/data/list|download``):
    Basic or Bearer auth on every call, no checksum in listings, competition rules 403, and a
    302 to signed "GCS" storage that sends ``x-goog-hash``."""

    platform = "kaggle"
    env_var = "OMNIMEDSEG_KAGGLE_URL"
    content_pattern = r"/api/v1/(datasets|competitions/data)/download/.+"
    RULES = "You must accept this competition's rules before you'll be able to download files."

    def __init__(self, users: dict[str, str] | None = None, tokens: tuple[str, ...] = (), page_size: int = 20, **kw):
        kw.setdefault("redirect_to_storage", True)
        super().__init__(**kw)
        self.users = dict(users or {"emu": "0123456789abcdef"})
        self.tokens = set(tokens)
        self.page_size = page_size
        self.datasets: dict[str, dict[int, dict[str, Blob]]] = {}
        self.competitions: dict[str, dict] = {}

    @property
    def env(self) -> dict[str, str]:
        """Also the first emulated user's (fake) legacy credentials, as the kaggle CLI reads them."""
        user, key = next(iter(self.users.items()))
        return {self.env_var: self.url, "KAGGLE_USERNAME": user, "KAGGLE_KEY": key}

    def add_dataset(self, ref: str, files: dict, version: int = 1) -> dict[str, Blob]:
        blobs = _blobs(files)
        self.datasets.setdefault(ref, {})[version] = blobs
        return blobs

    def add_competition(self, slug: str, files: dict, rules_accepted: bool = False) -> dict[str, Blob]:
        blobs = _blobs(files)
        self.competitions[slug] = {"blobs": blobs, "accepted": rules_accepted}
        return blobs

    def add_folder(self, folder: Path) -> dict:
        self.add_dataset("emu/folder", folder_files(folder))
        return {"platform": "kaggle", "record": "emu/folder", "version": "1"}

    def blob_headers(self, blob: Blob) -> dict:
        md5 = base64.b64encode(bytes.fromhex(blob.md5)).decode()
        return {"x-goog-hash": f"crc32c=AAAAAA==,md5={md5}", "x-goog-stored-content-length": str(blob.size)}

    def routes(self):
        return [("GET", r"/api/v1/datasets/list/([\w-]+/[\w.-]+)", self.auth(self.list_dataset)),
                ("GET", r"/api/v1/datasets/download/([\w-]+/[\w.-]+)/(.+)", self.auth(self.download_dataset)),
                ("GET", r"/api/v1/competitions/data/list/([\w-]+)", self.auth(self.list_competition)),
                ("GET", r"/api/v1/competitions/data/download/([\w-]+)/(.+)", self.auth(self.download_competition))]

    def auth(self, handler):
        def check(req, m):
            header = req.headers.get("Authorization", "")
            ok = False
            if header.startswith("Basic "):
                try:
                    user, _, key = base64.b64decode(header[6:]).decode().partition(":")
                    ok = self.users.get(user) == key
                except ValueError:
                    ok = False
            elif header.startswith("Bearer "):
                ok = header[7:] in self.tokens
            if not ok:
                return json_reply({"code": 401, "message": "Unauthenticated"}, 401)
            return handler(req, m)
        return check

    def _files(self, req, blobs: dict[str, Blob], key: str) -> Reply:
        names = sorted(blobs)
        start = int(req.query.get("pageToken") or 0)
        page = names[start: start + self.page_size]
        files = [{"ref": name, "name": name, "totalBytes": blobs[name].size, "creationDate": "2024-01-01T00:00:00Z",
                  "url": f"{self.url}/{quote(name)}", "description": ""} for name in page]
        more = start + self.page_size < len(names)
        return json_reply({key: files, "nextPageToken": str(start + self.page_size) if more else "",
                           "errorMessage": None})

    def _dataset(self, req, ref: str):
        versions = self.datasets.get(ref)
        if not versions:
            return None
        version = int(req.query.get("datasetVersionNumber") or max(versions))
        return versions.get(version)

    def list_dataset(self, req, m):
        blobs = self._dataset(req, m.group(1))
        if blobs is None:
            return json_reply({"code": 404, "message": "Not found"}, 404)
        return self._files(req, blobs, "datasetFiles")

    def download_dataset(self, req, m):
        blobs = self._dataset(req, m.group(1)) or {}
        blob = blobs.get(unquote(m.group(2)))
        return self.content(req, blob) if blob else json_reply({"code": 404, "message": "Not found"}, 404)

    def list_competition(self, req, m):
        comp = self.competitions.get(m.group(1))
        if comp is None:
            return json_reply({"code": 404, "message": "Not found"}, 404)
        return self._files(req, comp["blobs"], "files")

    def download_competition(self, req, m):
        comp = self.competitions.get(m.group(1))
        if comp is None:
            return json_reply({"code": 404, "message": "Not found"}, 404)
        if not comp["accepted"]:
            return json_reply({"code": 403, "message": self.RULES}, 403)
        blob = comp["blobs"].get(unquote(m.group(2)))
        return self.content(req, blob) if blob else json_reply({"code": 404, "message": "Not found"}, 404)


class DoiEmulator(Emulator):
    """doi.org: the handle API (``/api/handles/<doi>``, responseCode 1 or 100) and the 302 from ``/<doi>``."""

    platform = "doi"
    env_var = "OMNIMEDSEG_DOI_URL"
    content_pattern = r"(?!)"

    def __init__(self, **kw):
        kw.setdefault("rate_headers", False)
        super().__init__(**kw)
        self.dois: dict[str, str] = {}

    def add(self, doi: str, url: str) -> None:
        self.dois[doi.lower()] = url

    def routes(self):
        return [("GET", r"/api/handles/(10\..+)", self.handle), ("GET", r"/(10\..+)", self.redirect)]

    def handle(self, req, m):
        doi = unquote(m.group(1))
        url = self.dois.get(doi.lower())
        if url is None:
            return json_reply({"responseCode": 100, "handle": doi}, 404)
        return json_reply({"responseCode": 1, "handle": doi, "values": [
            {"index": 1, "type": "URL", "data": {"format": "string", "value": url}, "ttl": 86400,
             "timestamp": "2024-01-01T00:00:00Z"}]})

    def redirect(self, req, m):
        url = self.dois.get(unquote(m.group(1)).lower())
        return Reply(302, {"Location": url}) if url else Reply(404, {"Content-Type": "text/html"}, b"DOI Not Found")


def _s3(**kw) -> Emulator:
    return StaticEmulator("s3", **kw)


EMULATORS = {"zenodo": ZenodoEmulator, "figshare": FigshareEmulator, "dataverse": DataverseEmulator,
             "github": GitHubEmulator, "http": StaticEmulator, "s3": _s3, "mendeley": MendeleyEmulator,
             "tcia": TciaEmulator, "osf": OsfEmulator, "kaggle": KaggleEmulator, "doi": DoiEmulator,
             "idc": IdcEmulator}
