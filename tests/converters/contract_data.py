"""Generated datasets that exercise the converter contract: channels, raters, instances, ignore.

Each mirrors a real layout in miniature: ``brain4d`` is MSD Task01 (one 4D NIfTI per
case holding FLAIR and T1w, a label map, plus a field-of-view mask and a side file
listing the cases); ``fundus`` is Chaksu/PAPILA-like (RGB fundus photos, disc and cup
masks per expert plus the dataset's consensus); ``nuclei`` is DSB2018/DeepBacs-like
(an instance label map per image, 16-bit ids). Converters here are ordinary
``Converter`` subclasses; tests select them by patching ``converter_for``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.image2d import read_binary_mask, read_image
from omnimedseg.converters.formats.volumes import (read_label_class, read_label_volume, read_volume,
                                                   read_volume_channel)
from omnimedseg.registry import Card

CARD = """schema = 1
id = "{id}"
title = "Generated {id}"
description = "Generated test dataset mirroring a real layout."
homepage = "https://example.org/{id}"
modality = "{modality}"
dimensionality = {dim}
{top}
[classes]
{classes}

[source]
platform = "zenodo"
record = "1"
version = "1"

[[source.files]]
name = "data.zip"
size = 1
hashes = {{ sha256 = "{zeros}" }}
extract = true

[license]
spdx = "CC-BY-4.0"
url = "https://creativecommons.org/licenses/by/4.0/"
redistribution = true
status = "verified-open"
source = "https://example.org/licence"

[citation]
doi = "10.0000/generated"
bibtex = "@misc{{generated, title = {{Generated}}}}"

[converter]
version = "1.0.0"
{tables}
"""


def write_card(folder: Path, dataset_id: str, modality: str, dim: int, classes: list[str], top: str = "",
               tables: str = "") -> Card:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dataset_id}.toml"
    path.write_text(CARD.format(id=dataset_id, modality=modality, dim=dim, top=top, tables=tables, zeros="0" * 64,
                                classes="\n".join(f'{i} = "{c}"' for i, c in enumerate(classes, 1))))
    return Card.from_toml(path)


# --------------------------------------------------------------------------- brain4d (MSD Task01)

BRAIN_CHANNELS = ["FLAIR", "T1w"]
BRAIN_AFFINE = np.array([[-1.2, 0, 0, 90.0], [0, 1.2, 0, -100.0], [0, 0, 2.0, -50.0], [0, 0, 0, 1]])


def brain_card(folder: Path, dataset_id: str = "brain4d") -> Card:
    return write_card(folder, dataset_id, "MRI", 3, ["edema", "tumour"],
                      top='channels = ["FLAIR", "T1w"]')


def make_brain(raw: Path, n: int = 3, shape=(9, 8, 6), listed_extra: int = 0, seed: int = 0) -> list[str]:
    """imagesTr/<case>.nii.gz (4D), labelsTr/<case>.nii.gz, fov/<case>.nii.gz, cases.txt; returns case ids."""
    rng = np.random.default_rng(seed)
    for sub in ("imagesTr", "labelsTr", "fov"):
        (raw / sub).mkdir(parents=True, exist_ok=True)
    ids = [f"BRATS_{i:03d}" for i in range(n)]
    grid = np.indices(shape)
    for i, case in enumerate(ids):
        centre = np.array(shape) / 2 + rng.uniform(-1, 1, 3)
        radius = np.sqrt(((grid - centre[:, None, None, None]) ** 2).sum(0))
        label = np.where(radius < 1.8, 2, np.where(radius < 3.0, 1, 0)).astype(np.uint8)
        image = np.stack([rng.integers(0, 1000, shape) + 400 * (label > 0),
                          rng.integers(0, 800, shape) + 300 * (label == 2)], axis=-1).astype(np.int16)
        affine = BRAIN_AFFINE.copy()
        affine[:3, 3] += i
        nib.save(nib.Nifti1Image(image, affine), raw / "imagesTr" / f"{case}.nii.gz")
        nib.save(nib.Nifti1Image(label, affine), raw / "labelsTr" / f"{case}.nii.gz")
        fov = np.zeros(shape, np.uint8)
        fov[:, :, 0] = 1  # first slice outside the field of view
        nib.save(nib.Nifti1Image(fov, affine), raw / "fov" / f"{case}.nii.gz")
    listed = ids + [f"BRATS_{n + k:03d}" for k in range(listed_extra)]
    (raw / "cases.txt").write_text("\n".join(listed) + "\n")
    return ids


class Brain4D(Converter):
    label_values = {1: "edema", 2: "tumour"}

    def cases(self, raw_dir: Path):
        listing = raw_dir / "cases.txt"
        for case_id in listing.read_text().split():
            image = raw_dir / "imagesTr" / f"{case_id}.nii.gz"
            yield Case(
                case_id=case_id,
                channels={name: Source(image, partial(read_volume_channel, index=i))
                          for i, name in enumerate(self.card.channel_names)},
                split="train",
                label=Source(raw_dir / "labelsTr" / f"{case_id}.nii.gz", read_label_volume),
                ignore=Source(raw_dir / "fov" / f"{case_id}.nii.gz", partial(read_label_class, values=(1,))),
                metadata_sources=(listing,),
            )


class BrainFiles(Converter):
    """AMOS-style: one 3D file per channel (<case>_FLAIR.nii.gz, <case>_T1w.nii.gz)."""

    label_values = {1: "edema", 2: "tumour"}

    def cases(self, raw_dir: Path):
        for case_id in (raw_dir / "cases.txt").read_text().split():
            yield Case(case_id=case_id, split="train",
                       channels={c: Source(raw_dir / "images" / f"{case_id}_{c}.nii.gz", read_volume)
                                 for c in self.card.channel_names},
                       label=Source(raw_dir / "labelsTr" / f"{case_id}.nii.gz", read_label_volume))


def split_brain_channels(raw: Path) -> None:
    """Rewrite make_brain's 4D files as one 3D file per channel (the AMOS-style layout)."""
    (raw / "images").mkdir(exist_ok=True)
    for path in sorted((raw / "imagesTr").glob("*.nii.gz")):
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
        for i, channel in enumerate(BRAIN_CHANNELS):
            nib.save(nib.Nifti1Image(data[..., i], img.affine),
                     raw / "images" / f"{path.name[:-7]}_{channel}.nii.gz")


# ---------------------------------------------------------------------- fundus (Chaksu / PAPILA)

FUNDUS_RATERS = ["expert1", "expert2", "expert3"]


def fundus_card(folder: Path, reference: str = "consensus", dataset_id: str = "fundus") -> Card:
    names = ", ".join(f'"{r}"' for r in FUNDUS_RATERS)
    return write_card(folder, dataset_id, "fundus", 2, ["disc", "cup"],
                      tables=f'[raters]\nnames = [{names}]\nreference = "{reference}"\n')


def _disc(shape, centre, radius) -> np.ndarray:
    rows, cols = np.indices(shape)
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius ** 2


def make_fundus(raw: Path, n: int = 3, shape=(40, 48), seed: int = 1) -> list[str]:
    """Images/<id>.jpg-like PNGs, Masks/<rater>/<id>_{disc,cup}.png, Consensus/<id>_{disc,cup}.png."""
    rng = np.random.default_rng(seed)
    ids = [f"IMG{i:04d}" for i in range(n)]
    (raw / "Images").mkdir(parents=True, exist_ok=True)
    for case in ids:
        centre = (shape[0] / 2 + rng.uniform(-3, 3), shape[1] / 2 + rng.uniform(-3, 3))
        rgb = rng.integers(0, 120, (*shape, 3), dtype=np.uint8)
        rgb[_disc(shape, centre, 10)] += 100
        Image.fromarray(rgb).save(raw / "Images" / f"{case}.png")
        votes = []
        for k, rater in enumerate(FUNDUS_RATERS):
            folder = raw / "Masks" / rater
            folder.mkdir(parents=True, exist_ok=True)
            disc, cup = _disc(shape, centre, 9 + k), _disc(shape, centre, 4 + k)
            votes.append((disc, cup))
            Image.fromarray((disc * 255).astype(np.uint8)).save(folder / f"{case}_disc.png")
            Image.fromarray((cup * 255).astype(np.uint8)).save(folder / f"{case}_cup.png")
        (raw / "Consensus").mkdir(exist_ok=True)
        for j, name in enumerate(("disc", "cup")):
            majority = np.sum([v[j] for v in votes], axis=0) >= 2
            Image.fromarray((majority * 255).astype(np.uint8)).save(raw / "Consensus" / f"{case}_{name}.png")
    return ids


class Fundus(Converter):
    def cases(self, raw_dir: Path):
        consensus = self.card.reference_rater == "consensus"
        for image in sorted((raw_dir / "Images").glob("*.png")):
            case_id = image.stem
            raters = {r: {c: Source(raw_dir / "Masks" / r / f"{case_id}_{c}.png", read_binary_mask)
                          for c in self.card.class_names} for r in self.card.raters}
            masks = {c: Source(raw_dir / "Consensus" / f"{case_id}_{c}.png", read_binary_mask)
                     for c in self.card.class_names} if consensus else {}
            yield Case(case_id=case_id, image=Source(image, read_image), split="train", masks=masks, raters=raters)


# ----------------------------------------------------------------------------- nuclei (DSB2018)

def nuclei_card(folder: Path, dataset_id: str = "nuclei") -> Card:
    return write_card(folder, dataset_id, "microscopy", 2, ["nucleus"])


def make_nuclei(raw: Path, n: int = 3, shape=(32, 36), seed: int = 2) -> list[str]:
    """images/<id>.png (grey), instances/<id>.png (uint16 ids, some > 255, touching objects), roi/<id>.png."""
    rng = np.random.default_rng(seed)
    ids = [f"nuc{i:02d}" for i in range(n)]
    for sub in ("images", "instances", "roi"):
        (raw / sub).mkdir(parents=True, exist_ok=True)
    for case in ids:
        labels = np.zeros(shape, np.uint16)
        for k in range(4):
            centre = (rng.uniform(5, shape[0] - 5), rng.uniform(5, shape[1] - 5))
            labels[_disc(shape, centre, 4)] = 300 + 7 * k  # published ids, not 1..N
        labels[2:6, 2:6], labels[2:6, 6:10] = 1000, 1001  # two touching nuclei stay two instances
        grey = (rng.integers(0, 60, shape) + 150 * (labels > 0)).astype(np.uint8)
        Image.fromarray(grey).save(raw / "images" / f"{case}.png")
        Image.fromarray(labels).save(raw / "instances" / f"{case}.png")
        roi = np.zeros(shape, np.uint8)
        roi[-3:, :] = 255  # bottom rows unannotated
        Image.fromarray(roi).save(raw / "roi" / f"{case}.png")
    return ids


class Nuclei(Converter):
    def cases(self, raw_dir: Path):
        for image in sorted((raw_dir / "images").glob("*.png")):
            yield Case(case_id=image.stem, image=Source(image, read_image), split="train",
                       instances={"nucleus": Source(raw_dir / "instances" / image.name, read_label_volume)},
                       ignore=Source(raw_dir / "roi" / image.name, read_binary_mask))


CONVERTERS = {"brain4d": Brain4D, "brain_files": BrainFiles, "fundus": Fundus, "fundus_ref": Fundus,
              "nuclei": Nuclei}


def use_test_converters(monkeypatch=None) -> None:
    """Make the core find this module's converters by card id (test datasets only)."""
    from omnimedseg.converters import _run

    original = _run.converter_for

    def converter_for(card):
        cls = CONVERTERS.get(card.id)
        return cls(card) if cls else original(card)

    if monkeypatch is not None:
        monkeypatch.setattr(_run, "converter_for", converter_for)
    else:
        _run.converter_for = converter_for


# ------------------------------------------------------------- totalseg-like (many classes)

def many_card(folder: Path, n_classes: int = 117, dataset_id: str = "many") -> Card:
    return write_card(folder, dataset_id, "CT", 3, [f"s{i:03d}" for i in range(1, n_classes + 1)])


def make_many(raw: Path, n_classes: int = 117, shape=(64, 64, 48), seed: int = 4) -> None:
    """ct.nii.gz (int16) + seg.nii.gz: a label map with every one of ``n_classes`` structures present."""
    rng = np.random.default_rng(seed)
    raw.mkdir(parents=True, exist_ok=True)
    label = (np.arange(np.prod(shape)) % (n_classes + 1)).reshape(shape).astype(np.uint8)
    rng.shuffle(label.reshape(-1))
    ct = rng.integers(-1000, 1500, shape).astype(np.int16)
    nib.save(nib.Nifti1Image(ct, np.diag([1.5, 1.5, 2.0, 1])), raw / "ct.nii.gz")
    nib.save(nib.Nifti1Image(label, np.diag([1.5, 1.5, 2.0, 1])), raw / "seg.nii.gz")


class Many(Converter):
    def cases(self, raw_dir: Path):
        yield Case(case_id="s0001", image=Source(raw_dir / "ct.nii.gz", read_volume), split="train",
                   label=Source(raw_dir / "seg.nii.gz", read_label_volume))


CONVERTERS["many"] = Many
