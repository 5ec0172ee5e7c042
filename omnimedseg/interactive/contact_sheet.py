"""Draw prompts over a 2D image (or one slice of a volume) with Pillow, for eyeballing robot
users and benchmark sessions. Pillow takes ``(x, y)`` = ``(col, row)``; all conversions from
array-index order happen here, in one place, so an x/y swap shows up immediately on a
non-square image.

Session sheets of a volume with an affine are drawn in the radiological view of QA sheets
(:mod:`omnimedseg.data.display`): the image, masks and every prompt are mapped by the same
:class:`~omnimedseg.data.display.DisplayView` before drawing, so they move together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from omnimedseg.data.display import DisplayView, array_view, radiological_view
from omnimedseg.errors import UsageError
from omnimedseg.interactive.clicks import inner_boundary
from omnimedseg.interactive.prompts import Box, Click, NoInteraction, Polygon, Prompt, Scribble

__all__ = ["draw_prompts", "contact_sheet", "SessionPanel", "PanelPlacement", "session_sheet", "prompt_slice",
           "displayed_prompt", "LEGEND"]

POSITIVE = (40, 220, 60)
NEGATIVE = (235, 50, 50)
OUTLINE = (255, 215, 0)
PREDICTION = (0, 150, 255)
NEWEST = (255, 255, 255)
LEGEND = [("positive prompt", POSITIVE), ("negative prompt", NEGATIVE), ("reference outline", OUTLINE),
          ("prediction (filled)", PREDICTION), ("this step's prompt (white ring)", NEWEST)]
TITLE_HEIGHT = 16


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


def _resized_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 0


def prompt_slice(prompt, axis: int) -> int | None:
    """The slice along ``axis`` a prompt of a volume lies on (its centre for a box or a volume scribble)."""
    if isinstance(prompt, Click):
        return prompt.coord[axis]
    if getattr(prompt, "slice_axis", None) == axis and prompt.slice_index is not None:
        return int(prompt.slice_index)
    if isinstance(prompt, Box):
        return (prompt.lo[axis] + prompt.hi[axis]) // 2
    if isinstance(prompt, Scribble) and len(prompt):
        return int(np.median(prompt.coords[:, axis]))
    return None


def draw_prompts(image, prompts: Sequence[Prompt], label=None, *, slice_axis: int | None = None,
                 slice_index: int | None = None, zoom: float | tuple[float, float] = 1, title: str | None = None,
                 prediction=None, newest: Prompt | None = None) -> Image.Image:
    """Render ``prompts`` on ``image`` (2D, or the given slice of a 3D volume), with the outline of
    ``label`` and a light fill of ``prediction``; ``newest`` gets a white ring. ``zoom`` (may be < 1) is
    one factor or (rows, columns) factors: pixel (r, c) is drawn centred at ``((c + .5) * zx, (r + .5) * zy)``."""
    img = np.asarray(image)
    lab = None if label is None else np.asarray(label, dtype=bool)
    pred = None if prediction is None else np.asarray(prediction, dtype=bool)
    if img.ndim == 3:
        if slice_axis is None or slice_index is None:
            raise UsageError("draw_prompts: expected slice_axis and slice_index for a 3D volume, found None")
        img = np.take(img, slice_index, axis=slice_axis)
        lab = None if lab is None else np.take(lab, slice_index, axis=slice_axis)
        pred = None if pred is None else np.take(pred, slice_index, axis=slice_axis)
    elif img.ndim != 2:
        raise UsageError(f"draw_prompts: expected a 2D image or 3D volume, found shape {img.shape}")
    canvas = _to_rgb(img)
    zy, zx = (float(zoom), float(zoom)) if np.isscalar(zoom) else (float(zoom[0]), float(zoom[1]))
    z = min(zy, zx)  # marker sizes
    size = (max(1, round(canvas.width * zx)), max(1, round(canvas.height * zy)))
    if size != canvas.size:
        canvas = canvas.resize(size, Image.NEAREST if z >= 1 else Image.BILINEAR)
    px = np.asarray(canvas).astype(np.float32)
    if pred is not None:
        m = _resized_mask(pred, size)
        px[m] = 0.55 * px[m] + 0.45 * np.asarray(PREDICTION, np.float32)
    if lab is not None:
        px[inner_boundary(_resized_mask(lab, size))] = OUTLINE
    canvas = Image.fromarray(px.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    cx = lambda col: (col + 0.5) * zx  # pixel-centre position on the zoomed canvas
    cy = lambda row: (row + 0.5) * zy
    r = 4 + min(max(z, 1), 6)
    for p in prompts:
        color = POSITIVE if p.positive else NEGATIVE
        ring = p is newest
        if isinstance(p, Scribble):
            half_x, half_y = max(zx, 1) / 2, max(zy, 1) / 2
            for row, col in _plane(p.coords, slice_axis, slice_index):
                x0, y0 = cx(col) - half_x, cy(row) - half_y
                draw.rectangle([x0, y0, max(x0, x0 + 2 * half_x - 1), max(y0, y0 + 2 * half_y - 1)], fill=color)
        elif isinstance(p, Click):
            rc = _plane(np.asarray([p.coord]), slice_axis, slice_index)
            if len(rc):
                y, x = cy(rc[0][0]), cx(rc[0][1])  # (row, col) -> (y, x)
                if ring:
                    draw.ellipse([x - r - 3, y - r - 3, x + r + 3, y + r + 3], outline=NEWEST, width=2)
                draw.ellipse([x - r, y - r, x + r, y + r], outline=color, width=2)
                draw.line([x - r, y, x + r, y], fill=color)
                draw.line([x, y - r, x, y + r], fill=color)
            continue
        elif isinstance(p, Box):
            lo, hi = np.asarray(p.lo), np.asarray(p.hi)
            if slice_axis is not None:
                if not lo[slice_axis] <= slice_index <= hi[slice_axis]:
                    continue
                lo, hi = np.delete(lo, slice_axis), np.delete(hi, slice_axis)
            x0, y0 = lo[1] * zx, lo[0] * zy  # inclusive corners: the far edge is the last pixel's far side
            corners = [x0, y0, max(x0, (hi[1] + 1) * zx - 1), max(y0, (hi[0] + 1) * zy - 1)]
            if ring:
                draw.rectangle([corners[0] - 3, corners[1] - 3, corners[2] + 3, corners[3] + 3], outline=NEWEST)
            draw.rectangle(corners, outline=color, width=2)
            continue
        elif isinstance(p, Polygon):
            if p.slice_axis is not None and (p.slice_axis, p.slice_index) != (slice_axis, slice_index):
                continue
            pts = [(cx(col), cy(row)) for row, col in p.vertices]  # (row, col) -> (x, y)
            if len(pts) >= 2:
                draw.line(pts + pts[:1], fill=color, width=2)
            for x, y in pts:
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)
        if ring:  # scribble or polygon: ring around its extent on this plane
            pts = (_plane(p.coords, slice_axis, slice_index) if isinstance(p, Scribble) else np.asarray(p.vertices))
            if len(pts):
                (r0, c0), (r1, c1) = pts.min(0), pts.max(0)
                draw.rectangle([cx(c0) - r, cy(r0) - r, cx(c1) + r, cy(r1) + r], outline=NEWEST)
    if title:  # above the image, never over it (prompts near the top edge stay visible)
        titled = Image.new("RGB", (canvas.width, canvas.height + TITLE_HEIGHT), (0, 0, 0))
        titled.paste(canvas, (0, TITLE_HEIGHT))
        ImageDraw.Draw(titled).text((3, 2), title, fill=(255, 255, 255))
        return titled
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


@dataclass(frozen=True)
class SessionPanel:
    """One scored step of a session: every prompt given so far (the last one is this step's, or
    ``NoInteraction``), the prediction the metrics were computed on, and its Dice."""

    step: int
    prompts: tuple[Prompt, ...]
    interaction: Prompt | NoInteraction
    prediction: np.ndarray
    dice: float


def _index(view: DisplayView, array_axis: int, index: int) -> int:
    """The displayed index of slice ``index`` along ``array_axis``."""
    point = np.zeros(3, np.int64)
    point[array_axis] = index
    return int(view.points(point)[0, view.axis(array_axis)])


def displayed_prompt(prompt: Prompt | NoInteraction, view: DisplayView) -> Prompt | NoInteraction:
    """``prompt`` of a volume (array index order) in ``view``'s displayed (slice, row, column) order: points
    and scribble voxels mapped, box corners re-sorted per axis after flips, a slice-bound prompt's slice axis
    and index (and a polygon's in-plane vertices) mapped with it."""
    if isinstance(prompt, NoInteraction):
        return prompt
    common = {"positive": prompt.positive, "component_id": prompt.component_id}
    axis = getattr(prompt, "slice_axis", None)
    if axis is not None:
        common.update(slice_axis=view.axis(axis),
                      slice_index=None if prompt.slice_index is None else _index(view, axis, prompt.slice_index))
    if isinstance(prompt, Click):
        return Click(coord=tuple(view.points(prompt.coord)[0]), **common)
    if isinstance(prompt, Box):
        corners = view.points([prompt.lo, prompt.hi])
        return Box(lo=tuple(corners.min(0)), hi=tuple(corners.max(0)), style=prompt.style, **common)
    if isinstance(prompt, Scribble):
        return Scribble(coords=view.points(prompt.coords), shape=tuple(prompt.shape[a] for a in view.axes), **common)
    if isinstance(prompt, Polygon):
        if axis is None:
            raise UsageError("displayed_prompt: expected a polygon of a volume on a slice, found slice_axis None")
        full = np.empty((len(prompt), 3))  # vertices are (row, col) over the other two array axes, in order
        full[:, axis] = prompt.slice_index
        full[:, [a for a in range(3) if a != axis]] = prompt.vertices
        in_plane = [d for d in range(3) if d != common["slice_axis"]]
        return Polygon(vertices=view.points(full)[:, in_plane].reshape(-1, 2), **common)
    raise UsageError(f"displayed_prompt: expected Click, Box, Scribble or Polygon, found {type(prompt).__name__}")


def _panel_slice(panels: Sequence[SessionPanel], reference: np.ndarray, axis: int) -> list[int]:
    """Per panel, the slice of a volume shown: where this step's prompt lies (else the previous panel's,
    else the reference's largest cross-section)."""
    area = reference.sum(axis=tuple(a for a in range(reference.ndim) if a != axis))
    current, out = int(area.argmax()), []
    for p in panels:
        k = prompt_slice(p.interaction, axis) if not isinstance(p.interaction, NoInteraction) else None
        current = current if k is None else int(k)
        out.append(current)
    return out


def _displayed_panel(panel: SessionPanel, view: DisplayView) -> SessionPanel:
    """``panel`` with its volumes and prompts mapped by ``view``; this step's prompt stays the very object
    among the prompts (it is ringed by identity)."""
    prompts = tuple(displayed_prompt(q, view) for q in panel.prompts)
    newest = [m for q, m in zip(panel.prompts, prompts) if q is panel.interaction]
    return SessionPanel(panel.step, prompts, newest[0] if newest else displayed_prompt(panel.interaction, view),
                        view.volume(panel.prediction), panel.dice)


@dataclass(frozen=True)
class PanelPlacement:
    """Where one panel's image lies on a session sheet: its top-left ``(x, y)``, ``zoom`` = sheet pixels per
    displayed (row, column) pixel, the displayed ``slice`` (None for 2D) and the ``view`` mapping array
    indices to displayed ones (None for 2D)."""

    x: int
    y: int
    zoom: tuple[float, float]
    slice: int | None
    view: DisplayView | None

    def sheet_xy(self, coord) -> tuple[float, float]:
        """Sheet ``(x, y)`` of the centre of array pixel / voxel ``coord`` (array index order): its displayed
        ``(row, col)`` is drawn at ``(x + (col + .5) * zoom[1], y + (row + .5) * zoom[0])``."""
        row, col = coord if self.view is None else self.view.points(coord)[0, 1:]
        return self.x + (col + 0.5) * self.zoom[1], self.y + (row + 0.5) * self.zoom[0]

    def shows(self, coord) -> bool:
        """Whether voxel ``coord`` lies on this panel's slice (always for 2D)."""
        return self.view is None or int(self.view.points(coord)[0, 0]) == self.slice


def _view_note(view: DisplayView | None) -> str:
    if view is None:
        return "2D image as stored (rows = array axis 0, columns = axis 1)"
    if view.plane is None:
        rows, cols = view.axes[1:]
        return (f"no geometry: volume as stored, k = index along array axis {view.axes[0]}, rows = axis {rows}, "
                f"columns = axis {cols}, square pixels")
    return (f"{view.plane} slices, radiological view as in QA sheets (patient right on the image's left, "
            f"{'anterior' if view.plane == 'axial' else 'superior'} up; '{view.plane} k' = RAS slice index k), "
            f"voxel spacing's aspect")


def session_sheet(image, reference, panels: Sequence[SessionPanel], path, *, heading: str, columns: int = 6,
                  panel_size: int = 240, slice_axis: int = 2, affine=None,
                  plane: str = "axial") -> tuple[Path, list[PanelPlacement]]:
    """A PNG of one benchmark session: one panel per step with the scored prompts, the prediction,
    the reference outline and Dice, a heading (with a line saying how the image is oriented) and a legend.

    A volume with ``affine`` is shown in the radiological ``plane`` of QA sheets with its pixel spacing's
    aspect; without, as stored (slices along ``slice_axis``, square pixels). Returns the path and, per panel,
    its :class:`PanelPlacement` (``placement.sheet_xy(coord)`` is where array voxel ``coord`` is drawn)."""
    if not panels:
        raise UsageError("session_sheet: expected at least one step, found none")
    image = np.asarray(image)
    reference = np.asarray(reference, dtype=bool)
    volume = reference.ndim == 3
    if affine is not None and not volume:
        raise UsageError(f"session_sheet: an affine needs a 3D reference, found shape {reference.shape}")
    view = None
    if volume:
        view = radiological_view(affine, reference.shape, plane) if affine is not None else (
            array_view(reference.shape, slice_axis))
        image, reference = view.volume(image), view.volume(reference)
        panels = [_displayed_panel(p, view) for p in panels]
    slices = _panel_slice(panels, reference, 0) if volume else [None] * len(panels)
    height, width = reference.shape[-2:]
    row_mm, col_mm = view.pixel_spacing if view is not None and view.pixel_spacing else (1.0, 1.0)
    scale = panel_size / max(height * row_mm, width * col_mm)  # square display pixels, the longer side panel_size
    zoom = (scale * row_mm, scale * col_mm)
    label = "" if view is None or view.plane is None else f"{view.plane} "
    tiles = []
    for p, k in zip(panels, slices):
        what = "no prompt" if isinstance(p.interaction, NoInteraction) else (
            f"{'+' if p.interaction.positive else '-'}{type(p.interaction).__name__.lower()}")
        where = f" {label}k={k}" if volume else ""
        tiles.append(draw_prompts(image, p.prompts, reference, prediction=p.prediction, zoom=zoom,
                                  slice_axis=0 if volume else None, slice_index=k,
                                  newest=None if isinstance(p.interaction, NoInteraction) else p.interaction,
                                  title=f"step {p.step}: {what}{where} Dice {p.dice:.3f}"))
    columns = max(1, min(columns, len(tiles)))
    w, h = tiles[0].size
    gap, rows = 4, -(-len(tiles) // columns)
    note = _view_note(view)
    legend_w = sum(28 + 6 * len(name) for name, _ in LEGEND)
    width = max(columns * (w + gap) + gap, legend_w + gap, 6 * max(len(heading), len(note)) + 2 * gap)
    top, legend_h = 32, 18
    sheet = Image.new("RGB", (width, top + rows * (h + gap) + legend_h + gap), (30, 30, 30))
    draw = ImageDraw.Draw(sheet)
    draw.text((gap, 3), heading, fill=(255, 255, 255))
    draw.text((gap, 17), note, fill=(200, 200, 200))
    placed = []
    for i, t in enumerate(tiles):
        x, y = gap + (i % columns) * (w + gap), top + (i // columns) * (h + gap)
        sheet.paste(t, (x, y))
        placed.append(PanelPlacement(x, y + TITLE_HEIGHT, zoom, slices[i], view))
    x, y = gap, top + rows * (h + gap) + 2
    for name, rgb in LEGEND:
        draw.rectangle([x, y + 2, x + 10, y + 11], fill=rgb)
        draw.text((x + 14, y + 1), name, fill=(255, 255, 255))
        x += 14 + 6 * len(name) + 14
    path = Path(path)
    sheet.save(path)
    return path, placed
