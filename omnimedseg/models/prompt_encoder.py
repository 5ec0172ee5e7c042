"""SAM's prompt encoder: points and box corners as random Fourier features, masks by convs.

Coordinates are in pixels of the network input (``image_size`` square, after resizing), in
(x, y) order; SAM shifts them by half a pixel to the pixel centre before encoding.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from omnimedseg.models.common import LayerNorm2d
from omnimedseg.models.errors import ModelError


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier position features; the Gaussian matrix is part of the checkpoint."""

    def __init__(self, num_pos_feats: int, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats)))

    def _encode(self, coords: torch.Tensor) -> torch.Tensor:
        """Coordinates in [0, 1] (..., 2) -> (..., 2 * num_pos_feats)."""
        # Kept in float32 even under autocast: the sin/cos of large phases lose their
        # meaning in bf16.
        with torch.autocast(device_type=coords.device.type, enabled=False):
            coords = 2 * coords.float() - 1
            coords = coords @ self.positional_encoding_gaussian_matrix.float()
            coords = 2 * math.pi * coords
            return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """Dense (C, h, w) encoding of a grid's cell centres."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (h, w, 2) as (x, y)
        return self._encode(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Pixel (x, y) coordinates (..., 2) on an image of ``image_size`` (h, w)."""
        scale = torch.tensor([image_size[1], image_size[0]], device=coords.device, dtype=torch.float32)
        return self._encode(coords.float() / scale)


class PromptEncoder(nn.Module):
    """Sparse (points, boxes) and dense (mask) prompt embeddings for the mask decoder."""

    def __init__(self, embed_dim: int, image_embedding_size: tuple[int, int],
                 input_image_size: tuple[int, int], mask_in_chans: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = image_embedding_size
        self.input_image_size = input_image_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        # 0: negative point, 1: positive point, 2: box top-left, 3: box bottom-right.
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """(1, C, g, g) positional encoding of the image embedding grid."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def _embed_points(self, coords: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        coords = coords.float() + 0.5
        labels = labels.long()
        if pad:
            # SAM appends a "not a point" so point-only prompts have the box's token count + 1.
            coords = torch.cat([coords, torch.zeros_like(coords[:, :1])], dim=1)
            labels = torch.cat([labels, -torch.ones_like(labels[:, :1])], dim=1)
        emb = self.pe_layer.forward_with_coords(coords, self.input_image_size)
        labels = labels.unsqueeze(-1)
        emb = torch.where(labels == -1, torch.zeros_like(emb), emb)
        emb = emb + (labels == -1) * self.not_a_point_embed.weight
        emb = emb + (labels == 0) * self.point_embeddings[0].weight
        emb = emb + (labels == 1) * self.point_embeddings[1].weight
        return emb

    def _embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        corners = (boxes.float() + 0.5).reshape(-1, 2, 2)
        emb = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        offsets = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight], dim=0)
        return emb + offsets

    def forward(self, points: tuple[torch.Tensor, torch.Tensor] | None = None,
                boxes: torch.Tensor | None = None,
                masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns sparse (B, tokens, C) and dense (B, C, g, g) embeddings.

        points: (coords (B, N, 2), labels (B, N)) with labels 1 = foreground, 0 = background,
        -1 = padding; boxes: (B, 4) or (B, 1, 4) as x0, y0, x1, y1; masks: (B, 1, 4g, 4g) logits.
        """
        sizes = {t.shape[0] for t in (points[0] if points is not None else None, boxes, masks) if t is not None}
        if len(sizes) > 1:
            raise ModelError(f"prompt batch sizes differ: {sorted(sizes)}")
        bs = sizes.pop() if sizes else 1
        device = self.no_mask_embed.weight.device
        parts = []
        if points is not None:
            coords, labels = points
            if coords.ndim != 3 or coords.shape[-1] != 2 or labels.shape != coords.shape[:2]:
                raise ModelError(f"points must be (B, N, 2) with labels (B, N), got "
                                 f"{tuple(coords.shape)} and {tuple(labels.shape)}")
            parts.append(self._embed_points(coords.to(device), labels.to(device), pad=boxes is None))
        if boxes is not None:
            if boxes.shape[-1] != 4 or boxes.reshape(-1, 4).shape[0] != bs:
                raise ModelError(f"boxes must be (B, 4) or (B, 1, 4), got {tuple(boxes.shape)}")
            parts.append(self._embed_boxes(boxes.to(device)))
        if parts:
            sparse = torch.cat(parts, dim=1)
        else:
            sparse = torch.empty((bs, 0, self.embed_dim), device=device)
        if masks is not None:
            if tuple(masks.shape[-2:]) != self.mask_input_size:
                raise ModelError(f"mask prompts must be {self.mask_input_size}, got {tuple(masks.shape[-2:])}")
            dense = self.mask_downscaling(masks.to(device))
        else:
            h, w = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(bs, -1, h, w)
        return sparse, dense
