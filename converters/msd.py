"""Medical Segmentation Decathlon, tasks 01-10: one converter for ten cards (registry/msd_task*.toml).

Raw layout (one tar per task on the AWS open-data bucket ``msd-for-monai``)::

    TaskNN_Name/dataset.json          labels, modality (channels), training and test lists, licence
    TaskNN_Name/imagesTr/<case>.nii.gz     3D, or 4D (x, y, z, channel) for Task01 and Task05
    TaskNN_Name/labelsTr/<case>.nii.gz     label map, values = the dataset.json label ids
    TaskNN_Name/imagesTs/<case>.nii.gz     unlabelled test images
    TaskNN_Name/imagesTr/._<case>.nii.gz   AppleDouble debris in the real tars (never listed in dataset.json)

Sources: nnU-Net ``convert_MSD_dataset.py`` (folders, 4D channel split, skipping names that start with
``.``), MONAI ``DecathlonDataset`` (bucket URLs, md5), torch-em ``msd.py`` (sha256), public copies of the
tasks' dataset.json (labels, modality, "licence": "CC-BY-SA 4.0"). The raw label spellings of Task01 ("edema",
"non-enhancing tumor", "enhancing tumour"; channels FLAIR, T1w, t1gd, T2w), Task06 ("cancer"), Task07
("pancreas", "cancer"), Task08 ("Vessel", "Tumour") and Task10 ("colon cancer primaries") are confirmed by
third-party scripts that copy the dataset.json tables (nnU-Net's BraTS conversion uses the Task01 ones);
public verbatim copies of the Task02 ("left atrium"), Task04 ("Anterior", "Posterior"; numTraining 260,
numTest 130), Task05 ("PZ", "TZ"; modality T2, ADC; 32/16) and Task07 (numTraining 281, numTest 139)
dataset.json files agree; Task03 ("liver", "cancer") and Task09 ("spleen") rest on third-party tables.
All are checked against each real dataset.json at conversion time.

Cases come from dataset.json's ``training``/``test`` lists, so the AppleDouble ``._*`` files beside them are
never read (where a converter globs, ``formats.listing.list_files`` drops them). The dataset.json labels and
channel names are checked against the card (with the explicit name table below), and the conversion stops
with both sides named when they disagree. Multi-sequence images (Task01: FLAIR, T1w, T1gd, T2w; Task05: T2,
ADC) become the card's named channels through the shared ``read_volume_channel``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.dataset_json import (
    check_channel_names,
    check_label_names,
    listed_cases,
    read_dataset_json,
    release_path,
)
from omnimedseg.converters.formats.volumes import read_label_volume, read_volume, read_volume_channel
from omnimedseg.errors import ConversionError

# dataset.json label name (lower-case) -> card class, per task where they differ beyond case and spaces
LABEL_NAMES = {
    "Task01_BrainTumour": {"non-enhancing tumor": "non_enhancing_tumour", "enhancing tumour": "enhancing_tumour"},
    "Task02_Heart": {},
    "Task03_Liver": {"cancer": "liver_tumour"},
    "Task04_Hippocampus": {"anterior": "hippocampus_anterior", "posterior": "hippocampus_posterior"},
    "Task05_Prostate": {"pz": "peripheral_zone", "tz": "transition_zone"},
    "Task06_Lung": {"cancer": "lung_tumour"},
    "Task07_Pancreas": {"cancer": "pancreas_tumour"},
    "Task08_HepaticVessel": {"vessel": "hepatic_vessel", "tumour": "liver_tumour"},
    "Task09_Spleen": {},
    "Task10_Colon": {"colon cancer primaries": "colon_cancer"},
}


def task_folder(card) -> str:
    """``Task01_BrainTumour`` from the card's single ``Task01_BrainTumour.tar``."""
    names = [f.name for f in card.source.files if f.name.endswith(".tar")]
    if len(names) != 1 or names[0].removesuffix(".tar") not in LABEL_NAMES:
        raise ConversionError(f"{card.path}: expected one TaskNN_Name.tar among {sorted(LABEL_NAMES)}, "
                              f"found {names}")
    return names[0].removesuffix(".tar")


class MSD(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        task = task_folder(self.card)
        release = raw_dir / task
        meta_path = release / "dataset.json"
        data = read_dataset_json(meta_path)
        check_label_names(meta_path, data.get("labels") or {}, self.card.classes, LABEL_NAMES[task])
        channels = self.card.channels
        if channels:
            check_channel_names(meta_path, data.get("modality") or {}, channels)
        for key, split in (("training", "train"), ("test", "test")):
            for entry in listed_cases(meta_path, data, key):
                image = release_path(release, entry["image"])
                label = entry.get("label")
                source = {"channels": {name: Source(image, partial(read_volume_channel, index=i))
                                       for i, name in enumerate(channels)}} if channels else \
                         {"image": Source(image, read_volume)}
                yield Case(
                    case_id=image.name.split(".")[0],
                    split=split,
                    label=Source(release_path(release, label), read_label_volume) if label else None,
                    metadata_sources=(meta_path,),
                    **source,
                )
