"""Decathlon-style ``dataset.json`` side files (MSD, AMOS, nnU-Net exports): cases and label names.

Several releases describe themselves in a ``dataset.json``: ``labels`` (id -> name, with MSD's
and AMOS's spellings, e.g. AMOS's "arota"), ``modality`` (channel index -> sequence name) and
``training``/``validation``/``test`` case lists. Converters check these against their card so a
release that disagrees with the card fails loudly instead of being converted under wrong names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from omnimedseg.errors import ConversionError


def read_dataset_json(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``dataset.json`` (UTF-8, BOM tolerated); a clear error when missing or broken."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: missing; expected the release's dataset.json (case lists and label "
                              f"names); re-extract the release or run: omnimedseg download <dataset> --force")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{path}: not valid JSON ({exc}); expected the release's dataset.json") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _normalise(name: str) -> str:
    return " ".join(str(name).strip().lower().split())


def check_label_names(path: str | os.PathLike, labels: Mapping[Any, Any], classes: Mapping[int, str],
                      names: Mapping[str, str] | None = None) -> None:
    """Check a ``labels`` table (id -> raw name, background 0 left out) against the card's ``classes``.

    ``names`` maps each raw name (compared lower-case, whitespace collapsed) to the card's class
    name where they differ ("arota" -> "aorta"); other raw names must equal the class name after
    lower-casing and turning spaces and '-' into '_'. Any difference is an error naming both sides.
    """
    aliases = {_normalise(k): v for k, v in (names or {}).items()}
    try:
        found = {int(k): _normalise(v) for k, v in labels.items() if int(k) != 0}
    except (TypeError, ValueError):
        raise ConversionError(f"{path}: 'labels' keys must be integer ids, found {sorted(labels)}") from None
    mapped = {i: aliases.get(raw, raw.replace(" ", "_").replace("-", "_")) for i, raw in found.items()}
    if mapped != dict(classes):
        raise ConversionError(f"{path}: labels {dict(sorted(found.items()))} map to {dict(sorted(mapped.items()))}, "
                              f"but the card expects {dict(sorted(classes.items()))}; fix the card's classes or "
                              f"the converter's name table")


def check_channel_names(path: str | os.PathLike, modality: Mapping[Any, Any], channels: Sequence[str],
                        names: Mapping[str, str] | None = None) -> None:
    """Check a ``modality`` table (channel index -> sequence name) against the card's channel order.

    Compared case-insensitively (MSD Task01 writes "t1gd" beside "FLAIR"); ``names`` maps raw names that
    differ otherwise.
    """
    aliases = {_normalise(k): v for k, v in (names or {}).items()}
    try:
        found = {int(k): _normalise(v) for k, v in modality.items()}
    except (TypeError, ValueError):
        raise ConversionError(f"{path}: 'modality' keys must be channel indices, found {sorted(modality)}") from None
    mapped = [aliases.get(found[i], found[i].replace(" ", "_").replace("-", "_")) for i in sorted(found)]
    if [m.lower() for m in mapped] != [c.lower() for c in channels]:  # sequence names differ only in case
        raise ConversionError(f"{path}: channels {dict(sorted(found.items()))} map to {mapped}, but the card "
                              f"expects {list(channels)} in that order")


def listed_cases(path: str | os.PathLike, data: Mapping[str, Any], key: str) -> list[dict[str, str]]:
    """Entries of a case list (``training``/``validation``/``test``) as dicts of ``image``/``label`` paths.

    MSD's ``test`` is a list of plain paths; they become ``{"image": path}``.
    """
    entries = data.get(key)
    if entries is None:
        raise ConversionError(f"{path}: no {key!r} list; expected the release's case lists "
                              f"(found keys {sorted(data)})")
    out = []
    for entry in entries:
        entry = {"image": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            raise ConversionError(f"{path}: {key!r} entry {entry!r}; expected a path or an object with 'image'")
        out.append(entry)
    return out


def release_path(raw_root: Path, listed: str) -> Path:
    """A path as dataset.json writes it (``./imagesTr/x.nii.gz``) resolved under the release folder."""
    parts = [p for p in Path(listed).parts if p not in (".", "/")]
    if not parts or ".." in parts:
        raise ConversionError(f"{raw_root / 'dataset.json'}: case path {listed!r} leaves the release folder")
    return raw_root.joinpath(*parts)


__all__ = ["check_channel_names", "check_label_names", "listed_cases", "read_dataset_json", "release_path"]
