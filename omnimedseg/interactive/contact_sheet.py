"""Draw prompts over a 2D image (or one slice of a volume) with Pillow, for eyeballing robot
users. Pillow takes ``(x, y)`` = ``(col, row)``; all conversions from array-index order happen
here, in one place, so an x/y swap shows up immediately on a non-square image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from omnimedseg.errors import UsageError
from omnimedseg.interactive.clicks import inner_boundary
from omnimedseg.interactive.prompts import Box, Click, Polygon, Prompt, Scribble

__all__ = ["draw_prompts", "contact_sheet"]

POSITIVE = (40, 220, 60)
NEGATIVE = (235, 50, 50)
OUTLINE = (255, 215, 0)


def _to_rgb(image: np.ndarray) -> Image.Image:
    a = np.asarray(image, dtype=np.float64)
    lo, hi = np.percentile(a, [0.5, 99.5]) if a.size else (0, 1)
    a = np.clip((a - lo) / (hi - lo if hi > lo else 1.0), 0, 1) * 255
    return Image.fromarray(a.astype(np.uint8), mode="L").convert("RGB")


def _plane(prompt_coords: np.ndarray, axis: int | None, index: int | None):
    if axis is None:
        return prompt_coords
    keep = prompt_coords[:, axis] == index
    return np.delete(prompt_coords[keep], axis, axis=1)


def draw_prompts(image, prompts: Sequence[Prompt], label=None, *, slice_axis: int | None = None,
                 slice_index: int | None = None, zoom: int = 1, title: str | None = None) -> Image.Image:
    """Render ``prompts`` on ``image`` (2D, or the given slice of a 3D volume)."""
    img = np.asarray(image)
    lab = None if label is None else np.asarray(label, dtype=bool)
    if img.ndim == 3:
        if slice_axis is None or slice_index is None:
            raise UsageError("draw_prompts: expected slice_axis and slice_index for a 3D volume, found None")
        img = np.take(img, slice_index, axis=slice_axis)
        lab = None if lab is None else np.take(lab, slice_index, axis=slice_axis)
    elif img.ndim != 2:
        raise UsageError(f"draw_prompts: expected a 2D image or 3D volume, found shape {img.shape}")
    canvas = _to_rgb(img)
    if zoom != 1:
        canvas = canvas.resize((canvas.width * zoom, canvas.height * zoom), Image.NEAREST)
    px = np.asarray(canvas).copy()
    z = zoom

    def paint(rc: np.ndarray, color):
        for dr in range(z):
            for dc in range(z):
                rr, cc = rc[:, 0] * z + dr, rc[:, 1] * z + dc
                ok = (rr >= 0) & (rr < px.shape[0]) & (cc >= 0) & (cc < px.shape[1])
                px[rr[ok], cc[ok]] = color

    if lab is not None:
        paint(np.argwhere(inner_boundary(lab)), OUTLINE)
    for p in prompts:
        if isinstance(p, Scribble):
            paint(_plane(p.coords, slice_axis, slice_index), POSITIVE if p.positive else NEGATIVE)
    canvas = Image.fromarray(px)
    draw = ImageDraw.Draw(canvas)
    c = lambda v: (v + 0.5) * z  # pixel-centre position on the zoomed canvas
    for p in prompts:
        color = POSITIVE if p.positive else NEGATIVE
        if isinstance(p, Click):
            rc = _plane(np.asarray([p.coord]), slice_axis, slice_index)
            if len(rc):
                y, x = c(rc[0][0]), c(rc[0][1])  # (row, col) -> (y, x)
                r = 4 + z
                draw.ellipse([x - r, y - r, x + r, y + r], outline=color, width=2)
                draw.line([x - r, y, x + r, y], fill=color)
                draw.line([x, y - r, x, y + r], fill=color)
        elif isinstance(p, Box):
            lo, hi = np.asarray(p.lo), np.asarray(p.hi)
            if slice_axis is not None:
                if not lo[slice_axis] <= slice_index <= hi[slice_axis]:
                    continue
                lo, hi = np.delete(lo, slice_axis), np.delete(hi, slice_axis)
            draw.rectangle([lo[1] * z, lo[0] * z, (hi[1] + 1) * z - 1, (hi[0] + 1) * z - 1], outline=color, width=2)
        elif isinstance(p, Polygon):
            if p.slice_axis is not None and (p.slice_axis, p.slice_index) != (slice_axis, slice_index):
                continue
            pts = [(c(col), c(row)) for row, col in p.vertices]  # (row, col) -> (x, y)
            if len(pts) >= 2:
                draw.line(pts + pts[:1], fill=color, width=2)
            for x, y in pts:
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)
    if title:
        draw.rectangle([0, 0, 8 * len(title) + 6, 14], fill=(0, 0, 0))
        draw.text((3, 1), title, fill=(255, 255, 255))
    return canvas


def contact_sheet(image, label, panels: Mapping[str, Sequence[Prompt]], path, *, columns: int = 4,
                  zoom: int = 1, **slice_kw) -> Path:
    """One panel per entry of ``panels`` (title -> prompts), tiled into a PNG at ``path``."""
    tiles = [draw_prompts(image, ps, label, zoom=zoom, title=name, **slice_kw) for name, ps in panels.items()]
    if not tiles:
        raise UsageError("contact_sheet: expected at least one panel, found none")
    w, h = tiles[0].size
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * w, rows * h), (30, 30, 30))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % columns) * w, (i // columns) * h))
    path = Path(path)
    sheet.save(path)
    return path
