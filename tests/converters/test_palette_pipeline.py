"""A colour-coded mask dataset through the real pipeline, palette from the card (BUS-UCLM style)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from PIL import Image

from omnimedseg.errors import ConversionError
from omnimedseg.testing import check_converter
from tests.helpers import register_plugin_dataset

PLUGIN = '''
    from functools import partial

    from omnimedseg.converters import Case, Converter, Source
    from omnimedseg.converters.formats.annotations2d import read_palette_mask_class
    from omnimedseg.converters.formats.image2d import read_image


    class ColourLesions(Converter):
        def cases(self, raw_dir):
            for image in sorted((raw_dir / "images").glob("*.png")):
                mask = raw_dir / "masks" / image.name
                yield Case(case_id=image.stem, image=Source(image, read_image), split="train", masks={
                    name: Source(mask, partial(read_palette_mask_class, palette=self.card.palette, class_name=name))
                    for name in self.card.class_names})
'''


def _release(stray_colour: bool):
    def make(folder):
        with zipfile.ZipFile(folder / "lesions.zip", "w") as zf:
            for i in range(2):
                image = np.full((30, 40), 90 + i, np.uint8)
                mask = np.zeros((30, 40, 3), np.uint8)
                mask[5:12, 5:15] = (0, 255, 0)  # benign: green
                mask[15:25, 20:35] = (255, 0, 0)  # malignant: red
                if stray_colour and i == 1:
                    mask[0, 39] = (0, 0, 255)
                for sub, array in (("images", image), ("masks", mask)):
                    Image.fromarray(array).save(folder / "x.png")
                    zf.write(folder / "x.png", f"{sub}/case{i}.png")
        (folder / "x.png").unlink()
    return make


@pytest.fixture
def registry(tmp_path, monkeypatch):
    cards = register_plugin_dataset(tmp_path, monkeypatch, "colour_lesions", PLUGIN, "ColourLesions", {
        '[classes]\n1 = "fetal_head"': '[classes]\n1 = "benign"\n2 = "malignant"\n\n'
                                       '[palette]\nbenign = "#00ff00"\nmalignant = [255, 0, 0]'},
        '[[source.files]]\nname = "lesions.zip"\nextract = true\n')
    return (str(cards),)


def test_palette_masks_become_one_binary_mask_per_class(tmp_path, registry):
    out = check_converter("colour_lesions", _release(False), tmp_path, {"train": 2}, registry_dirs=registry)
    benign = np.asarray(Image.open(out / "masks" / "case0" / "benign.png"))
    malignant = np.asarray(Image.open(out / "masks" / "case0" / "malignant.png"))
    assert benign.sum() == 7 * 10 and malignant.sum() == 10 * 15 and not (benign & malignant).any()


def test_unknown_colour_is_an_error_naming_file_and_colour(tmp_path, registry):
    with pytest.raises(ConversionError) as info:
        check_converter("colour_lesions", _release(True), tmp_path, {"train": 2}, registry_dirs=registry)
    message = str(info.value)
    assert "masks/case1.png" in message and "(0, 0, 255)" in message
