"""Numerical parity with Meta's ``segment_anything`` package, when it is installed.

Not a dependency of omnimedseg: the test is skipped without it (``pip install
segment-anything``; its torchvision imports are stubbed, only the model classes are used).
"""

from __future__ import annotations

import importlib
import sys
import types
from functools import partial

import pytest
import torch

from omnimedseg.models import ModelConfig, load_sam


@pytest.fixture
def reference(monkeypatch):
    if importlib.util.find_spec("segment_anything") is None:
        pytest.skip("segment_anything (Meta's reference package) is not installed")
    if importlib.util.find_spec("torchvision") is None:
        stubs = {name: types.ModuleType(name) for name in (
            "torchvision", "torchvision.transforms", "torchvision.transforms.functional",
            "torchvision.ops", "torchvision.ops.boxes")}
        stubs["torchvision.transforms.functional"].resize = stubs["torchvision.transforms.functional"].to_pil_image = None
        stubs["torchvision.ops.boxes"].batched_nms = stubs["torchvision.ops.boxes"].box_area = None
        for name, module in stubs.items():
            monkeypatch.setitem(sys.modules, name, module)
    return importlib.import_module("segment_anything.modeling")


def build_reference(ref, c: ModelConfig):
    g = c.grid_size
    return ref.Sam(
        image_encoder=ref.ImageEncoderViT(
            depth=c.encoder_depth, embed_dim=c.encoder_embed_dim, img_size=c.image_size, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=c.encoder_num_heads,
            patch_size=c.patch_size, qkv_bias=True, use_rel_pos=True,
            global_attn_indexes=c.encoder_global_attn_indexes, window_size=c.window_size,
            out_chans=c.prompt_embed_dim),
        prompt_encoder=ref.PromptEncoder(embed_dim=c.prompt_embed_dim, image_embedding_size=(g, g),
                                         input_image_size=(c.image_size, c.image_size),
                                         mask_in_chans=c.mask_in_chans),
        mask_decoder=ref.MaskDecoder(
            num_multimask_outputs=3, transformer_dim=c.prompt_embed_dim, iou_head_depth=3,
            iou_head_hidden_dim=c.iou_head_hidden_dim,
            transformer=ref.TwoWayTransformer(depth=c.decoder_depth, embedding_dim=c.prompt_embed_dim,
                                              mlp_dim=c.decoder_mlp_dim, num_heads=c.decoder_num_heads)),
        pixel_mean=list(c.pixel_mean), pixel_std=list(c.pixel_std)).eval()


@pytest.mark.parametrize("attn_impl", ["sdpa", "explicit"])
def test_logits_equal_the_reference_implementation(reference, attn_impl):
    torch.manual_seed(0)
    config = ModelConfig.preset("tiny", attn_impl=attn_impl)
    ref = build_reference(reference, config)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # also the zero-initialised rel-pos tables
    ours = load_sam(config, ref.state_dict())
    image = torch.rand(1, 3, 96, 96) * 255
    points = (torch.tensor([[[20.0, 30.0], [40.0, 45.0]]]), torch.tensor([[1, 0]]))
    box = torch.tensor([[10.0, 12.0, 50.0, 70.0]])
    mask = torch.randn(1, 1, 24, 24)
    with torch.no_grad():
        emb_ref = ref.image_encoder(ref.preprocess(image))
        emb = ours.encode_images(image)
        assert torch.allclose(emb, emb_ref, atol=1e-4)
        for prompts in ({"boxes": box}, {"points": points}, {"points": points, "boxes": box},
                        {"boxes": box, "masks": mask}):
            sparse, dense = ref.prompt_encoder(points=prompts.get("points"), boxes=prompts.get("boxes"),
                                               masks=prompts.get("masks"))
            low_ref, iou_ref = ref.mask_decoder(emb_ref, ref.prompt_encoder.get_dense_pe(), sparse, dense, True)
            low, iou = ours.decode(emb, boxes=prompts.get("boxes"), points=prompts.get("points"),
                                   mask_inputs=prompts.get("masks"), multimask_output=True)
            assert torch.allclose(low, low_ref, atol=1e-4), prompts.keys()
            assert torch.allclose(iou, iou_ref, atol=1e-5)
