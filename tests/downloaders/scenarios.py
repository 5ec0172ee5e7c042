"""One multi-file record per platform, served by its emulator and pinned by a card.

Each scenario returns ``(emulator, card, files)``: ``files`` are the bytes that must end up
under ``downloads/<id>/`` (the series ZIPs for TCIA, the given files everywhere else).
"""

from __future__ import annotations

from omnimedseg.downloaders.emulators import (
    DataverseEmulator,
    FigshareEmulator,
    GitHubEmulator,
    IdcEmulator,
    KaggleEmulator,
    MendeleyEmulator,
    OsfEmulator,
    StaticEmulator,
    TciaEmulator,
    ZenodoEmulator,
)


def zenodo(start, make_card, files, **kw):
    emu = start(ZenodoEmulator, **kw)
    emu.add_record("101", files, concept="100")
    return emu, make_card("zenodo", "100", files, version="101"), files


def figshare(start, make_card, files, **kw):
    emu = start(FigshareEmulator, **kw)
    emu.add_article("2000005", {"old.bin": b"v1"}, version=1)
    emu.add_article("2000005", files, version=2)
    return emu, make_card("figshare", "10.6084/m9.figshare.2000005.v2", files, version="2"), files


def dataverse(start, make_card, files, **kw):
    emu = start(DataverseEmulator, checksum="SHA-1", **kw)
    emu.add_dataset("10.7910/DVN/ABCDEF", files, version="1.0")
    return emu, make_card("dataverse", "doi:10.7910/DVN/ABCDEF", files, version="1.0", algs=("sha1",)), files


def github(start, make_card, files, **kw):
    emu = start(GitHubEmulator, **kw)
    emu.add_release("lab/data", "v1.0", files)
    return emu, make_card("github", "lab/data", files, version="v1.0", algs=("sha256",)), files


def http(start, make_card, files, **kw):
    emu = start(StaticEmulator, **kw)
    emu.add_files({f"pub/data/{k}": v for k, v in files.items()})
    return emu, make_card("http", "https://data.example.org/pub/data/", files, version="2020", algs=("sha256",)), files


def s3(start, make_card, files, **kw):
    emu = start(lambda **k: StaticEmulator("s3", multipart=("Task01.tar",), **k), **kw)
    emu.add_files(files)
    return emu, make_card("s3", "https://msd-for-monai.s3-us-west-2.amazonaws.com", files, version="2018",
                          algs=("md5",)), files


def mendeley(start, make_card, files, **kw):
    emu = start(MendeleyEmulator, **kw)
    emu.add_dataset("jxvmr8rchx", {"old.bin": b"v1"}, version=1)
    emu.add_dataset("jxvmr8rchx", files, version=2)
    return emu, make_card("mendeley", "10.17632/jxvmr8rchx.2", files, version="2", algs=("sha256",)), files


def tcia(start, make_card, files, **kw):
    """One series per file: patient ``<stem>``, the file as its only DICOM instance."""
    emu = start(TciaEmulator, **kw)
    zips = {}
    for i, (name, data) in enumerate(files.items()):
        blob = emu.add_series("EMU-COLL", name.split(".")[0], f"1.2.826.0.1.{i}", {"1-01.dcm": data})
        zips[blob.name] = blob.data
    return emu, make_card("tcia", "EMU-COLL", zips, version="2020"), zips


def osf(start, make_card, files, **kw):
    emu = start(OsfEmulator, page_size=2, **kw)
    emu.add_project("ab12c", files)
    return emu, make_card("osf", "10.17605/OSF.IO/AB12C", files, version="latest", algs=("sha256",)), files


def kaggle(start, make_card, files, **kw):
    emu = start(KaggleEmulator, **kw)
    emu.add_dataset("lab/scans", files)
    return emu, make_card("kaggle", "lab/scans", files, version="1"), files


def idc(start, make_card, files, **kw):
    """One IDC series holding the files as its instances; the card pins the collection only."""
    emu = start(IdcEmulator, **kw)
    uuid = emu.add_series("emu_coll", "EMU-001", "1.2.826.0.1.9", "CT", files)
    return emu, make_card("idc", "emu_coll", None, version="v25"), {f"{uuid}/{k}": v for k, v in files.items()}


PLATFORMS = {"zenodo": zenodo, "figshare": figshare, "dataverse": dataverse, "github": github, "http": http,
             "s3": s3, "mendeley": mendeley, "tcia": tcia, "osf": osf, "kaggle": kaggle,
             "idc": idc}
STORAGE_REDIRECT = ["zenodo", "figshare", "dataverse", "github", "mendeley", "osf", "kaggle"]
