"""The downloader plugin contract.

A downloader knows one platform's API. It only *resolves*: given a card's source
(record id, version), it returns the pinned manifest of remote files with URLs,
sizes and hashes. Fetching, verification, resume and extraction are shared by all
platforms and live in :mod:`omnimedseg.downloaders._transfer` and
:mod:`omnimedseg.downloaders._archives`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar, Sequence

from omnimedseg.errors import ChecksumMismatchError, DatasetNotFoundError
from omnimedseg.registry import Card, RemoteFile

MANIFEST_NAME = "manifest.lock.json"


@dataclass(frozen=True)
class Manifest:
    """What was resolved for one dataset: the lock written next to the downloads."""

    dataset_id: str
    platform: str
    record: str
    version: str
    files: tuple[RemoteFile, ...]
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        """The lock's text; URLs lose user info and signed query parameters (no secret is written to disk)."""
        from omnimedseg.downloaders._http import lock_url

        data = asdict(self)
        data["files"] = [{**asdict(f), "url": lock_url(f.url)} for f in self.files]
        data["extra"] = {k: lock_url(v) if isinstance(v, str) and "://" in v else v for k, v in self.extra.items()}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        data = json.loads(text)
        data["files"] = tuple(RemoteFile(**f) for f in data["files"])
        return cls(**data)

    @classmethod
    def read(cls, folder: Path, dataset_id: str) -> "Manifest":
        path = folder / MANIFEST_NAME
        if not path.is_file():
            raise DatasetNotFoundError(f"{path} not found: {dataset_id} has not been downloaded; "
                                       f"run: omnimedseg download {dataset_id}")
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except (ValueError, KeyError, TypeError) as exc:  # truncated, hand-edited, another version's shape
            detail = " ".join(str(exc).split())[:120]
            raise DatasetNotFoundError(f"{path} is damaged ({type(exc).__name__}: {detail}); move it aside and "
                                       f"run: omnimedseg download {dataset_id}") from None

    def write(self, folder: Path) -> None:
        from omnimedseg.downloaders._transfer import atomic_write_text

        atomic_write_text(folder / MANIFEST_NAME, self.to_json())


class Downloader:
    """Base class of all platform downloaders (one module per platform)."""

    platform: ClassVar[str]
    # files fetched in parallel when the user gives no --jobs; platforms whose releases are many small
    # objects on storage built for it raise it (IDC: tens of thousands of DICOM instances on S3)
    jobs: ClassVar[int] = 4

    def resolve(self, card: Card) -> Manifest:
        """Ask the platform which files make up ``card``'s record; return them pinned."""
        raise NotImplementedError(f"{type(self).__name__} must implement resolve()")

    def sample_headers(self, files: Sequence[RemoteFile], client) -> dict[str, bytes] | None:
        """``download --sample``: which files are case files, for a platform whose release is nothing
        but per-case files that ``cases()`` lists by their headers (IDC: DICOM instances in series
        folders). Returns name -> leading bytes of the files ``cases()`` reads header-only (written
        into the sample's skeleton); every file of ``files`` is then a case file, fetched only when a
        chosen case names it. None (the default): the size rule of ``downloaders._sample``."""
        return None

    @staticmethod
    def check_against_card(card: Card, resolved: list[RemoteFile]) -> tuple[RemoteFile, ...]:
        """Keep the card's files, with URLs from the platform, refusing drifted sizes/hashes.

        The card is the pin; a platform answering with other bytes for the same
        version is an error, never silently accepted.
        """
        by_name = {f.name: f for f in resolved}
        pinned = []
        for want in card.source.files:
            got = by_name.get(want.name)
            if got is None:
                raise DatasetNotFoundError(
                    f"{card.id}: file {want.name!r} pinned in {card.path} is not in {card.source.platform} "
                    f"record {card.source.record} (found: {', '.join(sorted(by_name)) or 'no files'}); "
                    f"check the record or run: omnimedseg registry lock {card.id}")
            if want.size is not None and got.size is not None and want.size != got.size:
                raise ChecksumMismatchError(f"{card.id}: {want.name}: card pins {want.size} bytes, "
                                            f"platform reports {got.size}")
            for alg in set(want.hashes) & set(got.hashes):
                if want.hashes[alg] != got.hashes[alg]:
                    raise ChecksumMismatchError(f"{card.id}: {want.name}: card pins {alg} {want.hashes[alg]}, "
                                                f"platform reports {got.hashes[alg]}")
            pinned.append(RemoteFile(name=want.name, size=want.size if want.size is not None else got.size,
                                     hashes={**got.hashes, **want.hashes}, url=got.url, extract=want.extract))
        return tuple(pinned)
