"""One multi-file record per platform, served by its emulator and pinned by a card."""

from __future__ import annotations

from omnimedseg.downloaders.emulators import (DataverseEmulator, FigshareEmulator, GitHubEmulator, StaticEmulator,
                                              ZenodoEmulator)


def zenodo(start, make_card, files, **kw):
    emu = start(ZenodoEmulator, **kw)
    emu.add_record("101", files, concept="100")
    return emu, make_card("zenodo", "100", files, version="101")


def figshare(start, make_card, files, **kw):
    emu = start(FigshareEmulator, **kw)
    emu.add_article("2000005", {"old.bin": b"v1"}, version=1)
    emu.add_article("2000005", files, version=2)
    return emu, make_card("figshare", "10.6084/m9.figshare.2000005.v2", files, version="2")


def dataverse(start, make_card, files, **kw):
    emu = start(DataverseEmulator, checksum="SHA-1", **kw)
    emu.add_dataset("10.7910/DVN/ABCDEF", files, version="1.0")
    return emu, make_card("dataverse", "doi:10.7910/DVN/ABCDEF", files, version="1.0", algs=("sha1",))


def github(start, make_card, files, **kw):
    emu = start(GitHubEmulator, **kw)
    emu.add_release("lab/data", "v1.0", files)
    return emu, make_card("github", "lab/data", files, version="v1.0", algs=("sha256",))


def http(start, make_card, files, **kw):
    emu = start(StaticEmulator, **kw)
    emu.add_files({f"pub/data/{k}": v for k, v in files.items()})
    return emu, make_card("http", "https://data.example.org/pub/data/", files, version="2020", algs=("sha256",))


def s3(start, make_card, files, **kw):
    emu = start(lambda **k: StaticEmulator("s3", multipart=("Task01.tar",), **k), **kw)
    emu.add_files(files)
    return emu, make_card("s3", "https://msd-for-monai.s3-us-west-2.amazonaws.com", files, version="2018",
                          algs=("md5",))


PLATFORMS = {"zenodo": zenodo, "figshare": figshare, "dataverse": dataverse, "github": github, "http": http,
             "s3": s3}
