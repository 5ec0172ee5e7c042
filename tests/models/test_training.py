"""Training: prompted samples, the reference loss, schedule, loop, checkpoints and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from omnimedseg.data.medsegdb import MedSegDBDataset
from omnimedseg.data.preprocessing import box_from_mask
from omnimedseg.models import ModelConfig, ModelError, build_model, medsegx_checkpoint_keys, predict
from omnimedseg.models.training import (
    PromptedSamples,
    TrainConfig,
    lr_factor,
    per_mask_loss,
    segmentation_loss,
    train,
)
from tests.data.conftest import hc18, organs  # noqa: F401  (fixtures)
from tests.helpers import run_cli

TINY = ModelConfig.preset("tiny_medsegx")


@pytest.fixture(autouse=True)
def _two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def example(realdata):
    return MedSegDBDataset(realdata("medsegdb_example") / "eval")


def fresh_model(seed: int = 0, **changes):
    torch.manual_seed(seed)
    return build_model(TINY.replace(**changes) if changes else TINY)


def sam_source(model) -> dict[str, torch.Tensor]:
    """What the SAM file provides for a MedSegX model: every tensor MedSegX does not own."""
    owned = set(medsegx_checkpoint_keys(model.config))
    return {k: v.clone() for k, v in model.state_dict().items() if k not in owned}


# -- loss and schedule ---------------------------------------------------------------------
def test_loss_equals_monai_dice_bce_minimum_over_masks():
    monai_losses = pytest.importorskip("monai.losses")
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, 24, 24, generator=gen) * 3
    target = torch.rand(4, 24, 24, generator=gen) > 0.6
    dice = monai_losses.DiceLoss(sigmoid=True, squared_pred=True, reduction="none")
    bce = torch.nn.BCEWithLogitsLoss(reduction="none")
    per_mask = []
    for m in range(3):  # the reference's loop over the three masks
        out, lab = logits[:, m:m + 1], target[:, None].float()
        per_mask.append(dice(out, lab).reshape(4) + bce(out, lab).mean(dim=(1, 2, 3)))
    expected = torch.stack(per_mask).min(dim=0).values.mean()
    assert torch.allclose(per_mask_loss(logits, target), torch.stack(per_mask, 1), atol=1e-6)
    assert torch.allclose(segmentation_loss(logits, target), expected, atol=1e-6)


def test_loss_takes_the_best_mask_per_image():
    target = torch.zeros(2, 16, 16, dtype=torch.bool)
    target[:, 4:12, 4:12] = True
    good = torch.where(target, 20.0, -20.0)
    logits = torch.stack([-good, good, torch.zeros_like(good)], dim=1)  # mask 1 is perfect
    logits[1] = logits[1][[2, 0, 1]]  # image 1: the perfect mask is the third
    assert segmentation_loss(logits, target).item() < 1e-3
    assert per_mask_loss(logits, target)[0, 0].item() > 1.0


def test_learning_rate_schedules():
    assert [lr_factor(s, 10) for s in (0, 5, 9)] == [1.0, 1.0, 1.0]
    warm = [lr_factor(s, 10, "cosine", warmup_steps=4) for s in range(10)]
    assert warm[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(warm[3:], warm[4:])) and warm[-1] > 0
    assert lr_factor(10, 10, "cosine", min_ratio=0.1) == pytest.approx(0.1)
    with pytest.raises(ModelError):
        lr_factor(0, 10, "linear")
    with pytest.raises(ModelError):
        TrainConfig(schedule="step")
    assert TrainConfig.recipe("finetune").lr == 5e-5 and TrainConfig.recipe("pretrain", lr=1e-3).lr == 1e-3


# -- samples -------------------------------------------------------------------------------
def test_samples_from_medsegdb_have_tight_or_seeded_boxes(example):
    tight = PromptedSamples(example)
    assert len(tight) == 14 and tight.skipped == []
    item = tight[0]
    assert item["image"].shape == (3, 256, 256) and item["image"].dtype == torch.uint8
    assert item["mask"].dtype == torch.bool and item["context"].tolist() == [2, 1, 4, 17, 59]  # CT_Liver
    label = np.load(example.items[0].label) > 0
    assert np.array_equal(item["mask"].numpy(), label)
    assert item["box"].tolist() == box_from_mask(label).tolist()

    shifted = tight.with_options(box_shift=19, seed=7)
    boxes = [shifted[0]["box"] for _ in range(2)]
    assert torch.equal(boxes[0], boxes[1])  # same seed, epoch and item: same box
    grow = (boxes[0] - item["box"]) * torch.tensor([-1, -1, 1, 1])
    assert ((grow >= 0) & (grow <= 19)).all() and grow.sum() > 0
    assert (boxes[0] >= 0).all() and (boxes[0] <= 255).all()
    others = []
    for epoch in range(1, 4):
        shifted.set_epoch(epoch)
        others.append(shifted[0]["box"])
    assert any(not torch.equal(b, boxes[0]) for b in others)
    assert PromptedSamples(example, size=96)[0]["image"].shape == (3, 96, 96)


def test_samples_from_converted_slices_and_collections(organs):  # noqa: F811
    from omnimedseg.data import ConvertedDataset, SliceDataset
    from omnimedseg.data.collection import DatasetCollection

    slices = PromptedSamples(SliceDataset("organs3d", **organs), size=96)
    # liver on slices 1-2 and spleen on slice 4 of each of the two volumes
    assert len(slices) == 6 and {e.channel for e in slices.entries} == {0, 1}
    assert [slices.describe(p)["task"] for p in range(3)] == ["CT_Liver", "CT_Liver", "CT_Spleen"]
    item = slices[2]
    assert item["context"].tolist()[-1] == 64 and item["mask"].any() and item["image"].shape == (3, 96, 96)
    collection = PromptedSamples(DatasetCollection(["organs3d"], **organs), size=96)
    assert [e.channel for e in collection.entries] == [e.channel for e in slices.entries]
    assert torch.equal(collection[2]["image"], item["image"])
    with pytest.raises(ModelError, match="3D volumes"):
        PromptedSamples(ConvertedDataset("organs3d", **organs))


def test_unmapped_classes_are_skipped_and_an_empty_result_is_an_error(hc18):  # noqa: F811
    from omnimedseg.data import ConvertedDataset

    with pytest.raises(ModelError, match="no usable labelled image.*no MedSegDB context"):
        PromptedSamples(ConvertedDataset("hc18", **hc18))


def test_subsets_are_deterministic_nested_and_by_case(example):
    samples = PromptedSamples(example)
    cases = {e.group for e in samples.entries}
    small, large = samples.subset(25, seed=3), samples.subset(50, seed=3)
    assert [e.index for e in small.entries] == [e.index for e in samples.subset(25, seed=3).entries]
    assert {e.group for e in small.entries} <= {e.group for e in large.entries}
    assert len({e.group for e in small.entries}) == round(len(cases) * 0.25)
    assert {e.group for e in samples.subset(25, seed=4).entries} != {e.group for e in small.entries}
    with pytest.raises(ModelError):
        samples.subset(0)


# -- training ------------------------------------------------------------------------------
def test_tiny_model_loss_falls_on_real_slices_and_only_trainable_parts_change(example, tmp_path):
    model = fresh_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    samples = PromptedSamples(example, size=TINY.image_size)
    result = train(model, samples, TrainConfig(lr=3e-3, batch_size=7, epochs=5, seed=0), tmp_path)
    assert result.steps == 10 and len(result.losses) == 10
    assert np.mean(result.losses[-3:]) < np.mean(result.losses[:3]) - 0.1, result.losses
    owned = set(medsegx_checkpoint_keys(TINY))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in after if k not in owned)
    assert not torch.equal(before["mask_decoder.mask_tokens.weight"], after["mask_decoder.mask_tokens.weight"])
    assert not torch.equal(before["image_encoder.organ_embed.4.weight"], after["image_encoder.organ_embed.4.weight"])
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 11)) and log[0]["loss"] == pytest.approx(result.losses[0])


def test_checkpoint_is_the_medsegx_format_and_round_trips_through_build_model(example, tmp_path):
    model = fresh_model()
    samples = PromptedSamples(example, size=TINY.image_size)
    result = train(model, samples, TrainConfig(lr=1e-3, batch_size=7, max_steps=1, seed=0), tmp_path)
    payload = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    assert sorted(payload["model"]) == sorted(medsegx_checkpoint_keys(TINY))
    assert {"optimizer", "scheduler", "epoch", "step", "rng", "train_config", "model_config"} <= set(payload)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left nothing behind
    loaded = build_model(TINY, sam_source(model), medsegx_checkpoint=result.checkpoint)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    image, box = samples[3]["image"], samples[3]["box"]
    a = predict(model, image, boxes=box, context="MRI_ProstatePeripheralZone")
    b = predict(loaded, image, boxes=box, context="MRI_ProstatePeripheralZone")
    assert torch.equal(a.logits, b.logits)


def test_resume_after_an_interruption_equals_an_uninterrupted_run(example, tmp_path):
    samples = PromptedSamples(example, size=TINY.image_size)
    # Cosine + warm-up, accumulation and expert dropout: optimizer, scheduler and RNG must all resume.
    config = TrainConfig(lr=2e-3, batch_size=4, accumulate=2, max_steps=4, schedule="cosine", warmup_steps=1,
                         save_every=1, seed=5)
    straight = fresh_model()
    full = train(straight, samples, config, tmp_path / "a")

    class Stop(Exception):
        pass

    def stop_at_four(record):
        if record["step"] == 4:
            raise Stop

    interrupted = fresh_model()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / ".model_latest.pth.99999.tmp").write_bytes(b"")  # a save killed by SIGKILL, long ago
    with pytest.raises(Stop):
        train(interrupted, samples, config, tmp_path / "b", log=stop_at_four)
    assert torch.load(tmp_path / "b" / "model_latest.pth", weights_only=True)["step"] == 3  # mid-epoch 1
    resumed = fresh_model()  # the same SAM weights, as a real run reloads them from the SAM file
    with torch.no_grad():  # ...but other trainable tensors: they must come from the checkpoint
        for _, p in resumed.trainable_parameters():
            p.normal_()
    part = train(resumed, samples, config, tmp_path / "b", resume="auto")
    assert part.steps == 4 and part.losses == pytest.approx(full.losses[3:], rel=1e-5)
    # step 4 was logged before the interruption, not saved: logged once, not twice
    logged = [json.loads(line)["step"] for line in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4]
    assert not list((tmp_path / "b").glob(".*.tmp"))
    for (name, p), (_, q) in zip(straight.trainable_parameters(), resumed.trainable_parameters()):
        assert torch.allclose(p, q, atol=1e-6), name


def test_bf16_autocast_and_errors(example, tmp_path):
    samples = PromptedSamples(example, size=TINY.image_size)
    result = train(fresh_model(), samples, TrainConfig(batch_size=4, max_steps=1, amp="bf16"), tmp_path)
    assert result.steps == 1 and np.isfinite(result.losses[0])
    with pytest.raises(ModelError, match="256 px but the model takes 96"):
        train(fresh_model(), PromptedSamples(samples.dataset), TrainConfig(max_steps=1), tmp_path)
    with pytest.raises(ModelError, match="cannot make one optimizer step"):
        train(fresh_model(), samples.subset(5), TrainConfig(batch_size=1, accumulate=8), tmp_path / "c")
    with pytest.raises(ModelError):
        TrainConfig(amp="int8")


def test_train_cli_writes_a_checkpoint_and_refuses_without_weights(example, tmp_path):
    data = example.items[0].image.parents[4]  # .../eval
    sam_file = tmp_path / "sam_tiny.pth"
    torch.save(sam_source(fresh_model()), sam_file)
    out = tmp_path / "run"
    result = run_cli("train", out, "--model", "tiny_medsegx", "--sam-checkpoint", sam_file, "--data", data,
                     "--batch-size", "5", "--max-steps", "2", "--lr", "1e-3", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["steps"] == 2 and (out / "model_latest.pth").is_file()
    assert summary["images"] == 10  # ID files only: OOD/RealWorld inference files are never trained on
    again = run_cli("train", out, "--model", "tiny_medsegx", "--sam-checkpoint", sam_file, "--data", data,
                    "--batch-size", "5", "--max-steps", "3", "--lr", "1e-3", "--resume", "auto", "--json")
    assert again.exit_code == 0 and json.loads(again.output.strip().splitlines()[-1])["steps"] == 3
    other = run_cli("train", out, "--model", "tiny_medsegx", "--sam-checkpoint", sam_file, "--data", data,
                    "--batch-size", "4", "--max-steps", "4", "--resume", "auto")
    error = [line for line in other.output.splitlines() if line.startswith("Error:")]
    assert other.exit_code == 1 and len(error) == 1 and "batch_size 5 -> 4" in error[0]
    # --seed makes a run from the SAM file alone repeatable: the weights it does not hold are drawn from it
    losses = []
    for run in ("s1", "s2"):
        seeded = run_cli("train", tmp_path / run, "--model", "tiny_medsegx", "--sam-checkpoint", sam_file, "--data",
                         data, "--batch-size", "5", "--max-steps", "2", "--lr", "1e-3", "--seed", "3", "--json")
        assert seeded.exit_code == 0, seeded.output
        losses.append([json.loads(line)["loss"] for line in (tmp_path / run / "train_log.jsonl").read_text().splitlines()])
    assert losses[0] == losses[1]
    refused = run_cli("train", out, "--model", "tiny_medsegx", "--data", data)
    assert refused.exit_code == 2 and refused.output.count("\n") == 1 and "--random-init" in refused.output
