"""The SAM-family model: image encoder + prompt encoder + mask decoder.

SAM, MedSAM and MedSegX are all this class; :class:`ModelConfig` decides input size,
decoder depth of upscaling and whether ConMoAE adapters are present. Submodule names equal
the official ones (``image_encoder``, ``prompt_encoder``, ``mask_decoder``), so official state
dicts load without renaming. Pixel mean/std are non-persistent buffers, as in SAM, so they are
not expected in checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from omnimedseg.models.config import ModelConfig
from omnimedseg.models.errors import ModelError
from omnimedseg.models.image_encoder import ImageEncoderViT
from omnimedseg.models.mask_decoder import MaskDecoder
from omnimedseg.models.prompt_encoder import PromptEncoder

TRAINABLE_MARKERS = ("adapter_", "modal_embed", "organ_embed")


class Sam(nn.Module):
    """Promptable segmentation model working at the network resolution.

    :meth:`forward` takes images already at ``image_size`` x ``image_size`` (values 0..255)
    and prompts in that pixel frame, and returns the decoder's mask logits (``mask_size``) and
    IoU predictions; :mod:`omnimedseg.models.inference` adds resizing to and from arbitrary
    input sizes.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        grid = config.grid_size
        self.image_encoder = ImageEncoderViT(config)
        self.prompt_encoder = PromptEncoder(config.prompt_embed_dim, (grid, grid),
                                            (config.image_size, config.image_size), config.mask_in_chans)
        self.mask_decoder = MaskDecoder(config)
        self.register_buffer("pixel_mean", torch.tensor(config.pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(config.pixel_std).view(-1, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def is_medsegx(self) -> bool:
        return self.config.conmoae

    # -- pieces --------------------------------------------------------------------------
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Normalise 0..255 images and pad them bottom/right to ``image_size``."""
        images = images.float()
        if self.config.pixel_normalization == "min_max":
            flat = images.flatten(1)
            low = flat.min(dim=1).values.view(-1, 1, 1, 1)
            high = flat.max(dim=1).values.view(-1, 1, 1, 1)
            images = (images - low) / (high - low).clamp_min(1e-8)
        else:
            images = (images - self.pixel_mean) / self.pixel_std
        h, w = images.shape[-2:]
        size = self.config.image_size
        if h > size or w > size:
            raise ModelError(f"images of {h}x{w} exceed the network input {size}x{size}; resize them "
                             "first (omnimedseg.models.predict does this)")
        return F.pad(images, (0, size - w, 0, size - h))

    def encode_images(self, images: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Preprocess and encode (B, 3, h, w) 0..255 images into (B, C, g, g) embeddings."""
        return self.image_encoder(self.preprocess(images), context)

    def decode(self, image_embeddings: torch.Tensor, boxes: torch.Tensor | None = None,
               points: tuple[torch.Tensor, torch.Tensor] | None = None,
               mask_inputs: torch.Tensor | None = None,
               multimask_output: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts (in network-input pixels) -> mask logits (B, M, s, s), IoU (B, M)."""
        if boxes is None and points is None and mask_inputs is None:
            raise ModelError("give at least one prompt: boxes, points or mask_inputs")
        if multimask_output is None:
            multimask_output = self.config.multimask_output
        sparse, dense = self.prompt_encoder(points=points, boxes=boxes, masks=mask_inputs)
        if image_embeddings.shape[0] not in (1, sparse.shape[0]) and sparse.shape[0] == 1:
            # One prompt for a batch of images: reuse it for every image.
            sparse = sparse.expand(image_embeddings.shape[0], -1, -1)
            dense = dense.expand(image_embeddings.shape[0], -1, -1, -1)
        return self.mask_decoder(image_embeddings, self.prompt_encoder.get_dense_pe(), sparse,
                                 dense.to(image_embeddings.dtype), multimask_output)

    def forward(self, images: torch.Tensor, boxes: torch.Tensor | None = None,
                points: tuple[torch.Tensor, torch.Tensor] | None = None,
                mask_inputs: torch.Tensor | None = None, context: torch.Tensor | None = None,
                multimask_output: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 3, S, S) 0..255 + prompts -> (mask logits (B, M, s, s), IoU (B, M)).

        ``context`` is the (B, 5) MedSegX row [modality, level1, level2, level3, task]
        (see :func:`omnimedseg.models.context_tensor`); ignored by plain SAM.
        """
        embeddings = self.encode_images(images, context if self.is_medsegx else None)
        return self.decode(embeddings, boxes=boxes, points=points, mask_inputs=mask_inputs,
                           multimask_output=multimask_output)

    # -- training helpers ----------------------------------------------------------------
    def trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """(name, parameter) of what MedSegX trains: adapters, context embeddings and the
        whole mask decoder. For plain SAM this is the mask decoder (MedSAM's recipe)."""
        for name, param in self.named_parameters():
            if name.startswith("mask_decoder.") or any(m in name for m in TRAINABLE_MARKERS):
                yield name, param

    def freeze_encoders(self) -> list[str]:
        """Freeze image and prompt encoders except adapters/embeddings; returns trainable names."""
        trainable = {name for name, _ in self.trainable_parameters()}
        for name, param in self.named_parameters():
            param.requires_grad_(name in trainable)
        return sorted(trainable)

    def set_attention_implementation(self, impl: str) -> None:
        """Switch every attention layer between "sdpa" and "explicit" (same weights)."""
        if impl not in ("sdpa", "explicit"):
            raise ModelError(f"attention implementation must be 'sdpa' or 'explicit', got {impl!r}")
        for module in self.modules():
            if hasattr(module, "attn_impl"):
                module.attn_impl = impl
        self.config = self.config.replace(attn_impl=impl)
