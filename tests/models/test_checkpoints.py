"""Official key names and shapes, strict loading, SAM -> MedSegX adaptation, clear errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from omnimedseg.errors import OmnimedsegError
from omnimedseg.models import (
    OFFICIAL_CHECKPOINTS,
    CheckpointError,
    CheckpointNotFoundError,
    ModelConfig,
    Sam,
    build_medsegx,
    build_model,
    expected_shapes,
    load_sam,
    medsegx_checkpoint_keys,
)


def random_state_dict(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.rand(s, generator=gen) for k, s in shapes.items()}


@pytest.mark.parametrize("preset, listing", [
    ("sam_vit_b", "official_sam_vit_b_keys.json"),
    ("sam_vit_l", "official_sam_vit_l_keys.json"),
    ("sam_vit_h", "official_sam_vit_h_keys.json"),
    ("medsam_vit_b", "official_sam_vit_b_keys.json"),
    ("medsegx_vit_b", "medsegx_vit_b_full_keys.json"),
])
def test_state_dict_keys_and_shapes_equal_the_official_listing(preset, listing, official_keys):
    # Built on the meta device: ViT-H costs no memory here.
    assert expected_shapes(ModelConfig.preset(preset)) == official_keys(listing)


def test_medsegx_checkpoint_keys_equal_the_official_listing(official_keys):
    listing = official_keys("medsegx_vit_b_checkpoint_keys.json")
    keys = medsegx_checkpoint_keys(ModelConfig.preset("medsegx_vit_b"))
    assert sorted(keys) == sorted(listing) and len(keys) == 398


@pytest.fixture(scope="module")
def sam_vit_b_state():
    """Random tensors with exactly the official ViT-B key names and shapes (~90M values)."""
    return random_state_dict(expected_shapes(ModelConfig.preset("sam_vit_b")))


def test_official_vit_b_state_dict_loads_strictly(sam_vit_b_state, official_keys):
    assert {k: tuple(v.shape) for k, v in sam_vit_b_state.items()} == official_keys("official_sam_vit_b_keys.json")
    model = load_sam("sam_vit_b", sam_vit_b_state)
    loaded = model.state_dict()
    for key in ("image_encoder.pos_embed", "image_encoder.blocks.11.attn.rel_pos_h",
                "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix", "mask_decoder.mask_tokens.weight"):
        assert torch.equal(loaded[key], sam_vit_b_state[key])
    assert model.pixel_mean.device.type == "cpu" and model.pixel_mean.flatten().tolist() == \
        pytest.approx([123.675, 116.28, 103.53])
    # The same tensors load into a freshly initialised model with torch's own strict=True.
    with torch.device("meta"):
        fresh = Sam(ModelConfig.preset("sam_vit_b"))
    fresh.load_state_dict(sam_vit_b_state, strict=True, assign=True)


def test_medsegx_vit_b_is_assembled_like_the_reference(sam_vit_b_state, official_keys):
    cfg = ModelConfig.preset("medsegx_vit_b")
    medsegx = random_state_dict(official_keys("medsegx_vit_b_checkpoint_keys.json"), seed=1)
    model = build_medsegx(cfg, sam_vit_b_state, {"model": medsegx, "epoch": 29})
    state = model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == official_keys("medsegx_vit_b_full_keys.json")

    pos = sam_vit_b_state["image_encoder.pos_embed"].permute(0, 3, 1, 2)
    expected_pos = F.interpolate(pos, size=(16, 16), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    assert torch.allclose(state["image_encoder.pos_embed"], expected_pos)
    for block in (2, 5, 8, 11):  # global blocks: 127 -> 31 rows
        key = f"image_encoder.blocks.{block}.attn.rel_pos_w"
        table = sam_vit_b_state[key][None, None]
        expected = F.interpolate(table, size=(31, 64), mode="bilinear", align_corners=False)[0, 0]
        assert torch.allclose(state[key], expected)
    # Window blocks keep their 27-row tables; MLPs move under the ConMoAE wrapper unchanged.
    assert torch.equal(state["image_encoder.blocks.0.attn.rel_pos_h"], sam_vit_b_state["image_encoder.blocks.0.attn.rel_pos_h"])
    assert torch.equal(state["image_encoder.blocks.7.mlp.mlp.lin2.weight"], sam_vit_b_state["image_encoder.blocks.7.mlp.lin2.weight"])
    assert torch.equal(state["prompt_encoder.point_embeddings.2.weight"], sam_vit_b_state["prompt_encoder.point_embeddings.2.weight"])
    # Everything MedSegX trained comes from its checkpoint, also where SAM has the same shape.
    for key in ("mask_decoder.transformer.layers.0.mlp.lin1.weight", "mask_decoder.output_upscaling.9.weight",
                "image_encoder.organ_embed.4.weight", "image_encoder.blocks.3.mlp.adapter_up.2.weight"):
        assert torch.equal(state[key], medsegx[key])


def test_medsegx_checkpoint_errors_list_the_keys(sam_vit_b_state, official_keys):
    cfg = ModelConfig.preset("medsegx_vit_b")
    shapes = official_keys("medsegx_vit_b_checkpoint_keys.json")
    medsegx = {k: torch.zeros(s) for k, s in shapes.items()}
    del medsegx["image_encoder.blocks.4.mlp.adapter_gate.bias"]
    medsegx["mask_decoder.output_upscaling.9.bias"] = torch.zeros(32)
    medsegx["image_encoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as info:
        build_medsegx(cfg, sam_vit_b_state, {"model": medsegx})
    message = str(info.value)
    assert "MedSegX checkpoint" in message
    assert "1 missing keys: image_encoder.blocks.4.mlp.adapter_gate.bias" in message
    assert "1 unexpected keys: image_encoder.extra.weight" in message
    assert "mask_decoder.output_upscaling.9.bias (32,) != (8,)" in message


def test_sam_checkpoint_errors_list_missing_unexpected_and_misshapen_keys():
    cfg = ModelConfig.preset("tiny")
    state = random_state_dict(expected_shapes(cfg))
    del state["image_encoder.blocks.0.norm1.weight"]
    state["image_encoder.blocks.1.attn.qkv.bias"] = torch.zeros(5)
    state["image_encoder.not_a_key"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as info:
        load_sam(cfg, state)
    message = str(info.value)
    assert isinstance(info.value, OmnimedsegError)
    assert "image_encoder.blocks.0.norm1.weight" in message and "image_encoder.not_a_key" in message
    assert "image_encoder.blocks.1.attn.qkv.bias (5,) != (96,)" in message


def test_loaders_refuse_the_wrong_variant():
    with pytest.raises(CheckpointError, match="build_medsegx"):
        load_sam("tiny_medsegx", {})
    with pytest.raises(CheckpointError, match="no ConMoAE adapters"):
        build_medsegx("tiny", {}, None)
    with pytest.raises(CheckpointError, match="not a MedSegX config"):
        build_model("tiny", {}, {})


def test_window_block_with_wrong_table_is_not_silently_resized():
    cfg = ModelConfig.preset("tiny")
    state = random_state_dict(expected_shapes(cfg))
    state["image_encoder.blocks.0.attn.rel_pos_h"] = torch.zeros(9, 16)  # window 5 instead of 4
    with pytest.raises(CheckpointError, match=r"blocks\.0\.attn\.rel_pos_h \(9, 16\) != \(7, 16\)"):
        load_sam(cfg, state)


def test_missing_files_say_where_the_official_file_is_published(tmp_path):
    with pytest.raises(CheckpointNotFoundError) as info:
        load_sam("sam_vit_b", tmp_path / "sam_vit_b_01ec64.pth")
    assert OFFICIAL_CHECKPOINTS["sam_vit_b_01ec64.pth"] in str(info.value)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, OmnimedsegError)
    with pytest.raises(CheckpointNotFoundError, match="sam_vit_h_4b8939.pth"):
        load_sam("sam_vit_h", tmp_path / "weights.pth")  # unknown name: the preset's file is named
    tiny = ModelConfig.preset("tiny_medsegx")
    sam = random_state_dict(expected_shapes(tiny.replace(conmoae=False, decoder_upscale_stages=2)))
    with pytest.raises(CheckpointNotFoundError, match="drive.google.com"):
        build_medsegx(tiny, sam, tmp_path / "medsegx_vit_b.pth")


def test_checkpoint_files_round_trip_through_torch_save(tmp_path):
    cfg = ModelConfig.preset("tiny_medsegx")
    sam_cfg = cfg.replace(conmoae=False, decoder_upscale_stages=2, image_size=192)
    sam_state = random_state_dict(expected_shapes(sam_cfg))
    shapes = expected_shapes(cfg)
    medsegx = {k: torch.rand(shapes[k]) for k in medsegx_checkpoint_keys(cfg)}
    torch.save(sam_state, tmp_path / "sam.pth")
    torch.save({"model": medsegx, "optimizer": {"state": {}, "param_groups": []}, "epoch": 3}, tmp_path / "mx.pth")
    model = build_model(cfg, tmp_path / "sam.pth", tmp_path / "mx.pth")
    assert torch.equal(model.state_dict()["mask_decoder.iou_token.weight"], medsegx["mask_decoder.iou_token.weight"])
    # The 192-px SAM grid (12) was resized to the 96-px grid (6); global tables 23 -> 11 rows.
    assert model.image_encoder.pos_embed.shape == (1, 6, 6, 32)
    assert model.image_encoder.blocks[1].attn.rel_pos_h.shape == (11, 16)
    # Non-tensor pickles are refused unless trusted.
    torch.save({"model": medsegx, "note": object.__new__(_Opaque)}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="trust_checkpoint=True"):
        build_model(cfg, tmp_path / "sam.pth", tmp_path / "odd.pth")
    build_model(cfg, tmp_path / "sam.pth", tmp_path / "odd.pth", trust_checkpoint=True)


class _Opaque:
    pass


def test_medsegx_without_its_checkpoint_starts_as_sam():
    """Zero-initialised adapters: the image embedding equals plain SAM's at the same size."""
    cfg = ModelConfig.preset("tiny_medsegx")
    sam_cfg = cfg.replace(conmoae=False)
    torch.manual_seed(0)
    sam = Sam(sam_cfg)
    with torch.no_grad():
        for p in sam.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    medsegx = build_model(cfg, sam.state_dict())
    images = torch.rand(2, 3, 96, 96) * 255
    context = torch.tensor([[2, 1, 4, 17, 59], [4, 4, 11, 38, 111]])
    with torch.no_grad():
        assert torch.allclose(medsegx.encode_images(images, context), sam.eval().encode_images(images), atol=1e-5)
    with pytest.raises(CheckpointError, match="SAM checkpoint"):
        build_model(cfg, None, {"model": {}})


def _tiny_medsegx_and_sam_state():
    cfg = ModelConfig.preset("tiny_medsegx")
    return cfg, random_state_dict(expected_shapes(cfg.replace(conmoae=False)), seed=3)


def test_medsegx_without_its_checkpoint_drops_only_what_the_reference_drops_by_name():
    """MedSegX-code build_sam.load_from drops mask_tokens, output_hypernetworks_mlps and
    iou_prediction_head from the SAM file (whatever their shape) and loads the rest of the decoder."""
    cfg, sam = _tiny_medsegx_and_sam_state()
    state = build_model(cfg, sam).state_dict()
    dropped = [k for k in sam if k.startswith(("mask_decoder.mask_tokens", "mask_decoder.output_hypernetworks_mlps",
                                               "mask_decoder.iou_prediction_head"))]
    assert dropped and all(k in state and not torch.equal(state[k], sam[k]) for k in dropped)
    kept = [k for k in sam if k.startswith("mask_decoder.") and k not in dropped]
    assert kept and all(torch.equal(state[k], sam[k]) for k in kept)  # transformer, upscaling, iou token...


def test_medsegx_without_its_checkpoint_refuses_any_other_misshapen_tensor():
    cfg, sam = _tiny_medsegx_and_sam_state()
    key = "mask_decoder.transformer.layers.0.mlp.lin1.weight"
    right = tuple(sam[key].shape)
    sam[key] = torch.zeros(right[0] + 1, right[1])
    with pytest.raises(CheckpointError) as info:
        build_model(cfg, sam)  # was silently re-initialised
    message = str(info.value)
    assert f"misshapen tensors (checkpoint != model): {key} {(right[0] + 1, right[1])} != {right}" in message
    assert "missing" not in message


def test_plain_sam_reports_a_misshapen_decoder_tensor_as_misshapen():
    cfg = ModelConfig.preset("tiny")
    state = random_state_dict(expected_shapes(cfg))
    key = "mask_decoder.mask_tokens.weight"
    right = tuple(state[key].shape)
    state[key] = torch.zeros(right[0] + 2, right[1])
    with pytest.raises(CheckpointError) as info:
        load_sam(cfg, state)
    message = str(info.value)
    assert f"{key} {(right[0] + 2, right[1])} != {right}" in message and "missing" not in message
