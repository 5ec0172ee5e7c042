"""PROMISE12: prostate MRI (T2) with prostate segmentations (registry/promise12.toml).

Raw layout (Zenodo record 8026660, version of 2023-06-07; each zip extracts into its own folder)::

    training_data/CaseNN.mhd + CaseNN.raw                   T2 image (MetaImage header + data file)
    training_data/CaseNN_segmentation.mhd + .raw            0 background, 1 prostate
    test_data/CaseNN.mhd, CaseNN_segmentation.mhd           (labels released with the 2023 record)
    livechallenge_test_data/CaseNN.mhd, CaseNN_segmentation.mhd
    LICENSE.TXT

Sources: nnU-Net v1 ``Task024_Promise2012.py`` (``*segmentation.mhd`` beside each image, label 1 =
prostate), public download scripts for record 8026660 (the three zips extract to ``training_data/``,
``test_data/`` and ``livechallenge_test_data/``), and a multi-dataset loader that globs
``*_segmentation.mhd`` in all three folders (licences.md: test labels "not confirmed"). Every image
is paired with its ``_segmentation.mhd``: if a test segmentation is missing in the real release the
core reports that case as incomplete instead of converting it silently without labels.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.listing import list_files
from omnimedseg.converters.formats.volumes import read_label_class, read_volume

SPLITS = {"training_data": "train", "test_data": "test", "livechallenge_test_data": "live_test"}
SEGMENTATION_SUFFIX = "_segmentation"


class PROMISE12(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        for folder, split in SPLITS.items():
            for header in list_files(raw_dir / folder, "*.mhd"):
                if header.stem.endswith(SEGMENTATION_SUFFIX):
                    continue
                segmentation = header.with_name(f"{header.stem}{SEGMENTATION_SUFFIX}.mhd")
                yield Case(
                    case_id=f"{split}_{header.stem}",  # each folder numbers its cases from Case00
                    image=Source(header, read_volume),
                    split=split,
                    masks={"prostate": Source(segmentation, partial(read_label_class, values=(1,), known=(1,)))},
                )
