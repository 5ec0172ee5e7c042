"""Model-ready inputs for SAM/MedSegX-style models: uint8 RGB squares, masks, box prompts.

Intensity handling per modality (documented in docs/data.md):

* CT: a window in Hounsfield units (default soft tissue, level 40 / width 400), or
  ``ct_window=None`` for 0.5-99.5 percentile clipping as MedSAM does;
* MRI and other single-channel modalities: 0.5-99.5 percentile clipping inside the image;
* uint8 RGB images (fundus, endoscopy, dermoscopy, microscopy...): kept as they are.

Masks are resized with nearest-neighbour sampling, so they stay binary and no label
leaks across class borders.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from omnimedseg.errors import UsageError

CT_SOFT_TISSUE = (40.0, 400.0)  # (level, width) in HU
PERCENTILES = (0.5, 99.5)


def intensity_to_uint8(image: np.ndarray, modality: str, ct_window: tuple[float, float] | None = CT_SOFT_TISSUE
                       ) -> np.ndarray:
    """(H, W[, C]) image -> (H, W, 3) uint8 by the modality's rule."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] in (3, 4) and image.dtype == np.uint8:
        return np.ascontiguousarray(image[..., :3])
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim != 2:
        raise UsageError(f"expected a 2D greyscale or RGB image, found shape {image.shape} ({image.dtype})")
    values = image.astype(np.float32)
    if modality == "CT" and ct_window is not None:
        level, width = ct_window
        low, high = level - width / 2, level + width / 2
    elif image.dtype == np.uint8 and modality not in ("CT", "MRI"):
        low, high = 0.0, 255.0  # already display-ready (ultrasound, X-ray exports...)
    else:
        low, high = (float(v) for v in np.percentile(values, PERCENTILES))
    scaled = np.clip((values - low) / max(high - low, 1e-6), 0.0, 1.0) * 255.0
    grey = np.rint(scaled).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3), bilinear with antialiasing when shrinking."""
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """(H, W) bool -> (size, size) bool by nearest-neighbour sampling (stays binary)."""
    return np.asarray(Image.fromarray(np.asarray(mask, dtype=bool)).resize((size, size), Image.Resampling.NEAREST))


def box_from_mask(mask: np.ndarray, max_shift: int = 0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Tight box (x0, y0, x1, y1) of a 2D mask in pixel indices, as SAM expects (x = column).

    With ``max_shift > 0`` each side moves outward by a random 0..max_shift pixels
    drawn from ``rng`` and is clipped to the image (the MedSegX training prompt).
    """
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise UsageError("cannot make a box prompt from an empty mask")
    box = np.array([cols.min(), rows.min(), cols.max(), rows.max()], dtype=np.float64)
    if max_shift > 0:
        if rng is None:
            raise UsageError("a perturbed box needs an explicit numpy Generator (rng=...)")
        shift = rng.integers(0, max_shift + 1, size=4)
        box += shift * np.array([-1, -1, 1, 1])
        h, w = mask.shape
        box = np.clip(box, 0, [w - 1, h - 1, w - 1, h - 1])
    return box


def model_input(image: np.ndarray, mask: np.ndarray | None, modality: str, size: int = 256,
                ct_window: tuple[float, float] | None = CT_SOFT_TISSUE) -> tuple[np.ndarray, np.ndarray | None]:
    """One 2D image (+ mask) as the (size, size, 3) uint8 and (size, size) bool a model takes."""
    rgb = resize_image(intensity_to_uint8(image, modality, ct_window), size)
    return rgb, (resize_mask(mask, size) if mask is not None else None)
