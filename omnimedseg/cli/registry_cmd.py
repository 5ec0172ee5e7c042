"""``omnimedseg registry lock``: pin a card's files (names, sizes, hashes, version) from the platform API.

Adding a dataset then never needs hand-copied checksums: ``omnimedseg registry doi <DOI>``
prints the card's ``[source]`` (platform, record), or write ``platform = "doi"`` with the DOI
as record; then ``omnimedseg registry lock <id> --write`` pins the files (and, for a DOI
card, the concrete platform and record, so downloads never depend on doi.org again).
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from omnimedseg.cli import Env, pass_env
from omnimedseg.errors import UsageError


@click.group()
def registry() -> None:
    """Maintain dataset cards."""


@registry.command()
@click.argument("dataset_id")
@click.option("--write", is_flag=True, help="Rewrite the card's [[source.files]] and source.version in place.")
@click.option("--from", "local", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Pin the card's files from this local copy (sizes, md5 and sha256 of the files found there).")
@pass_env
def lock(env: Env, dataset_id: str, write: bool, local: Path | None) -> None:
    """Ask DATASET_ID's platform for the exact files of its record (or hash a local copy) and print (or --write) the pins."""
    from dataclasses import replace

    from omnimedseg.downloaders import Downloader
    from omnimedseg.downloaders._archives import is_archive
    from omnimedseg.plugins import load_plugin

    card = env.card(dataset_id)
    if local is not None:
        found = local_listing(card, local)
    else:
        downloader = load_plugin("downloaders", card.source.platform, Downloader)()
        if not hasattr(downloader, "listing"):
            raise UsageError(f"platform {card.source.platform!r} has no API listing; pin files by hand in "
                             f"{card.path}, or hash a local copy: omnimedseg registry lock {card.id} --from DIR")
        found = downloader.listing(replace(card, source=replace(card.source, files=())))
    extract = {f.name: f.extract for f in card.source.files}
    text = render_files(found.files, extract, is_archive)
    missing = [f.name for f in found.files if not f.hashes]
    routed = found.extra.get("platform") if card.source.platform == "doi" else None
    source = {"platform": routed, "record": found.record} if routed else {}
    if not write:
        head = "".join(f"{k} = {toml_str(v)}\n" for k, v in source.items())
        click.echo(f'{head}version = "{found.version}"\n{text}')
    else:
        if card.path is None:
            raise UsageError(f"{dataset_id}: card has no file to write")
        update_card(Path(card.path), found.version, text, **source)
        env.echo(f"{card.path}: pinned {len(found.files)} files of {card.source.platform} record "
                 f"{found.record} version {found.version}")
    if missing:
        env.echo(f"warning: the platform gives no checksum for {', '.join(missing)}; "
                 f"download once and pin a sha256 by hand", level=0)


def local_listing(card, folder: Path):
    """The card's files as found in ``folder`` (matched by name like ``download --from``), sized and hashed."""
    from omnimedseg.downloaders._base import Manifest
    from omnimedseg.downloaders._local import LocalSource
    from omnimedseg.errors import DatasetNotFoundError
    from omnimedseg.files import file_hashes
    from omnimedseg.registry import RemoteFile

    source = LocalSource([folder])
    files, missing = [], []
    for want in card.source.files:
        path = source.find(want.name)
        if path is None:
            missing.append(want.name)
            continue
        files.append(RemoteFile(name=want.name, size=path.stat().st_size,
                                hashes=file_hashes(path, ("md5", "sha256")), extract=want.extract))
    if missing:
        raise DatasetNotFoundError(f"{folder}: {', '.join(missing)} not found; expected every file listed in "
                                   f"{card.path} (omnimedseg info {card.id})")
    return Manifest(card.id, "local", card.source.record, card.source.version, tuple(files))


def render_files(files, extract: dict, is_archive) -> str:
    out = []
    for f in files:
        hashes = ", ".join(f'{alg} = "{digest}"' for alg, digest in sorted(f.hashes.items()))
        lines = ["[[source.files]]", f"name = {toml_str(f.name)}"]
        if f.size is not None:
            lines.append(f"size = {f.size}")
        lines.append(f"hashes = {{ {hashes} }}")
        if extract.get(f.name, is_archive(f.name)):
            lines.append("extract = true")
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@registry.command("doi")
@click.argument("doi")
@pass_env
def doi_command(env: Env, doi: str) -> None:
    """Print the [source] table for DOI: the platform that serves it, its record and version."""
    from omnimedseg.downloaders._doi import resolve_doi
    from omnimedseg.downloaders._http import offline

    route = resolve_doi(doi, online=not offline())
    click.echo(f"[source]\nplatform = {toml_str(route.platform)}\nrecord = {toml_str(route.record)}\n"
               f"version = {toml_str(route.version or 'latest')}\ndoi = {toml_str(route.doi)}")
    if route.url:
        env.echo(f"# doi.org: {route.url}", level=1)
    env.echo("# next: paste it into the card, then run: omnimedseg registry lock <id> --write", level=1)


def update_card(path: Path, version: str, files_text: str, platform: str | None = None,
                record: str | None = None) -> None:
    """Replace the ``[[source.files]]`` blocks (or ``files = []``) and ``source.version`` (and, for a
    routed DOI card, ``platform``/``record``); keep the rest."""
    from omnimedseg.files import atomic_write_text
    from omnimedseg.registry import Card

    text = path.read_text(encoding="utf-8")
    blocks = re.compile(r"^\[\[source\.files\]\]\n(?:(?!\[).*\n?)*", re.M)
    text = blocks.sub("", text)
    text = re.sub(r"^files\s*=\s*\[\s*\]\s*\n", "", text, flags=re.M)
    section = re.search(r"^\[source\]\n(?:(?!\[).*\n?)*", text, re.M)
    if section is None:
        raise UsageError(f"{path}: no [source] table to update")
    body = re.sub(r'^version\s*=.*$', lambda _: f"version = {toml_str(version)}", section.group(0), flags=re.M)
    for key, value in (("platform", platform), ("record", record)):
        if value is not None:
            line = f"{key} = {toml_str(value)}"
            body = re.sub(rf"^{key}\s*=.*$", lambda _, line=line: line, body, flags=re.M)
    if "version" not in body:
        body = body.rstrip("\n") + f"\nversion = {toml_str(version)}\n"
    new = text[:section.start()] + body.rstrip("\n") + "\n\n" + files_text + "\n" + text[section.end():].lstrip("\n")
    Card.from_toml(path, new)  # never write a card that does not load
    atomic_write_text(path, new)


DATASETS_DOC = Path("docs") / "datasets.md"
README = Path("README.md")
README_START = "<!-- datasets: generated by `omnimedseg registry docs`; do not edit by hand -->"
README_END = "<!-- end of datasets -->"


@registry.command("docs")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=DATASETS_DOC, show_default=True,
              help="Where to write the catalogue (run from the repository root).")
@click.option("--readme", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="README whose marked datasets block is regenerated too (default: README.md when --output is "
                   "the default).")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when OUTPUT (or the README block) differs from "
                                            "the built-in cards.")
@pass_env
def docs_command(env: Env, output: Path, readme: Path | None, check: bool) -> None:
    """Write docs/datasets.md and README.md's datasets table from the built-in cards (scaffolds left out)."""
    from omnimedseg.errors import ValidationError
    from omnimedseg.files import atomic_write_text
    from omnimedseg.registry import Card, builtin_card_paths, is_scaffold

    # like `omnimedseg list`, the catalogue leaves out scaffolds of `omnimedseg new` that still hold TODOs
    cards = [Card.from_toml(p) for p in builtin_card_paths() if not is_scaffold(p.read_text(encoding="utf-8"))]
    if readme is None and output == DATASETS_DOC and README.is_file():
        readme = README
    pages = {output: datasets_markdown(cards)}
    if readme is not None:
        pages[readme] = readme_with_table(readme, datasets_table(cards))
    for path, text in pages.items():
        if check:
            current = path.read_text(encoding="utf-8") if path.is_file() else ""
            if current != text:
                raise ValidationError(f"{path} is not current with the registry cards; "
                                      f"run: omnimedseg registry docs --output {output}"
                                      + (f" --readme {readme}" if readme is not None else ""))
            env.echo(f"{path} is current")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
            env.echo(f"wrote {path}")


def readme_with_table(readme: Path, table: str) -> str:
    """``readme``'s text with the block between the datasets markers replaced by ``table``."""
    from omnimedseg.errors import ValidationError

    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValidationError(f"{readme}: expected the lines {README_START!r} and {README_END!r} around the "
                              f"datasets table; add them where the table belongs")
    return text[:start + len(README_START)] + "\n" + table + text[end:]


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def datasets_table(cards) -> str:
    """One row per card: id, title, modality, dimensionality, platform, licence and its status, classes."""
    lines = ["| id | dataset | modality | dim | platform | licence | licence status | classes |",
             "|---|---|---|---|---|---|---|---|"]
    for c in sorted(cards, key=lambda c: c.id):
        lic = c.license
        lines.append(f"| `{c.id}` | {_cell(c.title)} | {c.modality} | {c.dimensionality}D | {c.source.platform} | "
                     f"{_cell(lic.spdx)}{'' if lic.redistributable else '*'} | {lic.status} | {len(c.classes)} |")
    return "\n".join(lines) + "\n"


def datasets_markdown(cards) -> str:
    """The dataset catalogue page: a table of every card, then each card's licence and classes."""
    lines = ["# Datasets", "",
             "Generated from the cards in `registry/` by `omnimedseg registry docs`; do not edit by hand",
             "(`tests/test_registry.py` fails when this page and the cards disagree).", "",
             "`licence status`: `verified-open` (an open licence stated by the primary source), `unverified`",
             "(not yet confirmed from a primary source) or `restricted` (non-commercial, no-derivatives or a",
             "data-use agreement). `download` and `convert` of anything not `verified-open` need",
             "`--accept-licence`. `verified on`: what the converter has been run on, the release's `real-files`",
             "or files generated in its exact `generated-layout`. `*`: converted data must not be redistributed.",
             "",
             "| id | dataset | modality | dim | platform | licence | licence status | verified on | classes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in sorted(cards, key=lambda c: c.id):
        lic = c.license
        lines.append(f"| `{c.id}` | {_cell(c.title)} | {c.modality} | {c.dimensionality}D | {c.source.platform} | "
                     f"{_cell(lic.spdx)}{'' if lic.redistributable else '*'} | {lic.status} | {c.verified_on} | "
                     f"{len(c.classes)} |")
    for c in sorted(cards, key=lambda c: c.id):
        lic = c.license
        lines += ["", f"## {c.id}", "", f"{_cell(c.title)}. Homepage: <{c.homepage}>.", "",
                  f"- source: {c.source.platform} record `{c.source.record}`, version `{c.source.version}`",
                  f"- licence: [{lic.spdx}]({lic.url}), status `{lic.status}`, stated at <{lic.source}>" if lic.source
                  else f"- licence: [{lic.spdx}]({lic.url}), status `{lic.status}`, no primary source recorded",
                  f"- converted data redistributable: {'yes' if lic.redistributable else 'no'}",
                  f"- citation: doi:{c.citation.doi}",
                  "- classes (MedSegDB task): " + ", ".join(
                      f"`{name}` ({c.medsegdb_tasks.get(name) or 'none: ' + c.medsegdb_unmapped.get(name, '?')})"
                      for name in c.class_names)]
    return "\n".join(lines) + "\n"
