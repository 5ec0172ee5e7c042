"""ConMoAE adapters, context embeddings, gates and the trainable/frozen split."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from omnimedseg.models import ModelConfig, ModelError, Sam, context_tensor, medsegx_checkpoint_keys
from omnimedseg.models.common import MLPBlock
from omnimedseg.models.image_encoder import ConMoAEMLP


def randomise(module: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)


def loop_reference(m: ConMoAEMLP, x, modality, levels, task):
    """The reference formulation: every expert separately, then mixed by the gate."""
    experts = torch.stack([m.adapter_up[e](F.gelu(m.adapter_down[e](x))) for e in range(m.num_experts)], dim=1)
    level_gate = torch.softmax(m.adapter_organ_gate(torch.cat(levels, dim=-1)), dim=-1)
    organ = torch.einsum("bec,be->bc", torch.stack(levels, dim=1), level_gate)
    summary = m.adapter_input_embed(x.mean(dim=1).mean(dim=1))
    gate = torch.softmax(m.adapter_gate(torch.cat([organ, task, modality, summary], dim=-1)), dim=1)
    return m.mlp(x) + torch.einsum("bemnc,be->bmnc", experts, gate) * 0.1, gate


def test_fused_experts_equal_the_per_expert_loop():
    torch.manual_seed(0)
    m = ConMoAEMLP(MLPBlock(24, 48), num_experts=4, embed_dim=8, bottleneck=6, scale=0.1, dropout=0.1).eval()
    randomise(m)
    x = torch.randn(3, 5, 5, 24)
    levels = [torch.randn(3, 8) for _ in range(4)]
    modality, task = torch.randn(3, 8), torch.randn(3, 8)
    context = {"modality": modality, "organ_levels": torch.stack(levels, dim=1), "task": task}
    out, gate = m(x, context)
    ref_out, ref_gate = loop_reference(m, x, modality, levels, task)
    assert torch.allclose(out, ref_out, atol=1e-5)
    assert torch.allclose(gate, ref_gate, atol=1e-6)
    assert torch.allclose(gate.sum(dim=1), torch.ones(3))
    # The adapters contribute: without them the output differs.
    assert not torch.allclose(out, m.mlp(x), atol=1e-4)


def test_fresh_adapters_and_embeddings_follow_the_reference_initialisation():
    model = Sam(ModelConfig.preset("tiny_medsegx"))
    enc = model.image_encoder
    assert all(torch.count_nonzero(t.weight) == 0 for t in [enc.modal_embed, *enc.organ_embed])
    assert [t.num_embeddings for t in enc.organ_embed] == [1, 5, 12, 39, 112]
    adapter = enc.blocks[0].mlp
    assert torch.count_nonzero(adapter.adapter_up[3].weight) == 0
    assert torch.count_nonzero(adapter.adapter_down[3].bias) == 0
    assert torch.count_nonzero(adapter.adapter_down[3].weight) > 0


def test_dropout_acts_only_in_training():
    torch.manual_seed(1)
    m = ConMoAEMLP(MLPBlock(16, 32), 4, 8, 4, 0.1, dropout=0.5)
    randomise(m)
    x = torch.randn(2, 3, 3, 16)
    context = {"modality": torch.randn(2, 8), "organ_levels": torch.randn(2, 4, 8), "task": torch.randn(2, 8)}
    m.eval()
    assert torch.equal(m(x, context)[0], m(x, context)[0])
    m.train()
    assert not torch.allclose(m(x, context)[0], m(x, context)[0])


def test_context_changes_output_and_gates_are_returned():
    model = Sam(ModelConfig.preset("tiny_medsegx")).eval()
    randomise(model, seed=2)
    images = torch.rand(1, 3, 96, 96).expand(2, -1, -1, -1) * 255
    context = context_tensor(["CT_Liver", "MRI_ProstatePeripheralZone"])
    with torch.no_grad():
        emb, gates = model.image_encoder(model.preprocess(images), context, return_gates=True)
    assert gates.shape == (2, 4, 4) and torch.allclose(gates.sum(-1), torch.ones(2, 4))
    assert not torch.allclose(emb[0], emb[1], atol=1e-4)  # same image, different task
    assert not torch.allclose(gates[0], gates[1])


def test_missing_or_invalid_context_is_reported():
    model = Sam(ModelConfig.preset("tiny_medsegx")).eval()
    images = torch.rand(2, 3, 96, 96) * 255
    boxes = torch.tensor([[1.0, 2.0, 30.0, 40.0]] * 2)
    with pytest.raises(ModelError, match="needs a context"):
        model(images, boxes=boxes)
    with pytest.raises(ModelError, match=r"out of range in columns \['task'\]"):
        model(images, boxes=boxes, context=torch.tensor([[2, 1, 4, 17, 112]] * 2))
    with pytest.raises(ModelError, match="shape"):
        model(images, boxes=boxes, context=torch.tensor([[2, 1, 4, 17]] * 2))
    with pytest.raises(ModelError, match="2 images but 1 context rows"):
        model(images, boxes=boxes, context=torch.tensor([[2, 1, 4, 17, 1]]))


def test_trainable_split_matches_the_medsegx_checkpoint_and_gradients():
    cfg = ModelConfig.preset("tiny_medsegx")
    model = Sam(cfg)
    randomise(model, seed=3)
    trainable = model.freeze_encoders()
    assert trainable == sorted(medsegx_checkpoint_keys(cfg))
    assert any(".adapter_down." in n for n in trainable) and "image_encoder.modal_embed.weight" in trainable
    assert not any(n.startswith("prompt_encoder.") or n.endswith("attn.qkv.weight") for n in trainable)
    model.train()
    images = torch.rand(2, 3, 96, 96) * 255
    logits, _ = model(images, boxes=torch.tensor([[5.0, 5.0, 60.0, 60.0]] * 2),
                      context=torch.tensor([[2, 1, 4, 17, 59], [4, 4, 11, 38, 110]]))
    logits.mean().backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert grads <= set(trainable)
    assert "image_encoder.blocks.0.mlp.adapter_up.0.weight" in grads
    assert "mask_decoder.output_upscaling.0.weight" in grads
    assert all(not p.requires_grad for n, p in model.named_parameters() if n.startswith("prompt_encoder."))


def test_plain_sam_trains_only_its_mask_decoder():
    model = Sam(ModelConfig.preset("tiny"))
    names = model.freeze_encoders()
    assert names and all(n.startswith("mask_decoder.") for n in names)
