"""Side tables, release-tree lookups and multi-file masks on generated files with the real quirks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from omnimedseg.converters.formats.layout import files_by_stem, find_folder, find_side_file
from omnimedseg.converters.formats.masks2d import read_binary_mask_union, read_empty_mask, read_mask_above
from omnimedseg.converters.formats.tables import read_table
from omnimedseg.errors import ConversionError


def test_table_with_bom_semicolons_padding_and_nan(tmp_path):
    path = tmp_path / "INFO.csv"
    path.write_bytes("Image ; Label;Doppler\nA_1.png;benign;NaN\n\nB_2.png;normal\n".encode("utf-8-sig"))
    rows = read_table(path, ("Image", "Label"))
    assert rows == [{"Image": "A_1.png", "Label": "benign", "Doppler": None},
                    {"Image": "B_2.png", "Label": "normal", "Doppler": None}]
    comma = tmp_path / "c.csv"
    comma.write_text('ID,BBOX\nbus_0001-l,"[1, 2, 3, 4]"\n')
    assert read_table(comma, ("ID",)) == [{"ID": "bus_0001-l", "BBOX": "[1, 2, 3, 4]"}]
    with pytest.raises(ConversionError, match=r"INFO\.csv: no column\(s\) \['ID', 'kFold'\]; expected \['ID', 'kFold'\], "
                                              r"found \['Image', 'Label', 'Doppler'\]"):
        read_table(path, ("ID", "kFold"))
    with pytest.raises(ConversionError, match="missing; expected the bus_bra side table; run: omnimedseg download bus_bra"):
        read_table(tmp_path / "absent.csv", dataset="bus_bra")


def test_folder_aliases_side_files_and_stems(tmp_path):
    (tmp_path / "Test" / "Remedio").mkdir(parents=True)
    (tmp_path / "Test" / "expert 5").mkdir()
    assert find_folder(tmp_path / "Test", ("Remidio", "Remedio"), "chaksu").name == "Remedio"
    assert find_folder(tmp_path / "Test", ("Expert 5",), "chaksu").name == "expert 5"
    (tmp_path / "Test" / "Remidio").mkdir()
    with pytest.raises(ConversionError, match=r"expected one folder named remedio or remidio .*found \['Remedio', "
                                              r"'Remidio'\]"):
        find_folder(tmp_path / "Test", ("Remidio", "Remedio"), "chaksu")
    masks = tmp_path / "masks"
    masks.mkdir()
    for name in ("22glsusp.png", "Image101.PNG", "._Image101.PNG"):
        (masks / name).write_bytes(b"x")
    assert files_by_stem(masks, drop_suffixes=("glsusp",)) == {"22": masks / "22glsusp.png",
                                                               "image101": masks / "Image101.PNG"}
    (masks / "22.jpg").write_bytes(b"x")
    with pytest.raises(ConversionError, match="22.jpg and 22glsusp.png have the same name"):
        files_by_stem(masks, drop_suffixes=("glsusp",))
    (tmp_path / "BUS-UCLM").mkdir()
    (tmp_path / "BUS-UCLM" / "INFO.csv").write_text("Image;Label\n")
    assert find_side_file(tmp_path, "INFO.csv", "bus_uclm") == tmp_path / "BUS-UCLM" / "INFO.csv"
    (tmp_path / "data" / "BUS-UCLM").mkdir(parents=True)
    (tmp_path / "data" / "BUS-UCLM" / "INFO.csv").write_text("Image;Label\n")
    with pytest.raises(ConversionError, match=r"expected one INFO\.csv .*found \['BUS-UCLM/INFO\.csv', "
                                              r"'data/BUS-UCLM/INFO\.csv'\]"):
        find_side_file(tmp_path, "INFO.csv", "bus_uclm")


def test_union_empty_and_grey_level_masks(tmp_path):
    left, right = np.zeros((6, 8), bool), np.zeros((6, 8), bool)
    left[1:3, 1:3], right[2:5, 5:7] = True, True
    Image.fromarray(left).save(tmp_path / "l.png")  # 1-bit PNG
    Image.fromarray((right * 255).astype(np.uint8)).save(tmp_path / "r.png")
    assert np.array_equal(read_binary_mask_union(tmp_path / "l.png", tmp_path / "r.png").array, left | right)
    Image.fromarray(np.zeros((5, 8), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(ConversionError, match=r"small\.png: mask of 8 x 5 pixels; expected 8 x 6"):
        read_binary_mask_union(tmp_path / "l.png", tmp_path / "small.png")
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "image.jpg")
    empty = read_empty_mask(tmp_path / "image.jpg").array
    assert empty.shape == (6, 8) and empty.dtype == bool and not empty.any()
    levels = np.array([[0, 128, 255, 128]], np.uint8)
    Image.fromarray(levels).save(tmp_path / "fusion.png")
    assert read_mask_above(tmp_path / "fusion.png", above=85).array.tolist() == [[False, True, True, True]]
    assert read_mask_above(tmp_path / "fusion.png", above=170).array.tolist() == [[False, False, True, False]]
    ring = np.zeros((9, 9), np.uint8)
    ring[1:8, 1:8], ring[2:7, 2:7] = 255, 128  # brightest level outside: the order is the other way round
    Image.fromarray(ring).save(tmp_path / "ring.png")
    assert read_mask_above(tmp_path / "ring.png", above=170).array.sum() == 24  # without the check: an annulus
    with pytest.raises(ConversionError, match=r"ring\.png: the pixels above 170 form a ring \(25 of 49 enclosed"):
        read_mask_above(tmp_path / "ring.png", above=170, solid=True)
    assert read_mask_above(tmp_path / "fusion.png", above=170, solid=True).array.sum() == 1


def test_palette_png_mask_decodes_through_the_card_palette(tmp_path):
    from omnimedseg.converters.formats.annotations2d import read_palette_mask

    indices = np.zeros((5, 6), np.uint8)
    indices[1:3, 1:4], indices[4, 5] = 1, 2
    image = Image.fromarray(indices, mode="P")
    image.putpalette([0, 0, 0, 0, 255, 0, 255, 0, 0] + [0] * (256 * 3 - 9))
    image.save(tmp_path / "mask.png")
    assert Image.open(tmp_path / "mask.png").mode == "P"
    masks = read_palette_mask(tmp_path / "mask.png", {"benign_lesion": "#00ff00", "malignant_lesion": [255, 0, 0]})
    assert np.array_equal(masks["benign_lesion"], indices == 1)
    assert np.array_equal(masks["malignant_lesion"], indices == 2)
