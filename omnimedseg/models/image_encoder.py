"""SAM's ViT image encoder, optionally with MedSegX's ConMoAE adapters.

Windowed blocks attend inside ``window_size`` windows (the grid is zero-padded up to a
multiple of the window, and the padded tokens take part in attention exactly as in SAM);
global blocks attend over the whole grid. Both add SAM's decomposed relative-position bias,
which is passed to ``scaled_dot_product_attention`` as an additive mask.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from omnimedseg.models.common import LayerNorm2d, MLPBlock
from omnimedseg.models.config import ModelConfig
from omnimedseg.models.errors import ModelError

CONTEXT_COLUMNS = ("modality", "organ_level1", "organ_level2", "organ_level3", "task")


# -- windows -----------------------------------------------------------------------------
def window_partition(x: torch.Tensor, window_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) -> (B * windows, ws, ws, C) plus the padded grid size (zero padding
    bottom/right, as SAM)."""
    b, h, w, c = x.shape
    pad_h = (window_size - h % window_size) % window_size
    pad_w = (window_size - w % window_size) % window_size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window_size, window_size, wp // window_size, window_size, c)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c)
    return windows, (hp, wp)


def window_unpartition(windows: torch.Tensor, window_size: int, padded_hw: tuple[int, int],
                       hw: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`window_partition`, dropping the padding."""
    hp, wp = padded_hw
    h, w = hw
    b = windows.shape[0] // ((hp // window_size) * (wp // window_size))
    x = windows.view(b, hp // window_size, wp // window_size, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :h, :w, :].contiguous() if (hp, wp) != (h, w) else x


# -- relative positions ------------------------------------------------------------------
def relative_position_table(rel_pos: torch.Tensor, q_size: int, k_size: int) -> torch.Tensor:
    """Per (query, key) offset rows of ``rel_pos``: (q_size, k_size, head_dim).

    A table whose length does not fit ``2 * max(q, k) - 1`` is linearly resized first, as SAM
    does; loaded checkpoints are resized once at load time so this stays a pure lookup.
    """
    length = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != length:
        rel_pos = F.interpolate(rel_pos.t()[None].float(), size=length, mode="linear")[0].t().to(rel_pos.dtype)
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * max(q_size / k_size, 1.0)
    offsets = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos[offsets.long()]


def relative_position_terms(q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor,
                            q_hw: tuple[int, int], k_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's per-axis relative-position logits from the unscaled query (..., q_h * q_w, d):
    (..., q_h*q_w, k_h) and (..., q_h*q_w, k_w), contiguous."""
    table_h = relative_position_table(rel_pos_h, q_hw[0], k_hw[0])
    table_w = relative_position_table(rel_pos_w, q_hw[1], k_hw[1])
    return relative_position_terms_from_tables(q, table_h, table_w, q_hw)


def relative_position_terms_from_tables(q: torch.Tensor, table_h: torch.Tensor, table_w: torch.Tensor,
                                        q_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`relative_position_terms` from (q_h, k_h, d) / (q_w, k_w, d) offset tables (rows of
    a larger table when the queries are the top-left part of a window, see ``Attention``)."""
    q_h, q_w = q_hw
    k_h, k_w = table_h.shape[1], table_w.shape[1]
    table_h, table_w = table_h.to(q.dtype), table_w.to(q.dtype)
    lead = q.shape[:-2]
    r_q = q.reshape(*lead, q_h, q_w, q.shape[-1])
    # einsum returns permuted strides; contiguous() here keeps the N x N bias built from
    # these terms contiguous (otherwise reshaping it costs a full copy).
    rel_h = torch.einsum("...hwc,hkc->...hwk", r_q, table_h).contiguous()
    rel_w = torch.einsum("...hwc,wkc->...hwk", r_q, table_w).contiguous()
    return rel_h.reshape(*lead, q_h * q_w, k_h), rel_w.reshape(*lead, q_h * q_w, k_w)


def decomposed_rel_pos_bias(q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor,
                            q_hw: tuple[int, int], k_hw: tuple[int, int]) -> torch.Tensor:
    """SAM's relative-position term as an additive attention bias, (..., q_h*q_w, k_h*k_w)."""
    rel_h, rel_w = relative_position_terms(q, rel_pos_h, rel_pos_w, q_hw, k_hw)
    lead, n = rel_h.shape[:-2], rel_h.shape[-2]
    bias = rel_h[..., :, None] + rel_w[..., None, :]
    return bias.reshape(*lead, n, k_hw[0] * k_hw[1])


def rel_pos_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel_pos_h: torch.Tensor,
                      rel_pos_w: torch.Tensor, hw: tuple[int, int], scale: float) -> torch.Tensor:
    """SDPA with SAM's relative-position bias folded into the dot product, no N x N mask.

    ``softmax(scale q.k + q.R_h[kh] + q.R_w[kw])`` equals a plain dot product of
    ``[scale q, q.R_h, q.R_w]`` with ``[k, onehot(kh), onehot(kw)]``; padded to a multiple of 8
    so fused (flash / memory-efficient) kernels apply. Used for large grids (SAM's 64x64 global
    blocks), where the additive mask alone would take 12 x 4096^2 floats per image.
    """
    h, w = hw
    rel_h, rel_w = relative_position_terms(q, rel_pos_h, rel_pos_w, hw, hw)
    d = q.shape[-1]
    extra = -(d + h + w) % 8
    eye_h = torch.eye(h, dtype=q.dtype, device=q.device).repeat_interleave(w, dim=0)  # key -> onehot(kh)
    eye_w = torch.eye(w, dtype=q.dtype, device=q.device).repeat(h, 1)  # key -> onehot(kw)
    lead = k.shape[:-1]
    q_aug = torch.cat([q * scale, rel_h, rel_w, q.new_zeros(*q.shape[:-1], extra)], dim=-1)
    k_aug = torch.cat([k, eye_h.expand(*lead, h), eye_w.expand(*lead, w), k.new_zeros(*lead, extra)], dim=-1)
    v_aug = F.pad(v, (0, q_aug.shape[-1] - d))
    return F.scaled_dot_product_attention(q_aug, k_aug, v_aug, scale=1.0)[..., :d]


def padded_keys_bias(rel_h: torch.Tensor, rel_w: torch.Tensor, rh: int, rw: int) -> torch.Tensor:
    """log sum of exp(rel_h[kh] + rel_w[kw]) over a window's padded key positions (kh >= rh or
    kw >= rw) for (..., q, ws) per-axis terms -> (..., q).

    The padded positions are two rectangles (rows below the real part; the rest of the real
    rows), and over a rectangle the sum factorises: logsumexp(rel_h) + logsumexp(rel_w).
    Computed in at least float32 (float64 stays float64) with the stable (max-shifted) log-sum-exp, so no overflow.
    """
    ws = rel_h.shape[-1]
    wide = torch.promote_types(rel_h.dtype, torch.float32)
    h, w = rel_h.to(wide), rel_w.to(wide)
    parts = []
    if rh < ws:
        parts.append(h[..., rh:].logsumexp(-1) + w.logsumexp(-1))
    if rw < ws:
        parts.append(h[..., :rh].logsumexp(-1) + w[..., rw:].logsumexp(-1))
    out = parts[0] if len(parts) == 1 else torch.logaddexp(parts[0], parts[1])
    return out.to(rel_h.dtype)


# -- attention ---------------------------------------------------------------------------
class Attention(nn.Module):
    """Multi-head self-attention over a (B, H, W, C) grid with relative-position bias.

    "sdpa" passes the bias to ``scaled_dot_product_attention`` as an additive mask for grids
    up to ``max_tokens_for_mask`` tokens (windows, 256-px global blocks) and folds it into the
    dot product above that (see :func:`rel_pos_attention`); "explicit" materialises the scores.
    """

    max_tokens_for_mask = 1024

    def __init__(self, dim: int, num_heads: int, input_size: tuple[int, int],
                 attn_impl: str = "sdpa", use_rel_pos: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.attn_impl = attn_impl
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, self.head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, self.head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention over each (H, W) grid of a (B, H, W, C) batch."""
        return self.proj(self._attend(self.qkv(x)))

    def forward_windowed(self, x: torch.Tensor, window_size: int) -> torch.Tensor:
        """Windowed attention over a (B, H, W, C) grid that SAM zero-pads to whole windows.

        A zero-padded token's q/k/v is just the qkv bias, so the "sdpa" path projects only the
        real tokens, lets only them be queries (:meth:`_attend_windows`) and applies ``proj``
        to real tokens only: the same result with far fewer FLOPs when the grid is small (a
        16x16 grid pads to 28x28 with 14-token windows). "explicit" keeps the reference order.
        """
        hw = (x.shape[1], x.shape[2])
        if self.attn_impl == "explicit":
            windows, padded_hw = window_partition(x, window_size)
            return window_unpartition(self.forward(windows), window_size, padded_hw, hw)
        return self.proj(self._attend_windows(self.qkv(x), window_size))

    def _attend_windows(self, qkv: torch.Tensor, ws: int) -> torch.Tensor:
        """Windowed attention from the real tokens' (B, H, W, 3C) q/k/v -> (B, H, W, C).

        Only real tokens are queries (a padded query's output is cropped away anyway: at 256 px
        the 16x16 grid pads to 4 windows of 14x14, so two thirds of SAM's queries are padding);
        keys are the window's real tokens plus one merged key for its padded ones (see
        :meth:`_attend_window_part`). Windows are grouped by their real extent (full, cut by the
        right or bottom edge, corner): one SDPA call per group, no padded copy of q/k/v.
        """
        b, h, w, c3 = qkv.shape
        groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for y0 in range(0, h, ws):
            for x0 in range(0, w, ws):
                groups.setdefault((min(ws, h - y0), min(ws, w - x0)), []).append((y0, x0))
        if list(groups) == [(h, w)] and (h, w) == (ws, ws):
            return self._attend(qkv)  # the grid is one whole window
        out = qkv.new_empty(b, h, w, c3 // 3)
        for (rh, rw), origins in groups.items():
            part = torch.cat([qkv[:, y0:y0 + rh, x0:x0 + rw] for y0, x0 in origins])
            res = self._attend_window_part(part, ws)
            for i, (y0, x0) in enumerate(origins):
                out[:, y0:y0 + rh, x0:x0 + rw] = res[i * b:(i + 1) * b]
        return out

    def _attend_window_part(self, part: torch.Tensor, ws: int) -> torch.Tensor:
        """(N, rh, rw, 3C) real tokens at the top-left of N windows of ws x ws -> (N, rh, rw, C).

        The keys are the real tokens plus, in a cut window, ONE key for all its padded tokens:
        those share key and value (the qkv bias) and differ only in their relative-position
        bias, so their softmax terms add up to one term whose bias is the log-sum-exp of theirs
        (:func:`padded_keys_bias`). A 14 x 2 edge window attends over 29 keys, not 196, and no
        padded (N, ws, ws, 2C) copy of the keys and values is built.
        """
        n, rh, rw, c3 = part.shape
        c, heads, d = c3 // 3, self.num_heads, self.head_dim
        q, k, v = part.reshape(n, rh * rw, 3, heads, d).permute(2, 0, 3, 1, 4).unbind(0)
        cut = (rh, rw) != (ws, ws)
        if cut:
            k_pad, v_pad = self.qkv.bias[c:].to(part.dtype).view(2, 1, heads, 1, d).expand(2, n, heads, 1, d)
            k, v = torch.cat([k, k_pad], dim=2), torch.cat([v, v_pad], dim=2)
        bias = None
        if self.use_rel_pos:
            table_h = relative_position_table(self.rel_pos_h, ws, ws)[:rh]
            table_w = relative_position_table(self.rel_pos_w, ws, ws)[:rw]
            rel_h, rel_w = relative_position_terms_from_tables(q, table_h, table_w, (rh, rw))
            bias = (rel_h[..., :, :rh, None] + rel_w[..., :, None, :rw]).reshape(n, heads, rh * rw, rh * rw)
            if cut:
                bias = torch.cat([bias, padded_keys_bias(rel_h, rel_w, rh, rw)[..., None]], dim=-1)
        elif cut:  # identical padded keys without a position term: log of their count
            bias = q.new_zeros(n, heads, rh * rw, rh * rw + 1)
            bias[..., -1] = math.log(ws * ws - rh * rw)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return out.transpose(1, 2).reshape(n, rh, rw, c)

    def _attend(self, qkv: torch.Tensor) -> torch.Tensor:
        """Projected (B, H, W, 3C) q/k/v -> attention output (B, H, W, C) before ``proj``."""
        b, h, w, c3 = qkv.shape
        qkv = qkv.reshape(b, h * w, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, head_dim)
        if self.attn_impl == "sdpa" and self.use_rel_pos and h * w > self.max_tokens_for_mask:
            out = rel_pos_attention(q, k, v, self.rel_pos_h, self.rel_pos_w, (h, w), self.scale)
        else:
            bias = None
            if self.use_rel_pos:
                bias = decomposed_rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, (h, w), (h, w))
            if self.attn_impl == "sdpa":
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            else:
                out = explicit_attention(q, k, v, bias, self.scale)
        return out.transpose(1, 2).reshape(b, h, w, c3 // 3)


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                       bias: torch.Tensor | None, scale: float) -> torch.Tensor:
    """Reference formulation: softmax(q k^T * scale + bias) v with the full score matrix."""
    scores = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        scores = scores + bias
    return scores.softmax(dim=-1).to(v.dtype) @ v


# -- ConMoAE -----------------------------------------------------------------------------
class ConMoAEMLP(nn.Module):
    """MedSegX's Contextual Mixture of Adapter Experts around a block's MLP.

    Output = ``mlp(x) + scale * sum_e gate_e * expert_e(x)``; the gate depends on the organ
    context (a learned mix of the four organ levels), the task, the modality and a summary of
    the input. The experts run as one fused down/up projection (their weights concatenated),
    which equals the per-expert loop of the reference code but needs two matmuls, not eight.
    """

    def __init__(self, mlp: MLPBlock, num_experts: int, embed_dim: int, bottleneck: int,
                 scale: float, dropout: float) -> None:
        super().__init__()
        dim = mlp.embedding_dim
        self.mlp = mlp
        self.num_experts = num_experts
        self.bottleneck = bottleneck
        self.adapter_scale = scale
        self.adapter_dropout = dropout
        self.adapter_input_embed = nn.Linear(dim, embed_dim)
        self.adapter_gate = nn.Linear(embed_dim * 4, num_experts)
        self.adapter_organ_gate = nn.Linear(embed_dim * 4, 4)
        self.adapter_down = nn.ModuleList(nn.Linear(dim, bottleneck) for _ in range(num_experts))
        self.adapter_up = nn.ModuleList(nn.Linear(bottleneck, dim) for _ in range(num_experts))
        self.adapter_act = nn.GELU()
        self.reset_adapters()

    def reset_adapters(self) -> None:
        """Zero up-projections make an untrained MedSegX compute exactly SAM."""
        for down, up in zip(self.adapter_down, self.adapter_up):
            nn.init.kaiming_uniform_(down.weight, a=math.sqrt(5))
            nn.init.zeros_(down.bias)
            nn.init.zeros_(up.weight)
            nn.init.zeros_(up.bias)

    def expert_gate(self, x: torch.Tensor, context: dict[str, torch.Tensor]) -> torch.Tensor:
        """Softmax weights over experts, (B, num_experts)."""
        levels = context["organ_levels"]  # (B, 4, E)
        level_weights = self.adapter_organ_gate(levels.flatten(1)).softmax(dim=-1)
        organ = (levels * level_weights.unsqueeze(-1).to(levels.dtype)).sum(dim=1)
        summary = self.adapter_input_embed(x.mean(dim=(1, 2)))
        features = torch.cat([organ, context["task"], context["modality"], summary.to(organ.dtype)], dim=-1)
        return self.adapter_gate(features).softmax(dim=-1)

    def forward(self, x: torch.Tensor, context: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        gate = self.expert_gate(x, context)
        down_w = torch.cat([m.weight for m in self.adapter_down], dim=0)
        down_b = torch.cat([m.bias for m in self.adapter_down], dim=0)
        hidden = self.adapter_act(F.linear(x, down_w, down_b))
        hidden = F.dropout(hidden, p=self.adapter_dropout, training=self.training)
        b, h, w, _ = hidden.shape
        hidden = hidden.view(b, h, w, self.num_experts, self.bottleneck)
        hidden = (hidden * gate[:, None, None, :, None].to(hidden.dtype)).flatten(-2)
        up_w = torch.cat([m.weight for m in self.adapter_up], dim=1)
        up_b = gate.to(up_w.dtype) @ torch.stack([m.bias for m in self.adapter_up])  # (B, C)
        adapted = F.linear(hidden, up_w) + up_b[:, None, None, :].to(hidden.dtype)
        return self.mlp(x) + adapted * self.adapter_scale, gate


# -- blocks and encoder ------------------------------------------------------------------
class Block(nn.Module):
    """Pre-norm transformer block; ``window_size`` 0 means global attention."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, window_size: int,
                 grid_size: int, attn_impl: str) -> None:
        super().__init__()
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        size = (window_size, window_size) if window_size > 0 else (grid_size, grid_size)
        self.attn = Attention(dim, num_heads, input_size=size, attn_impl=attn_impl)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp: nn.Module = MLPBlock(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, context: dict[str, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        shortcut = x
        x = self.norm1(x)
        x = self.attn.forward_windowed(x, self.window_size) if self.window_size > 0 else self.attn(x)
        x = shortcut + x
        if isinstance(self.mlp, ConMoAEMLP):
            if context is None:
                raise ModelError("this MedSegX encoder needs a context (modality, organ levels, task) per image")
            out, gate = self.mlp(self.norm2(x), context)
            return x + out, gate
        return x + self.mlp(self.norm2(x)), None


class PatchEmbed(nn.Module):
    """Non-overlapping patches to tokens, (B, 3, S, S) -> (B, S/p, S/p, C)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Contiguous once here: a permuted view makes every later elementwise result keep the
        # channels-first layout, and each LayerNorm then copies the (B, H, W, C) stream
        # (2 copies per block, ~1 % of the encoder on CPU).
        return self.proj(x).permute(0, 2, 3, 1).contiguous()


class ImageEncoderViT(nn.Module):
    """ViT backbone + neck producing the (B, prompt_embed_dim, g, g) image embedding."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        dim, grid = config.encoder_embed_dim, config.grid_size
        self.img_size = config.image_size
        self.patch_embed = PatchEmbed(config.patch_size, 3, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, dim))
        global_blocks = set(config.encoder_global_attn_indexes)
        self.blocks = nn.ModuleList(
            Block(dim, config.encoder_num_heads, config.mlp_ratio,
                  window_size=0 if i in global_blocks else config.window_size,
                  grid_size=grid, attn_impl=config.attn_impl)
            for i in range(config.encoder_depth)
        )
        out = config.prompt_embed_dim
        self.neck = nn.Sequential(
            nn.Conv2d(dim, out, kernel_size=1, bias=False),
            LayerNorm2d(out),
            nn.Conv2d(out, out, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out),
        )
        self.conmoae = config.conmoae
        if config.conmoae:
            e = config.adapter_embed_dim
            self.modal_embed = nn.Embedding(config.num_modalities, e)
            # Rows: root (1), body parts, regions, organs, then tasks + one for unseen tasks.
            sizes = list(config.organ_level_sizes) + [config.num_tasks + 1]
            self.organ_embed = nn.ModuleList(nn.Embedding(n, e) for n in sizes)
            for table in [self.modal_embed, *self.organ_embed]:
                nn.init.zeros_(table.weight)
            for blk in self.blocks:
                blk.mlp = ConMoAEMLP(blk.mlp, config.adapter_num_experts, e, config.adapter_bottleneck,
                                     config.adapter_scale, config.adapter_dropout)

    @property
    def context_sizes(self) -> tuple[int, ...]:
        """Valid index range of each context column (see :data:`CONTEXT_COLUMNS`)."""
        if not self.conmoae:
            return ()
        sizes = [t.num_embeddings for t in self.organ_embed]
        return (self.modal_embed.num_embeddings, sizes[1], sizes[2], sizes[3], sizes[4])

    def embed_context(self, context: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 5) indices [modality, level1, level2, level3, task] -> embedding vectors."""
        if context.ndim != 2 or context.shape[1] != len(CONTEXT_COLUMNS):
            raise ModelError(f"context must have shape (batch, 5) with columns {CONTEXT_COLUMNS}, "
                             f"got {tuple(context.shape)}")
        context = context.long()
        limits = torch.tensor(self.context_sizes, device=context.device)
        bad = (context < 0) | (context >= limits)
        if bool(bad.any()):
            cols = sorted({CONTEXT_COLUMNS[j] for j in bad.nonzero()[:, 1].tolist()})
            raise ModelError(f"context index out of range in columns {cols}; valid sizes "
                             f"{dict(zip(CONTEXT_COLUMNS, self.context_sizes))}")
        root = torch.zeros_like(context[:, 0])
        levels = [self.organ_embed[0](root)] + [self.organ_embed[i](context[:, i]) for i in (1, 2, 3)]
        return {
            "modality": self.modal_embed(context[:, 0]),
            "organ_levels": torch.stack(levels, dim=1),
            "task": self.organ_embed[4](context[:, 4]),
        }

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                return_gates: bool = False):
        """Normalised (B, 3, S, S) images -> embeddings; with ``return_gates`` also the
        (B, depth, experts) ConMoAE gate weights (None for plain SAM)."""
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ModelError(f"image encoder expects {self.img_size}x{self.img_size} inputs, "
                             f"got {tuple(x.shape[-2:])}")
        embedded = None
        if self.conmoae:
            if context is None:
                raise ModelError("MedSegX needs a context (modality, organ levels, task) per image; "
                                 "see omnimedseg.models.context_for_task")
            if context.shape[0] != x.shape[0]:
                raise ModelError(f"{x.shape[0]} images but {context.shape[0]} context rows")
            embedded = self.embed_context(context.to(x.device))
        x = self.patch_embed(x) + self.pos_embed
        gates = []
        for blk in self.blocks:
            x, gate = blk(x, embedded)
            gates.append(gate)
        x = self.neck(x.permute(0, 3, 1, 2))
        if return_gates:
            return x, (torch.stack(gates, dim=1) if self.conmoae else None)
        return x
