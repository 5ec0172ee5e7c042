"""The CLI: registry lock pins a card from the platform API; download --jobs; verify reports and repairs."""

from __future__ import annotations

import io
import json
import zipfile

from click.testing import CliRunner
from dl_helpers import downloads, payload

from omnimedseg.cli import cli
from omnimedseg.downloaders.emulators import FigshareEmulator, ZenodoEmulator
from omnimedseg.registry import Card


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("train/case1.bin", payload(20_000, 3))
    return buf.getvalue()


FILES = {"train.zip": _zip(), "labels.csv": b"id,label\n1,2\n"}


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_registry_lock_then_download_then_verify(emulator, make_card):
    emu = emulator(ZenodoEmulator)
    emu.add_record("101", FILES, concept="100")
    card = make_card("zenodo", "100", None, version="latest")
    reg = str(card.path.parent)
    assert run("--registry", reg, "registry", "lock", "emu", "--write").exit_code == 0
    locked = Card.from_toml(card.path)
    assert locked.source.version == "101"
    assert {f.name: f.size for f in locked.source.files} == {n: len(d) for n, d in FILES.items()}
    assert [f.extract for f in locked.source.files if f.name == "train.zip"] == [True]
    result = run("--registry", reg, "-q", "download", "emu", "--jobs", "2", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["dataset"] == "emu"
    from omnimedseg import paths

    assert (paths.raw_dir("emu") / "train" / "case1.bin").read_bytes() == payload(20_000, 3)
    (downloads() / "labels.csv").write_bytes(b"tampered")
    result = run("--registry", reg, "-q", "verify", "emu", "--json")
    assert json.loads(result.output)["files"]["labels.csv"] == "corrupt"
    assert "omnimedseg verify emu --repair" in str(result.exception)
    assert run("--registry", reg, "-q", "verify", "emu", "--repair").exit_code == 0
    assert (downloads() / "labels.csv").read_bytes() == FILES["labels.csv"]


def test_figshare_lock_pins_the_versioned_doi_not_the_latest(emulator, make_card):
    emu = emulator(FigshareEmulator)
    emu.add_article("55", {"v1.bin": b"one"}, version=1)
    emu.add_article("55", {f"f{i}.txt": f"{i}".encode() for i in range(25)}, version=2)
    card = make_card("figshare", "10.6084/m9.figshare.55.v1", None, version="latest")
    result = run("--registry", str(card.path.parent), "registry", "lock", "emu")
    assert 'version = "1"' in result.output and "v1.bin" in result.output and "f0.txt" not in result.output
    card = make_card("figshare", "10.6084/m9.figshare.55", None, version="latest")
    result = run("--registry", str(card.path.parent), "registry", "lock", "emu")
    assert result.output.count("[[source.files]]") == 25  # paged /files beyond the article's first ten


def test_manual_card_without_from_prints_instructions_and_the_command_and_fetches_nothing(monkeypatch):
    """CT-ORG is manual: no platform API serves its NIfTI folder, so download stops before any request."""
    from omnimedseg import paths
    from omnimedseg.downloaders import _http

    def no_request(*args, **kwargs):
        raise AssertionError("a manual card must not reach the platform API")

    monkeypatch.setattr(_http.HttpClient, "request", no_request)
    result = run("download", "ct_org", "--accept-licence")
    assert result.exit_code == 1, result.output
    assert "https://www.cancerimagingarchive.net/collection/ct-org/" in result.output  # the card's instructions
    assert "run: omnimedseg download ct_org --from DIR" in str(result.exception)
    assert "no series" not in result.output + str(result.exception)
    assert not paths.downloads_dir("ct_org").exists()
