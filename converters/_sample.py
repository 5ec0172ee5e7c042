"""The one rule for ``--sample N``, shared by ``download --sample`` and ``convert --sample``.

Both commands must pick the same cases, or a sampled download would not hold what the sampled
conversion reads: the first ``n`` cases of every split, in the converter's own (deterministic)
order. Every split present gets at least one case.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Iterable

from omnimedseg.converters._base import Case, Source

SAMPLE_MARKER = ".sample.json"  # in a raw tree that holds only a sample (written by download --sample)


def sample_cases(cases: Iterable[Case], n: int) -> list[Case]:
    """The first ``n`` cases of each split, in the order given."""
    taken: dict[str, int] = {}
    chosen = []
    for case in cases:
        if taken.get(case.split, 0) < n:
            taken[case.split] = taken.get(case.split, 0) + 1
            chosen.append(case)
    return chosen


def case_paths(case: Case) -> set[Path]:
    """Every raw file a case reads: each :class:`Source` in any field (image, masks, label, channels,
    raters, instances, ignore...) and ``metadata_sources``."""
    found: set[Path] = set(Path(p) for p in case.metadata_sources)

    def walk(value) -> None:
        if isinstance(value, Source):
            found.update(value.paths)
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
    for f in dataclasses.fields(case):
        walk(getattr(case, f.name))
    return found
