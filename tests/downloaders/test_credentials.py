"""A credential never leaves its host (issue 18): every credentialed platform against a hostile storage
redirect (302 and 307; a backslash authority, user info, another port, another IP, a localhost alias),
netrc ignored, one redaction for every URL shown or stored, and a minimal child environment."""

from __future__ import annotations

import base64
import io
import json
import logging

import pytest
from dl_helpers import downloads, payload, sticky_server

from omnimedseg.downloaders import download_dataset
from omnimedseg.downloaders._http import HttpClient, lock_url, redact, unsafe_url
from omnimedseg.errors import DownloadError

FILES = {"scan.nii.gz": payload(40_000, 7), "README.txt": b"read me\n"}

# platform, how its credential is configured, the secret that must never reach another host
CREDENTIALS = [
    ("zenodo", {"ZENODO_TOKEN": "zen-s3cr3t"}, "zen-s3cr3t"),
    ("figshare", {"FIGSHARE_TOKEN": "fig-s3cr3t"}, "fig-s3cr3t"),
    ("github", {"GITHUB_TOKEN": "gh-s3cr3t"}, "gh-s3cr3t"),
    ("osf", {"OSF_TOKEN": "osf-s3cr3t"}, "osf-s3cr3t"),
    ("dataverse", {"DATAVERSE_API_TOKEN": "dv-s3cr3t"}, "dv-s3cr3t"),  # custom header X-Dataverse-key
    ("kaggle", {"KAGGLE_API_TOKEN": "kgat-s3cr3t"}, "kgat-s3cr3t"),
    ("kaggle", {"KAGGLE_USERNAME": "emu", "KAGGLE_KEY": "0123456789abcdef"}, "0123456789abcdef"),
    ("kaggle", {"kaggle.json": json.dumps({"username": "emu", "key": "0123456789abcdef"})}, "0123456789abcdef"),
]


def _secret_forms(secret: str) -> list[str]:
    """The secret as it may travel: as is, or inside HTTP Basic (Kaggle user:key)."""
    return [secret, base64.b64encode(f"emu:{secret}".encode()).decode()]


def _start_on_all_interfaces(monkeypatch, started):
    """Start an emulator reachable as 127.0.0.1, 127.0.0.2 and localhost; the platform is 127.0.0.1."""
    def start(cls, **kw):
        emu = cls(**kw).start(host="0.0.0.0")
        emu.url = f"http://127.0.0.1:{emu._servers[0].server_address[1]}"
        emu.storage_url = f"http://127.0.0.1:{emu._servers[1].server_address[1]}"
        for key, value in emu.env.items():
            monkeypatch.setenv(key, value)
        started.append(emu)
        return emu
    return start


@pytest.fixture
def hostile(monkeypatch, make_card, tmp_path):
    started = []

    def make(platform: str, credential: dict, status: int):
        from scenarios import PLATFORMS

        emu, card, files = PLATFORMS[platform](_start_on_all_interfaces(monkeypatch, started), make_card, FILES,
                                               redirect_to_storage=True)
        emu.redirect_status = status
        for var in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
            monkeypatch.delenv(var, raising=False)
        for key, value in credential.items():
            if key == "kaggle.json":
                (tmp_path / "kaggle-config").mkdir(exist_ok=True)
                (tmp_path / "kaggle-config" / "kaggle.json").write_text(value)
                monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle-config"))
            else:
                monkeypatch.setenv(key, value)
        if "KAGGLE_API_TOKEN" in credential:
            emu.tokens = (credential["KAGGLE_API_TOKEN"],)
        return emu, card
    yield make
    for emu in started:
        emu.stop()


def _ports(emu) -> tuple[int, int]:
    return emu._servers[0].server_address[1], emu._servers[1].server_address[1]


def _leaks(emu, secret: str) -> list[str]:
    """Requests outside the platform's own origin (127.0.0.1:<api port>) that carried the secret."""
    api_port = _ports(emu)[0]
    leaked = []
    for r in emu.requests:
        host = r.headers.get("Host", "")
        own = r.server == "api" and host == f"127.0.0.1:{api_port}"
        text = json.dumps(r.headers) + json.dumps(r.query)
        if not own and (any(form in text for form in _secret_forms(secret)) or "Authorization" in r.headers
                        or "X-Dataverse-key" in r.headers):
            leaked.append(f"{r.server} {host} {r.path}")
    return leaked


@pytest.mark.parametrize("platform,credential,secret", CREDENTIALS,
                         ids=[f"{p}-{'+'.join(c)}" for p, c, _ in CREDENTIALS])
@pytest.mark.parametrize("status", [302, 307])
def test_backslash_or_userinfo_authority_is_refused_before_any_request(platform, credential, secret, status, hostile):
    emu, card = hostile(platform, credential, status)
    api_port, storage_port = _ports(emu)
    for evil in (f"http://127.0.0.2:{storage_port}\\@127.0.0.1:{api_port}",  # urllib.parse: the platform
                 f"http://emu:{secret}@127.0.0.1:{storage_port}"):
        emu.storage_url = evil
        with pytest.raises(DownloadError) as info:
            download_dataset(card)
        message = str(info.value)
        assert "refusing redirect to" in message and ("backslash" in message or "user info" in message), message
        assert "\n" not in message and secret not in message
        assert not any("/bucket/" in r.path for r in emu.requests)  # nothing was sent to the hostile host
        assert _leaks(emu, secret) == []


@pytest.mark.parametrize("platform,credential,secret", CREDENTIALS,
                         ids=[f"{p}-{'+'.join(c)}" for p, c, _ in CREDENTIALS])
def test_other_ip_other_port_and_localhost_alias_never_get_the_credential(platform, credential, secret, hostile):
    emu, card = hostile(platform, credential, 307)
    api_port, storage_port = _ports(emu)
    emu.storage_url = f"http://127.0.0.2:{storage_port}"  # another IP (and port): followed, without the token
    download_dataset(card)
    assert {(downloads() / n).read_bytes() for n in FILES} == set(FILES.values())
    assert any("/bucket/" in r.path for r in emu.requests)
    emu.storage_url = f"http://localhost:{api_port}"  # the platform's own server under another name
    emu.redirect_status = 302
    (downloads() / "README.txt").unlink()
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_dataset(card)  # the API server has no /bucket route: what matters is what it was sent
    assert any(r.headers.get("Host") == f"localhost:{api_port}" for r in emu.requests)
    assert _leaks(emu, secret) == []
    assert any(any(form in json.dumps(r.headers) for form in _secret_forms(secret))
               for r in emu.log("api"))  # the credential did reach the platform itself


def test_netrc_is_never_read(emulator, make_card, monkeypatch, tmp_path):
    from omnimedseg.downloaders.emulators import ZenodoEmulator

    emu = emulator(ZenodoEmulator, redirect_to_storage=True)
    emu.add_record("101", FILES)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password netrc-s3cr3t\ndefault login bob password dflt-s3cr3t\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".netrc").write_text(netrc.read_text())
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.setenv("ZENODO_TOKEN", "zen-s3cr3t")
    download_dataset(make_card("zenodo", "101", FILES, version="101"))
    assert all(r.headers.get("Authorization") == "Bearer zen-s3cr3t" for r in emu.log("api"))  # not overridden
    assert all("Authorization" not in r.headers for r in emu.log("storage"))  # no netrc password anywhere


def test_https_to_http_downgrade_is_refused_before_any_request():
    """No TLS server on loopback here: the https hop's answer is built by hand, the rule under test is ours."""
    import requests

    client = HttpClient(retries=0)
    sent = []

    class HandBuilt(requests.adapters.BaseAdapter):
        def send(self, prepared, **kw):
            sent.append(prepared.url)
            response = requests.Response()
            response.status_code, response.url, response.raw = 302, prepared.url, io.BytesIO(b"")
            response.headers["Location"] = "http://127.0.0.1:9/file.bin"
            return response

        def close(self):
            pass
    client.session.mount("https://", HandBuilt())
    with pytest.raises(DownloadError, match="file.bin: refusing redirect from https to plain http"):
        client.request("GET", "https://data.example.org/file.bin", what="file.bin")
    assert sent == ["https://data.example.org/file.bin"]  # the http URL was never requested


@pytest.mark.parametrize("url,reason", [
    ("http://evil:1\\@127.0.0.1:2/x", "backslash"),
    ("http://user:pass@127.0.0.1/x", "user info"),
    ("http://127.0.0.1 /x", "whitespace"),
    ("http://127.0.0.1\x00/x", "control"),
    ("http://127.0.0.1\x7f/x", "control"),
    ("http://127.0.0.1:99999/x", "port"),
    ("http://127.0.0.1:0/x", "port"),
    ("http://127.0.0.1:8o/x", "port"),
    ("http://127.0.0.1:/x", "port"),
    ("file:///etc/passwd", "scheme"),
    ("ftp://user:pass@host/x", "scheme"),
    ("http:///x", "no host"),
])
def test_unsafe_authorities_and_schemes(url, reason):
    assert reason in (unsafe_url(url) or "")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/a?b=1", "https://zenodo.org./api", "http://[::1]:8080/x",
                                 "https://localhost/x"])
def test_plain_urls_are_allowed(url):
    assert unsafe_url(url) is None


def test_one_redaction_for_printing_and_storing():
    url = "https://alice:pa55word@storage.example.org/bucket/f.zip?X-Amz-Signature=abc&token=t0k&format=original#frag"
    shown = redact(url)
    assert "pa55word" not in shown and "alice" not in shown and "abc" not in shown and "t0k" not in shown
    assert shown == "https://***@storage.example.org/bucket/f.zip?…"
    stored = lock_url(url)
    assert stored == "https://storage.example.org/bucket/f.zip?format=original"  # content selectors are kept
    assert redact("ftp://u:p@h/x") == "ftp://***@h/x"
    assert lock_url("https://www.kaggle.com/api/v1/datasets/download/a/b/f?datasetVersionNumber=3").endswith(
        "?datasetVersionNumber=3")


def test_password_in_a_card_url_is_refused_and_never_printed_or_stored(emulator, make_card, caplog, monkeypatch):
    from omnimedseg.downloaders.emulators import StaticEmulator

    emu = emulator(StaticEmulator)
    monkeypatch.delenv("OMNIMEDSEG_HTTP_URL")  # the card's own URL, user info included, is what is tried
    emu.add_files({"f.bin": b"data"})
    host = emu.url.split("//", 1)[1]
    caplog.set_level(logging.DEBUG)
    card = make_card("http", f"http://{host}/", {"f.bin": b"data"}, version="1", algs=("sha256",),
                     urls={"f.bin": f"http://alice:pa55word@{host}/f.bin"})
    with pytest.raises(DownloadError) as info:
        download_dataset(card)
    assert "user info" in str(info.value) and "pa55word" not in str(info.value) and "pa55word" not in caplog.text
    assert not emu.requests
    assert not any("pa55word" in p.read_text(errors="replace") for p in downloads().parent.rglob("*") if p.is_file())


def test_redirect_to_file_or_ftp_with_password_is_one_line_without_the_password(emulator, make_card):
    from omnimedseg.downloaders.emulators import ZenodoEmulator

    emu = emulator(ZenodoEmulator, redirect_to_storage=True)
    emu.add_record("101", FILES)
    card = make_card("zenodo", "101", FILES, version="101")
    for target in ("file:///etc/passwd#", "ftp://alice:pa55word@127.0.0.1/x#"):
        emu.storage_url = target.rstrip("#")
        with pytest.raises(DownloadError) as info:
            download_dataset(card)
        assert "refusing redirect to" in str(info.value) and "scheme" in str(info.value)
        assert "pa55word" not in str(info.value) and "\n" not in str(info.value)


def test_signed_urls_never_reach_the_lock_the_part_record_or_a_debug_log(emulator, make_card, monkeypatch, caplog):
    from omnimedseg.downloaders.emulators import MendeleyEmulator

    emu = emulator(MendeleyEmulator)
    emu.add_dataset("jxvmr8rchx", FILES, version=1)
    card = make_card("mendeley", "jxvmr8rchx", FILES, version="1", algs=("sha256",))
    caplog.set_level(logging.DEBUG)
    from omnimedseg.downloaders import _transfer

    monkeypatch.setattr(_transfer, "NO_RECORD_BELOW", 1024)  # the 40 kB scan keeps a part record to resume from
    monkeypatch.setenv("OMNIMEDSEG_RETRIES", "0")
    emu.inject("drop", after=1000, match="scan")
    with pytest.raises(DownloadError):
        download_dataset(card)
    side = downloads() / "scan.nii.gz.part.json"
    assert side.is_file() and "Signature" not in side.read_text()
    monkeypatch.setenv("OMNIMEDSEG_RETRIES", "3")
    download_dataset(card)
    lock = (downloads() / "manifest.lock.json").read_text()
    assert "/bucket/" in lock and "Signature" not in lock and "Expires" not in lock
    assert "/bucket/" in caplog.text and "Signature" not in caplog.text  # urllib3's request lines, redacted
    (downloads() / "README.txt").unlink()  # repair works from the stripped URL: 403, re-listed, fetched
    from omnimedseg.downloaders import verify_dataset

    assert verify_dataset(card, repair=True)["README.txt"] == "repaired"


def test_zenodo_get_child_gets_a_minimal_environment(monkeypatch):
    from omnimedseg.downloaders._zenodo_get import child_environment

    monkeypatch.setenv("ZENODO_TOKEN", "zen-s3cr3t")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-s3cr3t")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    env = child_environment()
    assert "ZENODO_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["HTTPS_PROXY"] == "http://proxy.example:3128" and env["PATH"] and env["PYTHONIOENCODING"] == "utf-8"


def test_cookies_a_server_sets_are_sent_back_as_a_requests_session_would():
    """Load balancers pin a client with a cookie; the client keeps the session's cookie jar although it
    calls requests' adapter directly (Session.send is skipped for its per-request cost)."""
    with sticky_server() as (base, seen):
        client = HttpClient(rate=0)
        for path in ("/echo", "/set", "/echo"):
            client.request("GET", f"{base}{path}")
        HttpClient(rate=0).request("GET", f"{base}/echo")
    assert seen == [None, None, "lb=node7", None]  # kept by the client, never shared with another
