"""DOI routing: prefixes offline, everything else through an emulated doi.org handle API, and
``platform = "doi"`` cards that download from (and lock to) the platform the DOI names."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from dl_helpers import downloads

from omnimedseg.cli import cli
from omnimedseg.downloaders import Manifest, download_dataset
from omnimedseg.downloaders._doi import Route, normalize, resolve_doi
from omnimedseg.downloaders.emulators import DoiEmulator, FigshareEmulator, ZenodoEmulator
from omnimedseg.errors import DatasetNotFoundError, UsageError
from omnimedseg.registry import Card

FILES = {"a.bin": b"a" * 1000, "b.txt": b"b\n"}


@pytest.mark.parametrize("doi,route", [
    ("10.5281/zenodo.1327317", Route("zenodo", "1327317")),
    ("https://doi.org/10.6084/m9.figshare.2000005.v2", Route("figshare", "2000005", "2")),
    ("doi:10.17632/JXVMR8RCHX.3", Route("mendeley", "jxvmr8rchx", "3")),
    ("10.7910/DVN/ABCDEF", Route("dataverse", "doi:10.7910/DVN/ABCDEF")),
    ("10.17605/OSF.IO/AB12C", Route("osf", "ab12c")),
])
def test_known_prefixes_route_without_any_request(doi, route, emulator):
    resolver = emulator(DoiEmulator)
    got = resolve_doi(doi)
    assert (got.platform, got.record, got.version) == (route.platform, route.record, route.version)
    assert resolver.requests == []


@pytest.mark.parametrize("doi,url,route", [
    ("10.25573/data.10042703.v5", "https://smithsonian.figshare.com/articles/dataset/Bay_of_Panama/10042703/5",
     ("figshare", "10042703", "5")),
    ("10.34894/ABC123", "https://dataverse.nl/dataset.xhtml?persistentId=doi:10.34894/ABC123",
     ("dataverse", "https://dataverse.nl/doi:10.34894/ABC123", "")),
    ("10.7937/K9/TCIA.2015.LO9QL9SX", "https://www.cancerimagingarchive.net/collection/lidc-idri/",
     ("tcia", "LIDC-IDRI", "")),
    ("10.5281/fake.github", "https://github.com/lab/data/releases/tag/v1.0", ("github", "lab/data", "v1.0")),
    ("10.1234/kaggle.x", "https://www.kaggle.com/datasets/lab/scans", ("kaggle", "lab/scans", "")),
    ("10.1234/kaggle.c", "https://www.kaggle.com/competitions/lung-seg", ("kaggle", "competition:lung-seg", "")),
])
def test_other_dois_route_by_the_host_doi_org_registered(doi, url, route, emulator):
    resolver = emulator(DoiEmulator)
    resolver.add(doi, url)
    got = resolve_doi(doi)
    assert (got.platform, got.record, got.version) == route and got.url == url
    assert [r.path for r in resolver.requests] == [f"/api/handles/{doi}"]


def test_unknown_host_and_unregistered_doi_are_clear_errors(emulator):
    resolver = emulator(DoiEmulator)
    resolver.add("10.1000/paper", "https://journal.example.org/article/1")
    with pytest.raises(DatasetNotFoundError, match="which no omnimedseg platform serves; use platform = \"http\""):
        resolve_doi("10.1000/paper")
    with pytest.raises(DatasetNotFoundError, match="not registered at doi.org"):
        resolve_doi("10.1000/missing")
    with pytest.raises(UsageError, match="is not a DOI"):
        normalize("zenodo 123")


def test_doi_card_downloads_from_the_routed_platform_and_locks_to_it(emulator, make_card):
    resolver = emulator(DoiEmulator)
    resolver.add("10.25573/data.2000005.v2", "https://inst.figshare.com/articles/dataset/Scans/2000005/2")
    fig = emulator(FigshareEmulator)
    fig.add_article("2000005", {"old.bin": b"v1"}, version=1)
    fig.add_article("2000005", FILES, version=2)
    card = make_card("doi", "10.25573/data.2000005.v2", FILES, version="latest")
    download_dataset(card)
    assert (downloads() / "a.bin").read_bytes() == FILES["a.bin"]
    lock = Manifest.read(downloads(), "emu")
    assert (lock.platform, lock.record, lock.version) == ("figshare", "2000005", "2")

    card = make_card("doi", "10.25573/data.2000005.v2", None, version="latest")
    result = CliRunner().invoke(cli, ["--registry", str(card.path.parent), "registry", "lock", "emu", "--write"])
    assert result.exit_code == 0, result.output
    locked = Card.from_toml(card.path)
    assert (locked.source.platform, locked.source.record, locked.source.version) == ("figshare", "2000005", "2")
    assert {f.name for f in locked.source.files} == set(FILES)


def test_registry_doi_prints_the_source_table(emulator):
    emulator(ZenodoEmulator)
    result = CliRunner().invoke(cli, ["registry", "doi", "https://doi.org/10.5281/zenodo.1327317"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:4] == ["[source]", 'platform = "zenodo"', 'record = "1327317"',
                                              'version = "latest"']
