"""The inference API: resizing, prompt mapping, batching, dtypes and autocast."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from omnimedseg.models import ModelConfig, ModelError, Sam, context_tensor, predict


def make_model(preset: str, seed: int = 0) -> Sam:
    torch.manual_seed(seed)
    model = Sam(ModelConfig.preset(preset)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.fixture(scope="module")
def sam():
    return make_model("tiny")


@pytest.fixture(scope="module")
def medsegx():
    model = make_model("tiny_medsegx", seed=1)
    with torch.no_grad():  # trained-looking adapters and embeddings, so the context matters
        for name, p in model.named_parameters():
            if "adapter_up" in name or "modal_embed" in name or "organ_embed" in name:
                p.normal_(0, 1.0)
    return model


def test_sam_predict_matches_the_manual_pipeline_on_a_non_square_image(sam):
    torch.manual_seed(0)
    image = torch.rand(1, 3, 48, 80) * 255
    box = torch.tensor([[8.0, 4.0, 60.0, 40.0]])
    pred = predict(sam, image, boxes=box)
    assert pred.logits.shape == (1, 3, 48, 80) and pred.logits.dtype == torch.float32
    assert pred.masks.dtype == torch.bool and torch.equal(pred.masks, pred.logits > 0)
    assert pred.iou_scores.shape == (1, 3) and pred.low_res_logits.shape == (1, 3, 24, 24)
    # By hand: longest side 80 -> 96 (48 -> 58), pad to 96x96, decode, crop, resize back;
    # coordinates scale per axis as in SAM's ResizeLongestSide.
    resized = F.interpolate(image, size=(58, 96), mode="bilinear", align_corners=False, antialias=True)
    sx, sy = 96 / 80, 58 / 48
    with torch.no_grad():
        low, iou = sam(resized, boxes=box * torch.tensor([sx, sy, sx, sy]))
    up = F.interpolate(low, size=(96, 96), mode="bilinear", align_corners=False)[..., :58, :96]
    expected = F.interpolate(up, size=(48, 80), mode="bilinear", align_corners=False)
    assert torch.allclose(pred.logits, expected, atol=1e-5)
    assert torch.allclose(pred.iou_scores, iou, atol=1e-6)


def test_batch_equals_one_by_one_and_numpy_equals_torch(medsegx):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 128, 128, 3), dtype=np.uint8)  # MedSegDB layout, not 96 px
    boxes = np.array([[10, 20, 90, 100], [0, 0, 127, 127], [40, 40, 60, 70]], dtype=np.float32)
    tasks = ["CT_Liver", "Dermoscopy_Skin", "MRI_ProstateTransitionalZone"]
    batched = predict(medsegx, images, boxes=boxes, context=tasks)
    assert batched.logits.shape == (3, 3, 128, 128)
    for i in range(3):
        single = predict(medsegx, torch.from_numpy(images[i]).permute(2, 0, 1).float(), boxes=boxes[i:i + 1],
                         context=tasks[i])
        assert torch.allclose(single.logits[0], batched.logits[i], atol=1e-4)
    by_rows = predict(medsegx, images, boxes=boxes, context=context_tensor(tasks))
    assert torch.allclose(by_rows.logits, batched.logits)
    other_task = predict(medsegx, images, boxes=boxes, context="US_GlndThyroid")
    assert not torch.allclose(other_task.logits, batched.logits, atol=1e-3)


def test_medsegx_masks_come_out_at_network_size_without_resizing(medsegx):
    images = torch.rand(2, 3, 96, 96) * 255
    boxes = torch.tensor([[5.0, 5.0, 50.0, 60.0], [20.0, 10.0, 90.0, 80.0]])
    context = torch.tensor([[2, 1, 4, 17, 59]] * 2)
    pred = predict(medsegx, images, boxes=boxes, context=context)
    with torch.no_grad():
        low, _ = medsegx(images, boxes=boxes, context=context)
    assert low.shape == (2, 3, 96, 96) and torch.allclose(pred.logits, low, atol=1e-6)
    best = pred.best_by_iou()
    assert best.shape == (2, 96, 96) and best.dtype == torch.bool


def test_points_masks_and_embedding_reuse(sam):
    image = torch.rand(1, 3, 96, 96) * 255
    points, labels = np.array([[[30, 40], [70, 20]]]), np.array([[1, 0]])
    first = predict(sam, image, points=points, point_labels=labels, multimask_output=False)
    assert first.logits.shape == (1, 1, 96, 96)
    # Next click with the previous low-res logits, reusing the image embedding.
    second = predict(sam, image, points=points, point_labels=labels, mask_inputs=first.low_res_logits,
                     image_embeddings=first.image_embeddings, multimask_output=False)
    assert not torch.allclose(first.logits, second.logits)
    # Mask inputs of another size are resized to the prompt encoder's 4 x grid.
    third = predict(sam, image, points=points, point_labels=labels,
                    mask_inputs=F.interpolate(first.low_res_logits, size=(50, 50)),
                    image_embeddings=first.image_embeddings, multimask_output=False)
    assert third.logits.shape == (1, 1, 96, 96)
    with pytest.raises(ModelError, match="point_labels"):
        predict(sam, image, points=points)
    with pytest.raises(ModelError, match="at least one prompt"):
        predict(sam, image)
    rgba = np.zeros((64, 80, 4), np.uint8)  # had been read as 64 grey images 80 x 4 pixels
    with pytest.raises(ModelError, match=r"shape \(64, 80, 4\): 4 channels last; expected grey or RGB"):
        predict(sam, rgba, boxes=[5, 5, 40, 40])


def test_several_prompts_on_one_image_and_one_prompt_for_several_images(sam):
    image = torch.rand(1, 3, 96, 96) * 255
    boxes = torch.tensor([[5.0, 5.0, 40.0, 40.0], [50.0, 50.0, 90.0, 90.0]])
    many = predict(sam, image, boxes=boxes)
    assert many.logits.shape == (2, 3, 96, 96)
    single = predict(sam, image, boxes=boxes[1:])
    assert torch.allclose(many.logits[1], single.logits[0], atol=1e-5)
    images = torch.rand(2, 3, 96, 96) * 255
    shared = predict(sam, images, boxes=boxes[:1])
    assert shared.logits.shape == (2, 3, 96, 96)
    assert torch.allclose(shared.logits[1], predict(sam, images[1:], boxes=boxes[:1]).logits[0], atol=1e-5)


def test_medsegx_requires_context(medsegx):
    with pytest.raises(ModelError, match="CT_Liver"):
        predict(medsegx, torch.rand(1, 3, 96, 96), boxes=[[1, 1, 20, 20]])


def test_bf16_autocast_path_runs_on_cpu_and_stays_close(medsegx):
    torch.manual_seed(4)
    images = torch.rand(2, 3, 96, 96) * 255
    boxes = torch.tensor([[10.0, 10.0, 70.0, 80.0]] * 2)
    full = predict(medsegx, images, boxes=boxes, context="CT_Liver")
    half = predict(medsegx, images, boxes=boxes, context="CT_Liver", autocast_dtype="bf16")
    assert half.logits.dtype == torch.float32 and half.image_embeddings.dtype == torch.bfloat16
    corr = torch.corrcoef(torch.stack([full.logits.flatten(), half.logits.flatten()]))[0, 1]
    assert corr > 0.98, corr
    with pytest.raises(ModelError, match="autocast dtype"):
        predict(medsegx, images, boxes=boxes, context="CT_Liver", autocast_dtype="int8")


def test_medsam_normalises_each_image_by_its_range():
    model = make_model("tiny").eval()
    model.config = model.config.replace(pixel_normalization="min_max")
    image = torch.rand(1, 3, 96, 96) * 100 + 50
    normalised = model.preprocess(image)
    assert normalised.min().item() == pytest.approx(0.0) and normalised.max().item() == pytest.approx(1.0)
    # Scaling the intensities does not change a min-max model's prediction.
    a = predict(model, image, boxes=[[10, 10, 50, 50]]).logits
    b = predict(model, image * 2 + 7, boxes=[[10, 10, 50, 50]]).logits
    assert torch.allclose(a, b, atol=1e-4)


def _medsegdb_slices(root):
    """(task name, image, label) for every example slice, task taken from the folder layout."""
    found = []
    for label_path in sorted(root.rglob("npy_gts/*.npy")):
        task = next(p for p in label_path.parts if "_" in p and p.split("_")[0] in
                    ("CT", "MRI", "Dermoscopy", "US", "xray", "Fundus", "Endoscope", "Colonoscopy", "CBCT"))
        image = np.load(str(label_path).replace("npy_gts", "npy_imgs"))
        found.append((task, image, np.load(label_path)))
    return found


def test_real_medsegdb_slices_run_with_their_task_context(realdata, medsegx):
    slices = _medsegdb_slices(realdata("medsegdb_example") / "eval")
    assert len(slices) == 14
    tasks = sorted({t for t, _, _ in slices})
    assert {"CT_Liver", "CT_StomachCancer", "MRI_ProstatePeripheralZone"} <= set(tasks)
    rows = context_tensor(tasks)  # every example task resolves (StomachCancer: unseen-task row)
    assert rows[tasks.index("CT_StomachCancer"), 4] == 111 and rows[tasks.index("CT_Liver"), 4] == 59
    images = np.stack([s[1] for s in slices[:4]])
    assert images.shape == (4, 256, 256, 3) and images.dtype == np.uint8
    boxes = []
    for _, _, label in slices[:4]:  # tight box of the label, as the reference evaluation
        ys, xs = np.nonzero(label)
        boxes.append([xs.min(), ys.min(), xs.max(), ys.max()])
    pred = predict(medsegx, images, boxes=np.array(boxes), context=[s[0] for s in slices[:4]])
    assert pred.logits.shape == (4, 3, 256, 256) and torch.isfinite(pred.logits).all()
