"""Small helpers shared by tests: run the CLI in-process, pin a card to local files."""

from __future__ import annotations

import re
from pathlib import Path

import click
from click.testing import CliRunner

from omnimedseg.cli import main
from omnimedseg.files import file_hashes

REGISTRY = Path(__file__).resolve().parents[1] / "registry"


@click.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def _entry(args):
    main(list(args))


def run_cli(*args: str):
    """Run ``omnimedseg *args`` through the real entry point (error printing, exit codes)."""
    return CliRunner().invoke(_entry, [str(a) for a in args])


def write_pinned_card(dataset_id: str, new_id: str, files_dir: Path, registry_dir: Path) -> Path:
    """Copy a built-in card under ``new_id`` with its files pinned to those in ``files_dir``."""
    text = (REGISTRY / f"{dataset_id}.toml").read_text()
    text = re.sub(r'^id = ".*"$', f'id = "{new_id}"', text, count=1, flags=re.M)
    head, rest = text.split("[[source.files]]", 1)
    tail = rest[rest.index("\n[license]"):]
    names = re.findall(r'^name = "(.*)"$', rest[: rest.index("\n[license]")], flags=re.M)
    extracts = {n: n.endswith(".zip") for n in names}
    blocks = []
    for name in names:
        path = files_dir / name
        h = file_hashes(path, ("md5", "sha256"))
        blocks.append(f'[[source.files]]\nname = "{name}"\nsize = {path.stat().st_size}\n'
                      f'hashes = {{ md5 = "{h["md5"]}", sha256 = "{h["sha256"]}" }}\n'
                      f'extract = {"true" if extracts[name] else "false"}\n')
    registry_dir.mkdir(parents=True, exist_ok=True)
    out = registry_dir / f"{new_id}.toml"
    out.write_text(head + "\n".join(blocks) + tail)
    return out


def install_fake_distribution(site: Path, package: str, source: str, group: str, entry: str) -> None:
    """A real installed-package layout (package + .dist-info) that importlib.metadata discovers."""
    import textwrap

    folder = site / package
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(textwrap.dedent(source))
    info = site / f"{package}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{entry}\n")


def write_card_variant(registry_dir: Path, new_id: str, replacements: dict[str, str], files_toml: str) -> Path:
    """The HC18 card rewritten for a test dataset: text replacements plus new [[source.files]]."""
    text = (REGISTRY / "hc18.toml").read_text().replace('id = "hc18"', f'id = "{new_id}"')
    text = text.replace('name = "hc18"', f'name = "{new_id}"')
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    head, rest = text.split("[[source.files]]", 1)
    registry_dir.mkdir(parents=True, exist_ok=True)
    path = registry_dir / f"{new_id}.toml"
    path.write_text(head + files_toml + rest[rest.index("\n[license]"):])
    return path


def register_plugin_dataset(tmp_path: Path, monkeypatch, dataset_id: str, plugin_source: str, class_name: str,
                            card_replacements: dict[str, str], files_toml: str) -> Path:
    """A third-party converter for ``dataset_id`` installed on sys.path plus its card; returns the card folder."""
    package = f"{dataset_id}_plugin"
    site = tmp_path / "site"
    install_fake_distribution(site, package, plugin_source, "omnimedseg.converters",
                              f"{dataset_id} = {package}:{class_name}")
    monkeypatch.syspath_prepend(str(site))
    cards = tmp_path / "cards"
    write_card_variant(cards, dataset_id, card_replacements, files_toml)
    return cards
