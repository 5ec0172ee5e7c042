"""``omnimedseg registry lock``: pin a card's files (names, sizes, hashes, version) from the platform API.

Adding a dataset then never needs hand-copied checksums: write the card's ``[source]``
(platform, record) with ``files = []``, run ``omnimedseg registry lock <id> --write``.
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
@pass_env
def lock(env: Env, dataset_id: str, write: bool) -> None:
    """Ask DATASET_ID's platform for the exact files of its record and print (or --write) the pins."""
    from dataclasses import replace

    from omnimedseg.downloaders import Downloader
    from omnimedseg.downloaders._archives import is_archive
    from omnimedseg.plugins import load_plugin

    card = env.card(dataset_id)
    downloader = load_plugin("downloaders", card.source.platform, Downloader)()
    if not hasattr(downloader, "listing"):
        raise UsageError(f"platform {card.source.platform!r} has no API listing; pin files by hand in {card.path}")
    found = downloader.listing(replace(card, source=replace(card.source, files=())))
    extract = {f.name: f.extract for f in card.source.files}
    text = render_files(found.files, extract, is_archive)
    missing = [f.name for f in found.files if not f.hashes]
    if not write:
        click.echo(f'version = "{found.version}"\n{text}')
    else:
        if card.path is None:
            raise UsageError(f"{dataset_id}: card has no file to write")
        update_card(Path(card.path), found.version, text)
        env.echo(f"{card.path}: pinned {len(found.files)} files of {card.source.platform} record "
                 f"{found.record} version {found.version}")
    if missing:
        env.echo(f"warning: the platform gives no checksum for {', '.join(missing)}; "
                 f"download once and pin a sha256 by hand", level=0)


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


def update_card(path: Path, version: str, files_text: str) -> None:
    """Replace the ``[[source.files]]`` blocks (or ``files = []``) and ``source.version``; keep the rest."""
    from omnimedseg.downloaders._transfer import atomic_write_text
    from omnimedseg.registry import Card

    text = path.read_text(encoding="utf-8")
    blocks = re.compile(r"^\[\[source\.files\]\]\n(?:(?!\[).*\n?)*", re.M)
    text = blocks.sub("", text)
    text = re.sub(r"^files\s*=\s*\[\s*\]\s*\n", "", text, flags=re.M)
    section = re.search(r"^\[source\]\n(?:(?!\[).*\n?)*", text, re.M)
    if section is None:
        raise UsageError(f"{path}: no [source] table to update")
    body = re.sub(r'^version\s*=.*$', f"version = {toml_str(version)}", section.group(0), flags=re.M)
    if "version" not in body:
        body = body.rstrip("\n") + f"\nversion = {toml_str(version)}\n"
    new = text[:section.start()] + body.rstrip("\n") + "\n\n" + files_text + "\n" + text[section.end():].lstrip("\n")
    Card.from_toml(path, new)  # never write a card that does not load
    atomic_write_text(path, new)
