import json

import nibabel as nib
import numpy as np
import pytest

from omnimedseg.converters._run import collect_cases
from omnimedseg.errors import ConversionError
from omnimedseg.registry import load_registry
from omnimedseg.testing import check_converter
from tests.converters.fake import msd as fake

CARDS = {task: f"msd_task{task[4:6]}_{task.split('_')[1].lower()}" for task in fake.TASKS}


@pytest.mark.parametrize("task", sorted(fake.TASKS))
def test_msd_task_end_to_end(tmp_path, task):
    dataset_id = CARDS[task]
    out = check_converter(dataset_id, fake.remote_files(task), tmp_path, expected_splits={"train": 2, "test": 1})
    card = load_registry().get(dataset_id)
    pattern = fake.TASKS[task][0]
    dataset = json.loads((out / "dataset.json").read_text())
    assert sorted(c["case_id"] for c in dataset["cases"]) == sorted(pattern.format(n) for n in fake.TRAIN + fake.TEST)
    case = pattern.format(fake.TRAIN[1])
    expected = fake.label_map(task, fake.TRAIN[1])
    for value, name in card.classes.items():
        mask = np.asarray(nib.load(out / f"masks/{case}/{name}.nii.gz").dataobj).astype(bool)
        assert np.array_equal(mask, expected == value), name
    prov = json.loads((out / "provenance.json").read_text())["files"]
    if card.channels:
        for index, channel in enumerate(card.channels):
            data = np.asarray(nib.load(out / f"images/{case}/{channel}.nii.gz").dataobj)
            assert np.array_equal(data, fake.channel_values(index, fake.TRAIN[1])), channel
            entry = prov[f"images/{case}/{channel}.nii.gz"]
            assert entry["sources"][0]["path"] == f"{task}/imagesTr/{case}.nii.gz"
            assert f"index={index}" in entry["operation"]
        assert dataset["channel_names"] == {str(i): c for i, c in enumerate(card.channels)}
    else:
        assert prov[f"images/{case}.nii.gz"]["sources"][0]["path"] == f"{task}/imagesTr/{case}.nii.gz"
    assert prov[f"masks/{case}/{card.class_names[0]}.nii.gz"]["sources"][0]["path"] == \
        f"{task}/labelsTr/{case}.nii.gz"
    assert "CC-BY-SA-4.0" in (out / "LICENSE.txt").read_text()


def test_msd_dataset_json_that_disagrees_with_the_card_fails_loudly(tmp_path):
    task = "Task05_Prostate"
    release = tmp_path / task
    release.mkdir()
    data = fake.dataset_json(task)
    data["modality"] = {"0": "ADC", "1": "T2"}  # channels swapped
    (release / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(ConversionError, match=r"dataset\.json: channels .* card expects \['T2', 'ADC'\]"):
        collect_cases(load_registry().get(CARDS[task]), tmp_path)
    data = fake.dataset_json(task)
    data["labels"]["2"] = "CZ"
    (release / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(ConversionError, match=r"labels .*'cz'.* card expects"):
        collect_cases(load_registry().get(CARDS[task]), tmp_path)
