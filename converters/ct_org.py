"""CT-ORG: CT volumes with six organ label maps (registry/ct_org.toml).

Raw layout (the TCIA NIfTI folder, downloaded manually and added with ``download --from``)::

    volume-N.nii.gz   CT, float32, HU            N = 0..139
    labels-N.nii.gz   label map stored as float32: 0 background, 1 liver, 2 bladder, 3 lungs,
                      4 kidneys, 5 bone, 6 brain

Sources: the dataset README ("All files are stored in Nifti-1 format with 32-bit floating point
data"), UMEssen/SALT ``salt/data/conversion/ctorg.py`` (label ids, test = 0-20) and the TCIA
description (21 test scans with manual lungs and bones, 119 training scans).

Float labels go through the shared ``read_label_volume``, which accepts them only when every
value is an exact integer and otherwise names the file and the offending values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.volumes import read_label_volume, read_volume

CASES = range(140)
TEST_CASES = range(21)  # 0-20: manual lungs and bones


class CTORG(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        # Every case of the release is yielded: a partial copy lists the others as absent.
        for n in CASES:
            test = n in TEST_CASES
            yield Case(
                case_id=f"ct_org_{n:03d}",
                image=Source(raw_dir / f"volume-{n}.nii.gz", read_volume),
                split="test" if test else "train",
                label=Source(raw_dir / f"labels-{n}.nii.gz", read_label_volume),
                meta={"lungs_and_bones": "manual" if test else "morphological algorithm"},
            )
