"""The converter plugin contract: a converter describes cases, the core does all I/O.

A converter is one module ``converters/<dataset_id>.py`` with one :class:`Converter`
subclass whose :meth:`Converter.cases` yields :class:`Case` records. Each record
names the raw files of one image and of its masks, and the format operation
(from :mod:`omnimedseg.converters.formats`) that reads them. The core reads,
checks geometry, writes PNG/NIfTI, hashes, and records provenance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence

from omnimedseg.converters.formats.imagedata import ImageData
from omnimedseg.registry import Card

CASE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SPLIT_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

Reader = Callable[..., ImageData]


@dataclass(frozen=True)
class Source:
    """Raw file(s) plus the format operation that turns them into an :class:`ImageData`.

    ``read`` must be a module-level function (or ``functools.partial`` of one) so
    cases can be converted in worker processes.
    """

    paths: tuple[Path, ...]
    read: Reader

    def __init__(self, paths: Path | str | Sequence[Path | str], read: Reader):
        paths = (paths,) if isinstance(paths, (str, Path)) else tuple(paths)
        object.__setattr__(self, "paths", tuple(Path(p) for p in paths))
        object.__setattr__(self, "read", read)

    def load(self) -> ImageData:
        return self.read(*self.paths)

    @property
    def operation(self) -> str:
        """Dotted name of the reader, recorded in provenance."""
        func = getattr(self.read, "func", self.read)  # unwrap functools.partial
        name = f"{func.__module__}.{func.__qualname__}"
        keywords = getattr(self.read, "keywords", None)
        return f"{name}({', '.join(f'{k}={v!r}' for k, v in sorted(keywords.items()))})" if keywords else name


@dataclass(frozen=True)
class Case:
    """One image of a dataset and what belongs to it.

    Args:
        case_id: unique and deterministic (derived from raw file names, never from order).
        image: the image source of a single-channel dataset ...
        channels: ... or channel name -> source for a multi-sequence image, one entry per
            channel of the card's ``channels`` (a 4D file is split with
            ``Source(path, partial(read_volume_channel, index=i))``).
        split: the dataset's own split name ("train", "val", "test", ...).
        masks: class name -> binary mask source: the REFERENCE masks (the dataset's
            consensus, or the card's reference rater).
        label: one label-map source whose values are the card's class ids (or
            ``Converter.label_values``); the core splits it into per-class masks.
        raters: rater name -> class name -> binary mask source, for every annotator of
            the card's ``[raters] names``. When ``masks``/``label`` are not given and the
            card's reference is a rater, that rater's masks are the reference.
        instances: class name -> instance-label-map source (integer ids, 0 = background);
            the class's semantic mask is derived from it (id != 0) when ``masks`` lacks it.
        ignore: bool mask source, True where the image is unlabelled or outside the field
            of view (metrics and robot users can exclude it).
        unlabelled: classes of the card NOT annotated in this case (e.g. a subset that labels
            one organ per frame and leaves the others unknown, not background). The core
            writes no mask for them and records them in dataset.json; the data layer, robot
            users, metrics and the benchmark never treat them as empty. A case labels at least
            one class; one with no annotation at all gives no masks instead.
        problem: why this case cannot be converted, found while listing (an unexpected mask
            name in its folder, a malformed side file of its own). The core fails this case
            only, as if reading it had failed (the run stops naming it, or ``--keep-going``
            lists it); raising in ``cases()`` would stop every case.
        spacing: pixel/voxel size in mm when the dataset provides it outside the image
            file (2D: (row, col)); NIfTI images carry their own.
        meta: small JSON-serialisable facts kept in dataset.json (e.g. patient id).
        metadata_sources: side files the spacing/meta came from (recorded in provenance).

    The core decides whether a case is present: when none of its source files exists it
    is *absent* (listed in the report and dataset.json), when some exist it is an error.
    A converter therefore never checks file existence itself.
    """

    case_id: str
    image: Source | None = None
    split: str = ""
    masks: Mapping[str, Source] = field(default_factory=dict)
    label: Source | None = None
    spacing: tuple[float, ...] | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    metadata_sources: tuple[Path, ...] = ()
    channels: Mapping[str, Source] = field(default_factory=dict)
    raters: Mapping[str, Mapping[str, Source]] = field(default_factory=dict)
    instances: Mapping[str, Source] = field(default_factory=dict)
    ignore: Source | None = None
    unlabelled: tuple[str, ...] = ()
    problem: str | None = None

    @property
    def labelled(self) -> bool:
        return bool(self.masks) or self.label is not None or bool(self.instances) or bool(self.raters)

    def sources(self) -> list[Source]:
        """Every source of this case (image/channels first), for presence checks and provenance."""
        found = [self.image] if self.image is not None else []
        found += list(self.channels.values()) + list(self.masks.values())
        found += [self.label] if self.label is not None else []
        found += [s for by_class in self.raters.values() for s in by_class.values()]
        found += list(self.instances.values()) + ([self.ignore] if self.ignore is not None else [])
        return found


class Converter:
    """Base class of all dataset converters.

    Subclasses set nothing but :meth:`cases` (and, for label maps with raw values
    other than the card's class ids, ``label_values``). ``self.card`` is the
    dataset's registry card.
    """

    # raw label value -> class name, when a label map does not use the card's ids.
    label_values: ClassVar[Mapping[int, str] | None] = None

    def __init__(self, card: Card):
        self.card = card

    def cases(self, raw_dir: Path) -> Iterator[Case]:
        """Yield every case of the dataset found under ``raw_dir``."""
        raise NotImplementedError(f"{type(self).__name__} must implement cases(raw_dir)")
