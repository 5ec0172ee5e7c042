"""VerSe'20: vertebra labelling and segmentation in CT (registry/verse20.toml).

Raw layout (the restructured "VerSe-complete" release, three zips listed in the official README
https://github.com/anjany/verse)::

    dataset-01training/rawdata/sub-<id>/sub-<id>[_<tags>]_ct.nii.gz
    dataset-01training/derivatives/sub-<id>/sub-<id>[_<tags>]_seg-vert_msk.nii.gz    label map 1-28
    dataset-01training/derivatives/sub-<id>/sub-<id>[_<tags>]_seg-subreg_ctd.json     centroids
    dataset-01training/derivatives/sub-<id>/sub-<id>[_<tags>]_seg-vert_snp.png        preview (not used)
    dataset-02validation/...   dataset-03test/...   (same structure; the test labels are included)

``<tags>`` vary (``dir-ax``, ``dir-iso``, ``split-verse290`` ...), so a case is every ``*_ct.nii.gz``
and its derivatives share its prefix (a public script reads e.g.
``dataset-01training/rawdata/sub-verse823/sub-verse823_dir-iso_ct.nii.gz`` from the training zip).

Labels (OSF wiki https://osf.io/b2wxj/wiki and the README): 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6,
26 sacrum and 27 coccyx ("not labeled in this dataset"), 28 T13. Sacrum and coccyx are not card classes
(an always-empty mask would wrongly say "absent"); raw 28 becomes card class 26 (``label_values``), and a
raw 26/27 stops the conversion naming the value, since the release says they never occur. Images keep their acquired orientation
and spacing (not resampled); the mask shares the image's grid. The centroid JSON (a list whose first
entry gives the axis directions, then one ``{"label", "X", "Y", "Z"}`` per vertebra) is kept verbatim
as case metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.listing import list_files
from omnimedseg.converters.formats.volumes import read_label_volume, read_volume
from omnimedseg.errors import ConversionError

SPLITS = {"dataset-01training": "train", "dataset-02validation": "val", "dataset-03test": "test"}
IMAGE_SUFFIX = "_ct.nii.gz"


def read_centroids(path: Path) -> list:
    """The centroid file as published (a JSON list); a clear error when malformed."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{path}: not valid JSON ({exc}); expected VerSe centroids") from None
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise ConversionError(f"{path}: expected a JSON list of objects (direction, then label/X/Y/Z per vertebra)")
    return data


# raw mask value -> card class: 1-25 (C1-C7, T1-T12, L1-L6) keep their ids; T13 (raw 28) is card class 26.
# Raw 26/27 (sacrum, coccyx) are absent on purpose: the release does not annotate them.
LEVELS = [f"c{i}" for i in range(1, 8)] + [f"t{i}" for i in range(1, 13)] + [f"l{i}" for i in range(1, 7)]
RAW_LABELS = {**{value: f"vertebra_{level}" for value, level in enumerate(LEVELS, start=1)}, 28: "vertebra_t13"}


class VerSe20(Converter):
    label_values = RAW_LABELS

    def cases(self, raw_dir: Path) -> Iterator[Case]:
        for folder, split in SPLITS.items():
            for image in list_files(raw_dir / folder / "rawdata", f"sub-*/*{IMAGE_SUFFIX}"):
                prefix = image.name[: -len(IMAGE_SUFFIX)]
                derivatives = raw_dir / folder / "derivatives" / image.parent.name
                centroids = derivatives / f"{prefix}_seg-subreg_ctd.json"
                meta, problem = {"subject": image.parent.name}, None
                if centroids.is_file():  # else the core lists the case absent (a partial copy) or names the file
                    try:
                        meta["centroids"] = read_centroids(centroids)
                    except ConversionError as exc:  # this case's own file: this case fails, not every case
                        problem = str(exc)
                yield Case(
                    case_id=prefix,
                    image=Source(image, read_volume),
                    split=split,
                    label=Source(derivatives / f"{prefix}_seg-vert_msk.nii.gz", read_label_volume),
                    meta=meta,
                    problem=problem,
                    metadata_sources=(centroids,),
                )
