"""Dataset cards: the built-in ``*.toml`` files of this package plus user folders.

Folders listed in ``$OMNIMEDSEG_REGISTRY_PATH`` (``os.pathsep``-separated) and passed
as ``--registry DIR`` are read after the built-in cards, so a private or new dataset
can be registered without editing the installed package; so are the card folders of
installed packages (entry-point group ``omnimedseg.registry``: ``name = "package.module"``,
the ``*.toml`` files next to that module), which is how ``omnimedseg new --plugin`` ships
a private dataset. One id defined twice is an error naming both files. A card that still
holds the scaffold's TODO markers loads (so its author can convert) but is never listed.
A user or package card that cannot be read breaks only its own dataset: it is set aside
(``Registry.broken``), asking for its id raises its error, and every other dataset works.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Iterable

from omnimedseg.errors import RegistryError, UsageError, did_you_mean
from omnimedseg.registry.card import MODALITIES, Card, RemoteFile, is_scaffold, read_card_text

__all__ = ["Card", "RemoteFile", "MODALITIES", "Registry", "load_registry", "ENV_REGISTRY_PATH", "ENTRY_POINT_GROUP",
           "is_scaffold"]

ENV_REGISTRY_PATH = "OMNIMEDSEG_REGISTRY_PATH"
ENTRY_POINT_GROUP = "omnimedseg.registry"


class Registry:
    """All known cards by id."""

    def __init__(self, cards: dict[str, Card], scaffolds: Iterable[str] = (),
                 broken: dict[str, RegistryError] | None = None):
        self._cards = dict(sorted(cards.items()))
        self.scaffolds = frozenset(scaffolds)  # ids of cards still holding TODO markers: never listed
        self.broken = dict(broken or {})  # id (or file stem) -> why its user/package card was set aside

    def __iter__(self):
        return iter(self._cards.values())

    def __len__(self) -> int:
        return len(self._cards)

    def __contains__(self, dataset_id: str) -> bool:
        return dataset_id in self._cards

    def get(self, dataset_id: str) -> Card:
        if dataset_id in self.broken:
            raise self.broken[dataset_id]
        try:
            return self._cards[dataset_id]
        except KeyError:
            raise RegistryError(
                f"unknown dataset {dataset_id!r};{did_you_mean(dataset_id, self._cards, 'datasets')} "
                f"Run 'omnimedseg list' to browse, or 'omnimedseg new {dataset_id}' to add it"
            ) from None

    def select(self, modality: str | None = None, dimensionality: int | None = None,
               licence: str | None = None, platform: str | None = None) -> list[Card]:
        """Cards matching every given filter (case-insensitive for strings); a value no card could match
        (a modality not in :data:`MODALITIES`, a licence or platform no card has) is a UsageError;
        scaffolds are left out."""
        def same(a: str, b: str | None) -> bool:
            return b is None or a.lower() == b.lower()

        for what, value, known in (("modality", modality, MODALITIES),
                                   ("licence", licence, {c.license.spdx for c in self}),
                                   ("platform", platform, {c.source.platform for c in self})):
            if value is not None and value.lower() not in {k.lower() for k in known}:
                plural = {"modality": "modalities", "licence": "licences", "platform": "platforms"}[what]
                raise UsageError(f"no such {what} {value!r};{did_you_mean(value, known, plural)}"
                                 f" See them all with: omnimedseg list")

        return [c for c in self if c.id not in self.scaffolds and same(c.modality, modality)
                and same(c.license.spdx, licence)
                and same(c.source.platform, platform)
                and (dimensionality is None or c.dimensionality == dimensionality)]


def builtin_card_paths() -> list[Path]:
    folder = resources.files(__name__)
    return sorted(Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".toml"))


def plugin_card_paths() -> list[Path]:
    """Cards of installed packages: the ``*.toml`` files next to each ``omnimedseg.registry`` entry point's module."""
    from importlib.metadata import entry_points

    from omnimedseg.errors import PluginError
    from omnimedseg.plugins import load_entry_point

    paths = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        module = load_entry_point(ep, ENTRY_POINT_GROUP)
        folder = Path(module.__file__).parent if getattr(module, "__file__", None) else None
        if folder is None:
            raise PluginError(f"entry point {ep.name} = {ep.value} (group {ENTRY_POINT_GROUP}): expected a module "
                              f"whose folder holds <id>.toml cards")
        paths.extend(sorted(folder.glob("*.toml")))
    return paths


def card_paths(extra_dirs: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Built-in cards first, then installed packages' cards, then ``$OMNIMEDSEG_REGISTRY_PATH`` folders,
    then ``extra_dirs``."""
    dirs = [d for d in os.environ.get(ENV_REGISTRY_PATH, "").split(os.pathsep) if d] + [str(d) for d in extra_dirs]
    paths = builtin_card_paths() + plugin_card_paths()
    for d in dirs:
        folder = Path(d).expanduser()
        if not folder.is_dir():
            raise RegistryError(f"registry folder {folder} does not exist "
                                f"(from ${ENV_REGISTRY_PATH} or --registry); expected a folder of <id>.toml cards")
        paths.extend(sorted(folder.glob("*.toml")))
    return paths


def load_registry(extra_dirs: Iterable[str | os.PathLike] = ()) -> Registry:
    cards: dict[str, Card] = {}
    scaffolds, broken = [], {}
    builtin = Path(str(resources.files(__name__)))  # the package's own cards' folder
    for path in card_paths(extra_dirs):
        try:
            text = read_card_text(path)
            card = Card.from_toml(path, text)
        except RegistryError as exc:
            if path.parent == builtin:
                raise  # ours: a bug in the package, never set aside
            broken[path.stem] = exc  # a user's or a package's card breaks only its own dataset
            continue
        if card.id in cards or card.id in broken:
            first = cards.pop(card.id).path if card.id in cards else "another card"
            broken[card.id] = RegistryError(f"dataset id {card.id!r} is defined twice: {first} and {path}; "
                                            f"remove or rename one of them")
            continue
        cards[card.id] = card
        if is_scaffold(text):
            scaffolds.append(card.id)
    return Registry(cards, scaffolds, broken)
