"""Dataset cards: the built-in ``*.toml`` files of this package plus user folders.

Folders listed in ``$OMNIMEDSEG_REGISTRY_PATH`` (``os.pathsep``-separated) and passed
as ``--registry DIR`` are read after the built-in cards, so a private or new dataset
can be registered without editing the installed package. One id defined twice is an
error naming both files.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Iterable

from omnimedseg.errors import RegistryError, UsageError, did_you_mean
from omnimedseg.registry.card import MODALITIES, Card, RemoteFile

__all__ = ["Card", "RemoteFile", "MODALITIES", "Registry", "load_registry", "ENV_REGISTRY_PATH"]

ENV_REGISTRY_PATH = "OMNIMEDSEG_REGISTRY_PATH"


class Registry:
    """All known cards by id."""

    def __init__(self, cards: dict[str, Card]):
        self._cards = dict(sorted(cards.items()))

    def __iter__(self):
        return iter(self._cards.values())

    def __len__(self) -> int:
        return len(self._cards)

    def __contains__(self, dataset_id: str) -> bool:
        return dataset_id in self._cards

    def get(self, dataset_id: str) -> Card:
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
        (a modality not in :data:`MODALITIES`, a licence or platform no card has) is a UsageError."""
        def same(a: str, b: str | None) -> bool:
            return b is None or a.lower() == b.lower()

        for what, value, known in (("modality", modality, MODALITIES),
                                   ("licence", licence, {c.license.spdx for c in self}),
                                   ("platform", platform, {c.source.platform for c in self})):
            if value is not None and value.lower() not in {k.lower() for k in known}:
                plural = {"modality": "modalities", "licence": "licences", "platform": "platforms"}[what]
                raise UsageError(f"no such {what} {value!r};{did_you_mean(value, known, plural)}"
                                 f" See them all with: omnimedseg list")

        return [c for c in self if same(c.modality, modality) and same(c.license.spdx, licence)
                and same(c.source.platform, platform)
                and (dimensionality is None or c.dimensionality == dimensionality)]


def builtin_card_paths() -> list[Path]:
    folder = resources.files(__name__)
    return sorted(Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".toml"))


def card_paths(extra_dirs: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Built-in cards first, then ``$OMNIMEDSEG_REGISTRY_PATH`` folders, then ``extra_dirs``."""
    dirs = [d for d in os.environ.get(ENV_REGISTRY_PATH, "").split(os.pathsep) if d] + [str(d) for d in extra_dirs]
    paths = builtin_card_paths()
    for d in dirs:
        folder = Path(d).expanduser()
        if not folder.is_dir():
            raise RegistryError(f"registry folder {folder} does not exist "
                                f"(from ${ENV_REGISTRY_PATH} or --registry); expected a folder of <id>.toml cards")
        paths.extend(sorted(folder.glob("*.toml")))
    return paths


def load_registry(extra_dirs: Iterable[str | os.PathLike] = ()) -> Registry:
    cards: dict[str, Card] = {}
    for path in card_paths(extra_dirs):
        card = Card.from_toml(path)
        if card.id in cards:
            raise RegistryError(f"dataset id {card.id!r} is defined twice: {cards[card.id].path} and {path}; "
                                f"remove or rename one of them")
        cards[card.id] = card
    return Registry(cards)
