"""Full-size ViT-B models with random official-shaped weights (opt in: ``pytest -m slow``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnimedseg.models import ModelConfig, build_medsegx, expected_shapes, load_sam, medsegx_checkpoint_keys, predict

pytestmark = pytest.mark.slow


def random_tensors(shapes, seed):
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=gen) * 0.02 for k, s in shapes.items()}


@pytest.fixture(scope="module")
def sam_b_state():
    return random_tensors(expected_shapes(ModelConfig.preset("sam_vit_b")), seed=0)


def test_medsegx_vit_b_sdpa_equals_explicit_on_real_slices(sam_b_state, realdata):
    cfg = ModelConfig.preset("medsegx_vit_b")
    shapes = expected_shapes(cfg)
    medsegx = random_tensors({k: shapes[k] for k in medsegx_checkpoint_keys(cfg)}, seed=1)
    model = build_medsegx(cfg, sam_b_state, {"model": medsegx})
    folder = realdata("medsegdb_example") / "eval" / "ID" / "AbdomenCT1K" / "CT_Liver"
    labels = sorted(folder.rglob("npy_gts/*.npy"))[:2]
    if not labels:
        pytest.skip("no CT_Liver example slices")
    images = np.stack([np.load(str(p).replace("npy_gts", "npy_imgs")) for p in labels])
    boxes = []
    for p in labels:
        ys, xs = np.nonzero(np.load(p))
        boxes.append([xs.min(), ys.min(), xs.max(), ys.max()])
    fast = predict(model, images, boxes=np.array(boxes), context="CT_Liver")
    model.set_attention_implementation("explicit")
    slow = predict(model, images, boxes=np.array(boxes), context="CT_Liver")
    assert fast.logits.shape == (len(labels), 3, 256, 256)
    assert torch.allclose(fast.logits, slow.logits, atol=1e-3, rtol=1e-3)


def test_sam_vit_b_at_1024_sdpa_equals_explicit(sam_b_state):
    model = load_sam("sam_vit_b", sam_b_state)
    image = torch.rand(1, 3, 300, 400) * 255
    fast = predict(model, image, boxes=[[50, 60, 250, 240]])
    model.set_attention_implementation("explicit")
    slow = predict(model, image, boxes=[[50, 60, 250, 240]])
    assert fast.logits.shape == (1, 3, 300, 400)
    assert torch.allclose(fast.logits, slow.logits, atol=1e-3, rtol=1e-3)
