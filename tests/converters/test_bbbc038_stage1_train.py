import shutil

import numpy as np
import pytest

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.testing import check_converter
from tests.converters._outputs import cases_by_id, convert_extracted_release, provenance_of
from tests.converters.fake.bbbc038_stage1_train import IMAGES, make_remote_files, nuclei


def test_bbbc038_per_nucleus_pngs_become_instance_maps(tmp_path):
    out = check_converter("bbbc038_stage1_train", make_remote_files, tmp_path, expected_splits={"train": 2})
    cases = cases_by_id(out)
    from scipy import ndimage

    for image_id in IMAGES:
        case = cases[image_id]
        assert case["instances"] == {"nucleus": f"instances/{image_id}/nucleus.png"}
        instances = read_png_array(out / case["instances"]["nucleus"])
        assert instances.dtype == np.uint16
        expected = np.zeros_like(instances)
        for i, (_, mask) in enumerate(sorted(nuclei(image_id).items()), start=1):  # ids by mask file name
            expected[mask] = i
        assert np.array_equal(instances, expected)
        assert len(np.unique(instances)) - 1 == case["meta"]["nuclei"] == 3  # counted from the files
        semantic = read_png_array(out / case["masks"]["nucleus"])
        assert np.array_equal(semantic, expected > 0)
        image = read_png_array(out / case["image"])
        assert image.shape == (24, 28, 3)  # opaque alpha dropped, grey-looking RGB kept as RGB
    histo = list(IMAGES)[1]
    semantic = read_png_array(out / cases[histo]["masks"]["nucleus"])
    assert ndimage.label(semantic)[1] == 2  # two touching nuclei: one component, still two instances
    operation, sources = provenance_of(out, f"instances/{histo}/nucleus.png")
    assert operation == "omnimedseg.converters.formats.instances.merge_instance_masks"
    assert sources == [f"{histo}/masks/{name}" for name in sorted(nuclei(histo))]


def test_bbbc038_convert_raw_folder_as_unzipped(tmp_path):
    out = convert_extracted_release("bbbc038_stage1_train", make_remote_files, tmp_path)
    assert sorted(cases_by_id(out)) == sorted(IMAGES)


def test_bbbc038_samples_carry_the_instance_ids(tmp_path):
    from omnimedseg.data.datasets import ConvertedDataset

    check_converter("bbbc038_stage1_train", make_remote_files, tmp_path, expected_splits={"train": 2})
    samples = {s["case_id"]: s for s in ConvertedDataset("bbbc038_stage1_train", root=tmp_path / "root")}
    for image_id in IMAGES:
        instances = np.asarray(samples[image_id]["instances"])[0]
        assert sorted(np.unique(instances).tolist()) == [0, 1, 2, 3]
        assert np.array_equal(np.asarray(samples[image_id]["masks"])[0], instances > 0)


def test_bbbc038_an_image_without_masks_is_image_only_and_no_masks_at_all_is_an_error(tmp_path):
    """One stage 1 image is reported without annotated nuclei: it converts as an image-only case (never an
    empty mask). A release with no mask file anywhere is the wrong archive or layout, and fails naming it."""
    unannotated = "7b38c9173ebe69b4c6ba7e703c0c27f39305d9b2910f46405993d2ea7a963b80"

    def add_unannotated(raw):
        first = sorted(IMAGES)[0]
        (raw / unannotated / "images").mkdir(parents=True)
        (raw / unannotated / "masks").mkdir()
        shutil.copy(raw / first / "images" / f"{first}.png", raw / unannotated / "images" / f"{unannotated}.png")
    out = convert_extracted_release("bbbc038_stage1_train", make_remote_files, tmp_path / "one", add_unannotated)
    cases = cases_by_id(out)
    assert sorted(cases) == sorted([*IMAGES, unannotated])
    assert not cases[unannotated]["masks"] and not cases[unannotated]["instances"]  # no mask, not an empty one
    assert all(cases[image_id]["meta"]["nuclei"] == 3 for image_id in IMAGES)

    def drop_all_masks(raw):
        for image_id in IMAGES:
            shutil.rmtree(raw / image_id / "masks")
    with pytest.raises(AssertionError, match=r"no <image id>/masks/\*\.png in any of 2 image folders"):
        convert_extracted_release("bbbc038_stage1_train", make_remote_files, tmp_path / "none", drop_all_masks)
