"""SDPA with the relative-position bias as additive mask equals the explicit softmax form."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from omnimedseg.models import ModelConfig, Sam
from omnimedseg.models.image_encoder import (
    Attention,
    decomposed_rel_pos_bias,
    explicit_attention,
    padded_keys_bias,
    rel_pos_attention,
    relative_position_table,
    window_partition,
    window_unpartition,
)


def random_attention(dim: int, heads: int, size: tuple[int, int], qkv_bias: bool = True) -> Attention:
    """An Attention whose position tables (zero at init) and, optionally, qkv bias (the padded
    tokens' key and value) are random, so that both matter."""
    attn = Attention(dim, heads, input_size=size)
    with torch.no_grad():
        attn.rel_pos_h.normal_(0, 0.5)
        attn.rel_pos_w.normal_(0, 0.5)
        if qkv_bias:
            attn.qkv.bias.normal_(0, 1.0)
    return attn


def test_sdpa_with_bias_matches_explicit_softmax():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 20, 8) for _ in range(3))
    bias = torch.randn(2, 3, 20, 20)
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    scores = q @ k.transpose(-2, -1) / 8**0.5 + bias
    by_hand = torch.softmax(scores, dim=-1) @ v
    assert torch.allclose(fused, by_hand, atol=1e-5)
    assert torch.allclose(explicit_attention(q, k, v, bias, 8**-0.5), by_hand, atol=1e-6)


def test_relative_position_table_indexes_offsets():
    table = torch.arange(7 * 2, dtype=torch.float32).reshape(7, 2)  # offsets -3..3
    rel = relative_position_table(table, 4, 4)
    assert rel.shape == (4, 4, 2)
    for i in range(4):
        for j in range(4):
            assert torch.equal(rel[i, j], table[i - j + 3])


def test_decomposed_bias_matches_elementwise_definition():
    torch.manual_seed(1)
    h, w, d = 3, 4, 5
    q = torch.randn(2, h * w, d)
    rel_h, rel_w = torch.randn(2 * h - 1, d), torch.randn(2 * w - 1, d)
    bias = decomposed_rel_pos_bias(q, rel_h, rel_w, (h, w), (h, w))
    qi = q.reshape(2, h, w, d)
    expected = torch.empty(2, h, w, h, w)
    for a in range(h):
        for b in range(w):
            for c in range(h):
                for e in range(w):
                    expected[:, a, b, c, e] = qi[:, a, b] @ rel_h[a - c + h - 1] + qi[:, a, b] @ rel_w[b - e + w - 1]
    assert torch.allclose(bias, expected.reshape(2, h * w, h * w), atol=1e-5)


@pytest.mark.parametrize("window", [0, 4])
def test_attention_module_sdpa_equals_explicit(window):
    """Window 4 on a 6x7 grid pads to 8x8: the bias-padded fast path equals zero padding."""
    torch.manual_seed(2)
    size = (window, window) if window else (6, 7)
    attn = random_attention(32, 4, size)
    x = torch.randn(2, 6, 7, 32)
    run = (lambda a: a.forward_windowed(x, window)) if window else (lambda a: a(x))
    out_sdpa = run(attn)
    attn.attn_impl = "explicit"
    out_explicit = run(attn)
    assert out_sdpa.shape == x.shape
    assert torch.allclose(out_sdpa, out_explicit, atol=1e-5)
    if window:  # the explicit path is the reference order: pad x with zeros, attend, crop
        windows, padded = window_partition(x, window)
        reference = window_unpartition(attn(windows), window, padded, (6, 7))
        assert torch.allclose(out_explicit, reference, atol=1e-6)
    other = Attention(32, 4, input_size=size)
    assert not torch.allclose(out_sdpa, run(other), atol=1e-3)  # weights matter


@pytest.mark.parametrize("h, w, d", [(6, 7, 8), (8, 8, 16), (5, 3, 12)])
def test_rel_pos_folded_into_dot_product_equals_additive_mask(h, w, d):
    """The large-grid path (no N x N mask) equals the explicit biased softmax."""
    torch.manual_seed(5)
    q, k, v = (torch.randn(2, 3, h * w, d) for _ in range(3))
    rel_h, rel_w = torch.randn(2 * h - 1, d), torch.randn(2 * w - 1, d)
    bias = decomposed_rel_pos_bias(q, rel_h, rel_w, (h, w), (h, w))
    expected = explicit_attention(q, k, v, bias, d**-0.5)
    folded = rel_pos_attention(q, k, v, rel_h, rel_w, (h, w), d**-0.5)
    assert folded.shape == expected.shape
    assert torch.allclose(folded, expected, atol=1e-5)


def test_attention_module_switches_to_the_folded_path_on_large_grids():
    torch.manual_seed(6)
    attn = random_attention(32, 4, (9, 9), qkv_bias=False)
    x = torch.randn(2, 9, 9, 32)
    masked = attn(x)
    attn.max_tokens_for_mask = 16  # 81 tokens > 16: folded path
    folded = attn(x)
    attn.attn_impl = "explicit"
    assert torch.allclose(masked, folded, atol=1e-5)
    assert torch.allclose(folded, attn(x), atol=1e-5)


def test_window_partition_round_trips_with_padding():
    x = torch.randn(2, 6, 7, 3)
    windows, padded = window_partition(x, 4)
    assert windows.shape == (2 * 2 * 2, 4, 4, 3) and padded == (8, 8)
    assert torch.equal(windows[0], x[0, :4, :4])
    assert torch.equal(window_unpartition(windows, 4, padded, (6, 7)), x)
    assert torch.equal(windows[-1, -1, -1], torch.zeros(3))  # zero padding, as SAM


def test_whole_model_sdpa_equals_explicit():
    torch.manual_seed(3)
    model = Sam(ModelConfig.preset("tiny_medsegx")).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    images = torch.rand(2, 3, 96, 96) * 255
    boxes = torch.tensor([[10.0, 10.0, 60.0, 70.0], [0.0, 5.0, 95.0, 90.0]])
    context = torch.tensor([[2, 1, 4, 17, 59], [7, 2, 7, 29, 86]])
    with torch.no_grad():
        logits_sdpa, iou_sdpa = model(images, boxes=boxes, context=context)
        model.set_attention_implementation("explicit")
        assert model.image_encoder.blocks[0].attn.attn_impl == "explicit"
        assert model.mask_decoder.transformer.layers[0].self_attn.attn_impl == "explicit"
        logits_explicit, iou_explicit = model(images, boxes=boxes, context=context)
    assert logits_sdpa.shape == (2, 3, 96, 96)
    assert torch.allclose(logits_sdpa, logits_explicit, atol=1e-4)
    assert torch.allclose(iou_sdpa, iou_explicit, atol=1e-5)


@pytest.mark.parametrize("grid, window", [((16, 16), 14), ((8, 8), 4), ((4, 4), 4), ((9, 5), 4)])
def test_windowed_sdpa_with_real_queries_only_equals_explicit(grid, window):
    """MedSegX's 16x16 grid in 14-token windows (full, right, bottom and corner windows), whole
    windows only, one window, and a grid narrower than a window: the sdpa path (real tokens
    as queries, bias-padded keys) equals SAM's zero-pad-attend-crop order."""
    torch.manual_seed(7)
    attn = random_attention(48, 3, (window, window))
    x = torch.randn(2, *grid, 48)
    out_sdpa = attn.forward_windowed(x, window)
    attn.attn_impl = "explicit"
    out_explicit = attn.forward_windowed(x, window)
    assert out_sdpa.shape == x.shape
    assert torch.allclose(out_sdpa, out_explicit, atol=1e-5)
    assert not torch.allclose(out_sdpa, attn.forward_windowed(x.flip(1), window), atol=1e-3)


@pytest.mark.parametrize("rh, rw", [(14, 2), (2, 14), (2, 2), (5, 9)])
def test_padded_keys_bias_is_the_log_sum_over_padded_positions(rh, rw):
    """The merged padding key of a cut window: log sum of exp(rel_h + rel_w) over the padded
    (kh >= rh or kw >= rw) positions, summed one by one here."""
    torch.manual_seed(8)
    ws = 14
    rel_h, rel_w = torch.randn(2, 3, 6, ws) * 4, torch.randn(2, 3, 6, ws) * 4
    full = rel_h[..., :, None] + rel_w[..., None, :]  # (..., kh, kw)
    padded = torch.ones(ws, ws, dtype=torch.bool)
    padded[:rh, :rw] = False
    expected = full[..., padded].logsumexp(-1)
    assert torch.allclose(padded_keys_bias(rel_h, rel_w, rh, rw), expected, atol=1e-5)


def test_float64_cut_windows_keep_float64_precision():
    """The merged padding key is computed in float32 or wider: a float64 model (gradient checks) keeps
    float64 agreement with the explicit path instead of float32 rounding."""
    torch.manual_seed(11)
    attn = random_attention(32, 4, (14, 14)).double()
    with torch.no_grad():
        attn.rel_pos_h.normal_(0, 80)
        attn.rel_pos_w.normal_(0, 80)
    x = torch.randn(2, 13, 14, 32, dtype=torch.float64)
    out_sdpa = attn.forward_windowed(x, 14)
    attn.attn_impl = "explicit"
    out_explicit = attn.forward_windowed(x, 14)
    assert out_sdpa.dtype == torch.float64
    assert (out_sdpa - out_explicit).abs().max() <= 1e-12 * out_explicit.abs().max()


def test_cut_windows_without_position_bias_equal_explicit():
    """Without relative positions the merged padding key carries log(number of padded keys)."""
    torch.manual_seed(9)
    attn = Attention(32, 4, input_size=(4, 4), use_rel_pos=False)
    with torch.no_grad():
        attn.qkv.bias.normal_(0, 1.0)
    x = torch.randn(2, 6, 7, 32)
    out_sdpa = attn.forward_windowed(x, 4)
    attn.attn_impl = "explicit"
    assert torch.allclose(out_sdpa, attn.forward_windowed(x, 4), atol=1e-5)


def _compiled_attention_matches_eager(backend: str) -> None:
    """The GPU path compiles the encoder: its window (cut windows, merged padding key) and
    global attention must trace without graph breaks and compute what eager does."""
    torch.manual_seed(10)
    x = torch.randn(2, 6, 7, 32)
    for window in (4, 0):
        attn = random_attention(32, 4, (window, window) if window else (6, 7))
        run = (lambda a, t: a.forward_windowed(t, window)) if window else (lambda a, t: a(t))
        compiled = torch.compile(lambda t: run(attn, t), fullgraph=True, backend=backend)
        with torch.no_grad():
            assert torch.allclose(compiled(x), run(attn, x), atol=1e-5)


def test_attention_traces_whole_for_torch_compile():
    _compiled_attention_matches_eager("aot_eager")


@pytest.mark.slow
def test_attention_compiles_with_inductor_on_cpu():
    """Inductor code generation (~20 s on CPU: opt in with -m slow)."""
    _compiled_attention_matches_eager("inductor")


def test_bf16_autocast_attention_stays_close_to_float32():
    """The GPU path runs in bf16 autocast: both attention paths run and stay near float32."""
    torch.manual_seed(11)
    attn = random_attention(32, 4, (4, 4), qkv_bias=False)
    x = torch.randn(2, 6, 7, 32)
    full = attn.forward_windowed(x, 4)
    for impl in ("sdpa", "explicit"):
        attn.attn_impl = impl
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = attn.forward_windowed(x, 4)
        assert half.dtype == torch.bfloat16
        assert (half.float() - full).abs().max() < 0.05 * full.abs().max()
