"""The shared converter test harness (for built-in and third-party converters).

``check_converter`` runs the real pipeline on generated fake raw files: served by the
card's platform emulator on loopback (or read from a local folder), downloaded by the
real downloader (sizes and hashes checked) -> convert -> validate, and checks what every
converter must guarantee. A dataset's test is then a few lines.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping

from omnimedseg.errors import UsageError
from omnimedseg.files import file_hashes
from omnimedseg.registry import Card, RemoteFile, load_registry


def pin_to_files(card: Card, folder: Path) -> Card:
    """``card`` with its files' sizes and hashes taken from the files in ``folder``."""
    pinned = []
    for remote in card.source.files:
        path = folder / remote.name
        if remote.name.endswith("/") and card.source.platform == "idc" and path.is_dir():
            from omnimedseg.downloaders.idc import pin_series_folder

            pinned.append(replace(remote, **{k: getattr(pin_series_folder(path), k) for k in ("size", "hashes")},
                                  unpinned=""))
            continue
        if not path.is_file():
            raise UsageError(f"fake data generator did not write {path}; it must write every file "
                             f"listed in {card.path}")
        pinned.append(replace(remote, size=path.stat().st_size, hashes=file_hashes(path, ("md5", "sha256"))))
    return replace(card, source=replace(card.source, files=tuple(pinned)))


@contextlib.contextmanager
def served_by_emulator(card: Card, folder: Path):
    """Serve ``folder`` as ``card``'s record on its platform's loopback emulator.

    Yields the card pointed at the emulated record; the platform's ``OMNIMEDSEG_<P>_URL``
    variables are set while the block runs.
    """
    from omnimedseg.downloaders.emulators import EMULATORS

    platform = card.source.platform
    if platform not in EMULATORS:
        raise UsageError(f"{card.id}: no emulator for platform {platform!r}; emulators exist for "
                         f"{', '.join(sorted(EMULATORS))}")
    with EMULATORS[platform]() as emulator:
        record = emulator.add_folder(folder)
        with environment(emulator.env):  # after add_folder: an emulator's env may name what it added (IDC's index)
            # an emulator that serves a platform-wide store (IDC's bucket + index) keeps the card's record
            served = {k: v for k, v in record.items() if v is not None}
            yield replace(card, source=replace(card.source, **served))


@contextlib.contextmanager
def environment(values: Mapping[str, str]):
    """Set environment variables (an emulator's ``OMNIMEDSEG_<P>_URL``) while the block runs, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_converter(dataset_id: str, make_remote_files: Callable[[Path], None], tmp_path: Path,
                    expected_splits: Mapping[str, int], registry_dirs: tuple = (), via: str = "emulator") -> Path:
    """Run download -> convert -> validate on fake files; return the output folder.

    ``via="emulator"`` serves the files through the card's platform emulator and the real
    platform downloader; ``via="local"`` reads them as ``download --from`` does.
    """
    from omnimedseg import paths
    from omnimedseg.converters._run import collect_cases, convert_dataset
    from omnimedseg.converters._validate import validate_converted
    from omnimedseg.downloaders import download_dataset

    card = load_registry(registry_dirs).get(dataset_id)
    remote = tmp_path / "remote"
    remote.mkdir()
    make_remote_files(remote)
    card = pin_to_files(card, remote)
    root = tmp_path / "root"
    if via == "emulator":
        with served_by_emulator(card, remote) as served:
            raw = download_dataset(served, root)
    elif via == "local":
        raw = download_dataset(card, root, sources=[remote])
    else:
        raise UsageError(f"via={via!r}: expected 'emulator' or 'local'")
    ids_first = [c.case_id for c in collect_cases(card, raw)]
    ids_second = [c.case_id for c in collect_cases(card, raw)]
    if ids_first != ids_second:
        raise AssertionError(f"{dataset_id}: case ids differ between two runs; they must be deterministic")
    out = convert_dataset(card, root)
    report = validate_converted(out, raw)
    if not report.ok:
        raise AssertionError(f"{dataset_id}: output fails validation:\n" + "\n".join(report.problems))
    splits = json.loads((out / "splits.json").read_text())
    counts = {name: len(ids) for name, ids in splits.items()}
    if counts != dict(expected_splits):
        raise AssertionError(f"{dataset_id}: expected cases per split {dict(expected_splits)}, found {counts}")
    stamp = (out / ".complete").stat().st_mtime_ns
    if convert_dataset(card, root) != out or (out / ".complete").stat().st_mtime_ns != stamp:
        raise AssertionError(f"{dataset_id}: a second convert must reuse the complete output")
    if paths.raw_dir(card.id, root) != raw:
        raise AssertionError("raw folder moved")
    return out


__all__ = ["check_converter", "pin_to_files", "served_by_emulator", "RemoteFile"]
