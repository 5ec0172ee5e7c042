"""AMOS22: abdominal CT and MRI with 15 organs (registry/amos22_ct.toml, registry/amos22_mr.toml).

Raw layout (Zenodo record 7262581, the post-challenge release with validation labels)::

    amos22/dataset.json                       labels (id -> name) and training/validation/test lists
    amos22/imagesTr/amos_XXXX.nii.gz          + labelsTr/amos_XXXX.nii.gz   -> split "train"
    amos22/imagesVa/amos_XXXX.nii.gz          + labelsVa/amos_XXXX.nii.gz   -> split "val"
    amos22/imagesTs/amos_XXXX.nii.gz          (no labels; labelsTs/ is empty) -> split "test"
    __MACOSX/amos22/...                       macOS AppleDouble debris in the zip (torch-em deletes it); never read
    labeled_data_meta_0000_0599.csv           (record file beside the zip; not needed to convert)

Sources: nnU-Net ``Dataset218_Amos2022_task1.py`` and ``Dataset223_AMOS2022postChallenge.py``
(https://github.com/MIC-DKFZ/nnUNet, dataset.json keys and folder names), the catalogue
(reference/datasets.md #3, label ids from uni-medical/A-Eval) and licences.md (CT/MR boundary).

One converter serves two cards: ids up to 500 are CT and above are MRI (``amos_0500`` is CT,
``amos_0501`` MR; the release readme's "less than 500" is off by one, per licences.md). nnU-Net's
``Dataset218_Amos2022_task1.py`` agrees: it keeps test ids ``<= 500`` as CT (and training/validation ids
``<= 410`` / ``<= 409``, the highest CT ids of those lists), reading the lists from the release's
``dataset.json`` keys ``training``, ``validation`` and ``test`` as this converter does. The card's
``modality`` selects the cases. The dataset.json label names (with the release's typos "arota"
and "postcava") are checked against the card's classes before anything is converted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.dataset_json import (
    check_label_names,
    listed_cases,
    read_dataset_json,
    release_path,
)
from omnimedseg.converters.formats.volumes import read_label_volume, read_volume
from omnimedseg.errors import ConversionError

RELEASE = "amos22"
SPLITS = {"training": "train", "validation": "val", "test": "test"}
LAST_CT_ID = 500
# dataset.json spelling -> card class, where they differ beyond case and spaces
LABEL_NAMES = {"gall bladder": "gallbladder", "arota": "aorta", "postcava": "inferior_vena_cava",
               "prostate/uterus": "prostate_uterus"}


def scan_number(path: Path) -> int:
    """``amos_0507.nii.gz`` -> 507."""
    stem = path.name.split(".")[0]
    try:
        return int(stem.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        raise ConversionError(f"{path}: expected a file named amos_NNNN.nii.gz") from None


class AMOS22(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        release = raw_dir / RELEASE
        meta_path = release / "dataset.json"
        data = read_dataset_json(meta_path)
        check_label_names(meta_path, data.get("labels") or {}, self.card.classes, LABEL_NAMES)
        want_ct = self.card.modality == "CT"
        for key, split in SPLITS.items():
            for entry in listed_cases(meta_path, data, key):
                image = release_path(release, entry["image"])
                number = scan_number(image)
                if (number <= LAST_CT_ID) != want_ct:
                    continue
                label = entry.get("label")
                yield Case(
                    case_id=image.name.split(".")[0],
                    image=Source(image, read_volume),
                    split=split,
                    label=Source(release_path(release, label), read_label_volume) if label else None,
                    meta={"scanner_modality": "CT" if number <= LAST_CT_ID else "MRI"},
                    metadata_sources=(meta_path,),
                )
