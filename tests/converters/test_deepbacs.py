import numpy as np
import pytest

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.testing import check_converter
from tests.converters._outputs import cases_by_id, convert_extracted_release, provenance_of
from tests.converters.fake.deepbacs import FOLDERS, cell_labels, maker


@pytest.mark.parametrize("card_id", sorted(FOLDERS))
def test_deepbacs_instance_tiffs_kept_with_their_ids(tmp_path, card_id):
    out = check_converter(card_id, maker(card_id), tmp_path, expected_splits={"train": 2, "test": 1})
    cases = cases_by_id(out)
    assert sorted(cases) == ["test_train_007", "train_JE2_001", "train_pos12_003"]
    for case_id, case in cases.items():
        name = case_id.split("_", 1)[1]
        instances = read_png_array(out / case["instances"]["bacterium"])
        assert instances.dtype == np.uint16 and np.array_equal(instances, cell_labels(name))  # ids as published
        assert np.array_equal(read_png_array(out / case["masks"]["bacterium"]), cell_labels(name) > 0)
        image = read_png_array(out / case["image"])
        assert image.dtype == np.uint16 and image.shape == (20, 24)  # 16-bit kept
    split, labels = {"train": "training", "test": "test"}, FOLDERS[card_id][1]
    assert provenance_of(out, "instances/test_train_007/bacterium.png") == (
        "omnimedseg.converters.formats.instances.read_instance_map", [f"{split['test']}/{labels}/train_007.tif"])


def test_deepbacs_convert_raw_folder_as_unzipped(tmp_path):
    out = convert_extracted_release("deepbacs_mixed", maker("deepbacs_mixed"), tmp_path)
    assert len(cases_by_id(out)) == 3


def test_deepbacs_converter_on_real_stardist_instance_tiffs(realdata, tmp_path):
    """The real StarDist DSB2018 16-bit image + instance TIFF, laid out as the mixed set's training pair."""
    import shutil

    from omnimedseg import paths
    from omnimedseg.registry import load_registry
    from tests.helpers import run_cli

    images = realdata("stardist_dsb2018_tif") / "stardist" / "data" / "images"
    raw = tmp_path / "unpacked"
    for sub, name in (("source", "img2d.tif"), ("target", "mask2d.tif")):
        (raw / "training" / sub).mkdir(parents=True)
        shutil.copy(images / name, raw / "training" / sub / "dsb2018_img2d.tif")
    result = run_cli("--root", tmp_path / "home", "convert", "deepbacs_mixed", "--raw", raw)
    assert result.exit_code == 0, result.output
    out = paths.converted_dir("deepbacs_mixed", load_registry().get("deepbacs_mixed").converter_version,
                              tmp_path / "home")
    case = cases_by_id(out)["train_dsb2018_img2d"]
    instances = read_png_array(out / case["instances"]["bacterium"])
    from PIL import Image

    published = np.asarray(Image.open(images / "mask2d.tif"))
    assert instances.dtype == np.uint16 and np.array_equal(instances, published)
    assert len(np.unique(instances)) - 1 == 125 and int(instances.max()) == 183  # ids kept, not renumbered
    assert np.array_equal(read_png_array(out / case["image"]), np.asarray(Image.open(images / "img2d.tif")))
