"""Batched inference: images of any size + prompts -> logits and masks at the input size.

Images are brought to the network input as the original pipelines do: SAM keeps the aspect
ratio (longest side to ``image_size``, zero padding), MedSegX and MedSAM stretch to a square.
Prompt coordinates are given in input-image pixels and mapped the same way; logits are mapped
back (SAM: up to the padded network frame, crop, resize; square models: one resize).
Optional bf16/fp16 autocast runs on CUDA (and on CPU, where torch supports it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from omnimedseg.models.context import context_tensor
from omnimedseg.models.errors import ModelError
from omnimedseg.models.sam import Sam

_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
           "float16": torch.float16, "fp32": None, "float32": None, None: None}


@dataclass
class Prediction:
    """Model outputs for a batch of B images with M masks each.

    logits: (B, M, H, W) float32 at the input resolution; masks: logits > threshold (bool;
    threshold 0 is sigmoid > 0.5); iou_scores: (B, M) predicted IoU; low_res_logits: the
    decoder output (B, M, s, s), usable as the next ``mask_inputs``; image_embeddings: reuse
    them to prompt the same images again without re-encoding.
    """

    logits: torch.Tensor
    masks: torch.Tensor
    iou_scores: torch.Tensor
    low_res_logits: torch.Tensor
    image_embeddings: torch.Tensor

    def best_by_iou(self) -> torch.Tensor:
        """(B, H, W) mask with the highest predicted IoU per image."""
        index = self.iou_scores.argmax(dim=1)
        return self.masks[torch.arange(self.masks.shape[0], device=self.masks.device), index]


def resolve_autocast_dtype(dtype) -> torch.dtype | None:
    if isinstance(dtype, torch.dtype):
        return None if dtype == torch.float32 else dtype
    try:
        return _DTYPES[dtype]
    except (KeyError, TypeError):
        raise ModelError(f"autocast dtype must be one of bf16, fp16, fp32 or None, got {dtype!r}") from None


def autocast_context(device: torch.device, dtype) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device`` (no-op for None/fp32)."""
    dtype = resolve_autocast_dtype(dtype)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def as_image_batch(images, device: torch.device) -> torch.Tensor:
    """(B, 3, H, W) float tensor from numpy channels-last or torch channels-first input.

    numpy: (H, W), (H, W, 3), (B, H, W) or (B, H, W, 3) (MedSegDB npy layout);
    torch: (H, W), (3, H, W), (B, 3, H, W) or (B, 1, H, W). Grey images get three channels.
    """
    if isinstance(images, np.ndarray):
        arr = images
        if arr.ndim in (3, 4) and arr.shape[-1] in (2, 4):  # RGBA or grey+alpha: had become a batch 4 pixels wide
            raise ModelError(f"a numpy image of shape {images.shape}: {arr.shape[-1]} channels last; expected grey or "
                             f"RGB (drop the alpha channel first)")
        if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] not in (1, 3)):
            arr = arr[..., None]
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4:
            raise ModelError(f"cannot read a numpy image batch of shape {images.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
    elif isinstance(images, torch.Tensor):
        tensor = images
        if tensor.ndim == 2:
            tensor = tensor[None]
        if tensor.ndim == 3:
            tensor = tensor[None]
        if tensor.ndim != 4:
            raise ModelError(f"cannot read an image tensor of shape {tuple(images.shape)}")
    else:
        raise ModelError(f"images must be a numpy array or torch tensor, got {type(images).__name__}")
    if tensor.shape[1] == 1:
        tensor = tensor.expand(-1, 3, -1, -1)
    if tensor.shape[1] != 3:
        raise ModelError(f"images need 1 or 3 channels, got shape {tuple(tensor.shape)}")
    return tensor.to(device=device, dtype=torch.float32)


def _as_tensor(value, device: torch.device, dtype=torch.float32) -> torch.Tensor | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(value), device=device, dtype=dtype)


def network_size(model: Sam, height: int, width: int) -> tuple[int, int]:
    """(h, w) of the resized image inside the network's square input."""
    size = model.config.image_size
    if model.config.resize_mode == "square":
        return size, size
    scale = size / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def _resize_context(context, batch: int, device: torch.device) -> torch.Tensor:
    if isinstance(context, str):
        context = [context] * batch
    if isinstance(context, torch.Tensor):
        rows = context.to(device=device, dtype=torch.long)
    elif isinstance(context, Sequence):
        rows = context_tensor(context, device=device)
    else:
        raise ModelError("context must be a task name, a list of task names or a (B, 5) index tensor")
    if rows.ndim == 1:
        rows = rows[None]
    if rows.shape[0] == 1 and batch > 1:
        rows = rows.expand(batch, -1)
    return rows


def predict(model: Sam, images, *, boxes=None, points=None, point_labels=None, mask_inputs=None,
            context=None, multimask_output: bool | None = None, autocast_dtype=None,
            threshold: float = 0.0, image_embeddings: torch.Tensor | None = None) -> Prediction:
    """Segment a batch of same-size images, one prompt set per image.

    boxes: (B, 4) x0, y0, x1, y1 in input pixels. points: (B, N, 2) (x, y) in input pixels
    with point_labels (B, N): 1 foreground, 0 background, -1 padding. mask_inputs: (B, 1, m, m)
    logits from a previous :class:`Prediction` (``low_res_logits`` of the chosen mask), resized
    to the prompt encoder's mask size when needed. A single prompt is applied to every image.
    context (MedSegX only): a ``<Modality>_<Task>`` name, a list of them, or a (B, 5) index
    tensor. autocast_dtype: "bf16"/"fp16" (or torch dtypes) for mixed precision; outputs are
    float32 either way.
    """
    device = model.device
    batch = as_image_batch(images, device)
    b, _, height, width = batch.shape
    new_h, new_w = network_size(model, height, width)
    sx, sy = new_w / width, new_h / height

    box_t = _as_tensor(boxes, device)
    if box_t is not None:
        box_t = box_t.reshape(-1, 4) * torch.tensor([sx, sy, sx, sy], device=device)
    point_arg = None
    if points is not None:
        if point_labels is None:
            raise ModelError("points need point_labels (1 foreground, 0 background)")
        coords = _as_tensor(points, device)
        labels = _as_tensor(point_labels, device, torch.long)
        if coords.ndim == 2:
            coords, labels = coords[None], labels.reshape(1, -1)
        point_arg = (coords * torch.tensor([sx, sy], device=device), labels)
    masks_in = _as_tensor(mask_inputs, device)
    if masks_in is not None:
        if masks_in.ndim == 3:
            masks_in = masks_in[:, None]
        target = model.prompt_encoder.mask_input_size
        if tuple(masks_in.shape[-2:]) != target:
            masks_in = F.interpolate(masks_in, size=target, mode="bilinear", align_corners=False)

    ctx = None
    if model.is_medsegx and image_embeddings is None:
        if context is None:
            raise ModelError("MedSegX needs context: a task name such as 'CT_Liver', a list of them, "
                             "or a (B, 5) tensor of [modality, level1, level2, level3, task] indices")
        ctx = _resize_context(context, b, device)

    with torch.inference_mode(), autocast_context(device, autocast_dtype):
        if image_embeddings is None:
            resized = batch
            if (new_h, new_w) != (height, width):
                resized = F.interpolate(batch, size=(new_h, new_w), mode="bilinear",
                                        align_corners=False, antialias=True)
            image_embeddings = model.encode_images(resized, ctx)
        low_res, iou = model.decode(image_embeddings, boxes=box_t, points=point_arg,
                                    mask_inputs=masks_in, multimask_output=multimask_output)
        low_res, iou = low_res.float(), iou.float()
        logits = postprocess_logits(model, low_res, (new_h, new_w), (height, width))
    return Prediction(logits=logits, masks=logits > threshold, iou_scores=iou,
                      low_res_logits=low_res, image_embeddings=image_embeddings)


def postprocess_logits(model: Sam, low_res: torch.Tensor, network_hw: tuple[int, int],
                       original_hw: tuple[int, int]) -> torch.Tensor:
    """Decoder logits -> logits at the original image size."""
    if model.config.resize_mode == "square":
        if tuple(low_res.shape[-2:]) == tuple(original_hw):
            return low_res
        return F.interpolate(low_res, size=original_hw, mode="bilinear", align_corners=False, antialias=True)
    size = model.config.image_size
    x = F.interpolate(low_res, size=(size, size), mode="bilinear", align_corners=False)
    x = x[..., : network_hw[0], : network_hw[1]]
    return F.interpolate(x, size=original_hw, mode="bilinear", align_corners=False)
