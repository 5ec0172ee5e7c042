"""Converted datasets built by the real pipeline (fake raw -> download -> convert -> validate),
shared by the data-layer tests: a 2D one (HC18 fake) and a 3D one (entry-point plugin ``organs3d``)."""

from __future__ import annotations

import shutil
import zipfile

import nibabel as nib
import numpy as np
import pytest

from omnimedseg.testing import check_converter
from tests.converters.fake.hc18 import make_remote_files
from tests.helpers import register_plugin_dataset

ORGANS_PLUGIN = '''
    from omnimedseg.converters import Case, Converter, Source
    from omnimedseg.converters.formats.nifti import read_nifti


    class Organs(Converter):
        def cases(self, raw_dir):
            for image in sorted((raw_dir / "imagesTr").glob("*.nii.gz")):
                yield Case(case_id=image.name[:-7], image=Source(image, read_nifti), split="train",
                           label=Source(raw_dir / "labelsTr" / image.name, read_nifti))
'''
AFFINE = np.array([[-0.8, 0, 0, 100.0], [0, -0.8, 0, 50.0], [0, 0, 2.5, -30.0], [0, 0, 0, 1]])


def _organ_release(folder):
    rng = np.random.default_rng(3)
    work = folder / "work"
    for sub in ("imagesTr", "labelsTr"):
        (work / sub).mkdir(parents=True)
    for case in ("organs_001", "organs_002"):
        image = rng.normal(0, 100, (12, 10, 6)).astype(np.int16)
        label = np.zeros((12, 10, 6), np.uint8)
        label[2:6, 2:6, 1:3] = 1  # class 1 on slices k = 1, 2
        label[7:10, 5:9, 4] = 2  # class 2 on slice k = 4
        nib.save(nib.Nifti1Image(image, AFFINE), work / "imagesTr" / f"{case}.nii.gz")
        nib.save(nib.Nifti1Image(label, AFFINE), work / "labelsTr" / f"{case}.nii.gz")
    with zipfile.ZipFile(folder / "organs.zip", "w") as zf:
        for path in sorted(work.rglob("*.nii.gz")):
            zf.write(path, path.relative_to(work).as_posix())
    shutil.rmtree(work)


@pytest.fixture
def organs(tmp_path, monkeypatch):
    """3D CT dataset ``organs3d`` (2 cases, 12x10x6, classes liver and spleen): kwargs for the datasets."""
    cards = register_plugin_dataset(tmp_path, monkeypatch, "organs3d", ORGANS_PLUGIN, "Organs",
                                    {'modality = "ultrasound"': 'modality = "CT"',
                                     "dimensionality = 2": "dimensionality = 3",
                                     '1 = "fetal_head"': '1 = "liver"\n2 = "spleen"'},
                                    '[[source.files]]\nname = "organs.zip"\nextract = true\n')
    work = tmp_path / "organs_work"
    work.mkdir()
    out = check_converter("organs3d", _organ_release, work, {"train": 2}, registry_dirs=(cards,))
    return {"root": out.parents[2], "registry_dirs": (str(cards),)}


@pytest.fixture
def hc18(tmp_path):
    """2D ultrasound dataset ``hc18`` (fake: 3 labelled 54x80 train images, 2 unlabelled test images)."""
    work = tmp_path / "hc18_work"
    work.mkdir()
    out = check_converter("hc18", make_remote_files, work, {"train": 3, "test": 2})
    return {"root": out.parents[2], "registry_dirs": ()}


@pytest.fixture
def both(organs, hc18):
    """``organs3d`` and ``hc18`` converted under one data root."""
    shutil.copytree(hc18["root"] / "converted" / "hc18", organs["root"] / "converted" / "hc18")
    return organs
