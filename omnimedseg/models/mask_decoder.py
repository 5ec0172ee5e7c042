"""SAM's two-way transformer mask decoder with IoU head and multimask output.

The upscaling path has ``decoder_upscale_stages`` 2x transposed convolutions: two in SAM
(masks at a quarter of the input size), four in MedSegX (masks at the 256-px input size).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from omnimedseg.models.common import MLP, LayerNorm2d, MLPBlock
from omnimedseg.models.config import ModelConfig
from omnimedseg.models.errors import ModelError


class DecoderAttention(nn.Module):
    """Attention with separate q/k/v projections, optionally to a smaller internal width."""

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1,
                 attn_impl: str = "sdpa") -> None:
        super().__init__()
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        self.attn_impl = attn_impl
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v))
        if self.attn_impl == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
            out = scores.softmax(dim=-1).to(v.dtype) @ v
        b, h, n, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * d))


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token->image, MLP, image->token (SAM's decoder layer)."""

    def __init__(self, embedding_dim: int, num_heads: int, mlp_dim: int, skip_first_layer_pe: bool,
                 attn_impl: str) -> None:
        super().__init__()
        self.self_attn = DecoderAttention(embedding_dim, num_heads, attn_impl=attn_impl)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = DecoderAttention(embedding_dim, num_heads, 2, attn_impl)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLPBlock(embedding_dim, mlp_dim, nn.ReLU)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = DecoderAttention(embedding_dim, num_heads, 2, attn_impl)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor,
                key_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, depth: int, embedding_dim: int, num_heads: int, mlp_dim: int,
                 attn_impl: str = "sdpa") -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(embedding_dim, num_heads, mlp_dim, skip_first_layer_pe=(i == 0),
                                 attn_impl=attn_impl)
            for i in range(depth)
        )
        self.final_attn_token_to_image = DecoderAttention(embedding_dim, num_heads, 2, attn_impl)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(self, image_embedding: torch.Tensor, image_pe: torch.Tensor,
                point_embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = image_embedding.flatten(2).permute(0, 2, 1)
        key_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        q, k = queries + point_embedding, keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys


class MaskDecoder(nn.Module):
    """Predicts (1 + num_multimask_outputs) masks and their IoU scores per prompt."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        dim = config.prompt_embed_dim
        self.transformer_dim = dim
        self.transformer = TwoWayTransformer(config.decoder_depth, dim, config.decoder_num_heads,
                                             config.decoder_mlp_dim, config.attn_impl)
        self.num_multimask_outputs = config.num_multimask_outputs
        self.num_mask_tokens = config.num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        layers: list[nn.Module] = []
        channels = [dim, *config.upscale_channels]
        for i in range(config.decoder_upscale_stages):
            layers.append(nn.ConvTranspose2d(channels[i], channels[i + 1], kernel_size=2, stride=2))
            if i < config.decoder_upscale_stages - 1:
                layers.append(LayerNorm2d(channels[i + 1]))
            layers.append(nn.GELU())
        self.output_upscaling = nn.Sequential(*layers)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(dim, dim, channels[-1], 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(dim, config.iou_head_hidden_dim, self.num_mask_tokens,
                                       config.iou_head_depth)

    def forward(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                sparse_prompt_embeddings: torch.Tensor, dense_prompt_embeddings: torch.Tensor,
                multimask_output: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask logits (B, M, s, s) and IoU predictions (B, M); M = 3 with multimask, else 1.

        One image embedding per prompt, or a single embedding shared by every prompt.
        """
        masks, iou_pred = self.predict_masks(image_embeddings, image_pe, sparse_prompt_embeddings,
                                             dense_prompt_embeddings)
        selected = slice(1, None) if multimask_output else slice(0, 1)
        return masks[:, selected], iou_pred[:, selected]

    def predict_masks(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                      sparse_prompt_embeddings: torch.Tensor,
                      dense_prompt_embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        output_tokens = output_tokens.unsqueeze(0).expand(b, -1, -1)
        tokens = torch.cat([output_tokens, sparse_prompt_embeddings.to(output_tokens.dtype)], dim=1)
        if image_embeddings.shape[0] == b:
            src = image_embeddings
        elif image_embeddings.shape[0] == 1:
            src = image_embeddings.expand(b, -1, -1, -1)
        else:
            raise ModelError(f"{image_embeddings.shape[0]} image embeddings for {b} prompts; "
                             "give one prompt per image or one image for all prompts")
        src = src + dense_prompt_embeddings
        pos_src = image_pe.expand(b, -1, -1, -1)
        _, c, h, w = src.shape
        hs, src = self.transformer(src, pos_src, tokens)
        iou_token_out = hs[:, 0, :]
        mask_tokens_out = hs[:, 1:1 + self.num_mask_tokens, :]
        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        _, c2, h2, w2 = upscaled.shape
        masks = (hyper_in @ upscaled.reshape(b, c2, h2 * w2).to(hyper_in.dtype)).reshape(b, -1, h2, w2)
        return masks, self.iou_prediction_head(iou_token_out)
