import json

import numpy as np
import pytest

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.testing import check_converter
from tests.converters.fake.arcade import ANNOTATIONS, SEGMENTS, expected_mask, make_remote_files


@pytest.mark.parametrize("task, splits", [("syntax", {"train": 2, "val": 2, "test": 1}),
                                          ("stenosis", {"train": 1, "val": 1, "test": 1})])
def test_arcade_coco_polygons_per_task(tmp_path, task, splits):
    out = check_converter(f"arcade_{task}", make_remote_files, tmp_path, expected_splits=splits)
    categories = [f"segment_{s}" for s in SEGMENTS] if task == "syntax" else ["stenosis"]
    for split, images in ANNOTATIONS[task].items():
        for name in images:
            case = f"{split}_{name[:-4]}"
            for cls in categories:
                category = cls.removeprefix("segment_")
                found = read_png_array(out / "masks" / case / f"{cls}.png")
                assert np.array_equal(found, expected_mask(task, split, name, category)), (case, cls)
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["labels"]["background"] == 0 and len(dataset["labels"]) == len(categories) + 1
    provenance = json.loads((out / "provenance.json").read_text())["files"]
    entry = provenance[f"masks/train_1/{categories[0]}.png"]
    assert entry["sources"][0]["path"] == f"arcade/{task}/train/annotations/train.json"
    assert "read_coco_mask(categories=" in entry["operation"] and "image_id=1" in entry["operation"]


def test_arcade_partial_copy_with_the_shared_coco_json_lists_missing_images_as_absent(tmp_path):
    """``convert --raw`` on a copy that kept every COCO JSON but only some images: the JSON is read by
    every case of its split, so it is no evidence that one case is present; a case whose own image
    is gone is absent, not an error. A missing JSON stays an error."""
    import shutil
    import zipfile

    from omnimedseg.converters._validate import validate_converted
    from tests.helpers import run_cli

    remote, raw = tmp_path / "release", tmp_path / "partial"
    remote.mkdir()
    make_remote_files(remote)
    with zipfile.ZipFile(remote / "arcade.zip") as zf:
        zf.extractall(raw)
    (raw / "arcade" / "syntax" / "train" / "images" / "2.png").unlink()
    shutil.rmtree(raw / "arcade" / "syntax" / "val" / "images")
    result = run_cli("--root", tmp_path / "root", "convert", "arcade_syntax", "--raw", raw, "--accept-licence")
    assert result.exit_code == 0, result.output
    out = tmp_path / "root" / "converted" / "arcade_syntax"
    out = next(out.iterdir())
    dataset = json.loads((out / "dataset.json").read_text())
    assert sorted(c["case_id"] for c in dataset["cases"]) == ["test_1", "train_1"]
    assert sorted((a["case_id"], a["split"]) for a in dataset["absent"]) == [
        ("train_2", "train"), ("val_1", "val"), ("val_2", "val")]
    assert np.array_equal(read_png_array(out / "masks" / "train_1" / "segment_1.png"),
                          expected_mask("syntax", "train", "1.png", "1"))
    assert validate_converted(out, raw).ok
    (raw / "arcade" / "syntax" / "train" / "annotations" / "train.json").unlink()  # shared by train_1, train_2
    result = run_cli("--root", tmp_path / "root2", "convert", "arcade_syntax", "--raw", raw, "--accept-licence")
    message = str(result.exception) + result.output
    assert result.exit_code != 0 and "train.json: file not found" in message  # cases() reads it: one clear error


def test_presence_rule_shared_files_are_no_evidence_but_still_required(tmp_path):
    """The core rule on its own: a case is absent when all files only IT reads are missing; a file
    that other cases read too neither makes it present nor may be missing from a present case."""
    from omnimedseg.converters import Case, Source
    from omnimedseg.converters._run import _presence, shared_files
    from omnimedseg.converters.formats.image2d import read_image
    from omnimedseg.errors import ConversionError
    from omnimedseg.registry import load_registry

    card = load_registry().get("arcade_syntax")
    side, image1, image2, lone = (tmp_path / n for n in ("side.json", "1.png", "2.png", "lone.h5"))
    cases = [Case("a", Source(image1, read_image), "train", masks={"segment_1": Source(side, read_image)}),
             Case("b", Source(image2, read_image), "train", masks={"segment_1": Source(side, read_image)}),
             Case("c", Source(lone, read_image), "train")]
    shared = shared_files(cases)
    assert shared == {side}
    side.write_text("{}")
    image1.write_bytes(b"x")
    assert _presence(card, cases[0], shared) == "present"
    assert _presence(card, cases[1], shared) == "absent"  # only the shared side file is there
    assert _presence(card, cases[2], shared) == "absent"
    side.unlink()
    with pytest.raises(ConversionError, match="side.json"):
        _presence(card, cases[0], shared)  # its own image is there: the shared file is required
