"""Visual QA of a converted dataset: contact sheets of image + mask overlays and an HTML index.

The sample is stratified and deterministic for a given seed: cases are visited in a
seeded random order and kept while fewer than ``n_images`` are kept or while a class
they contain has fewer than ``per_class`` examples (the OmniMedSeg QA protocol: at
least 20 images per dataset, at least 5 per class). A class found in no case is
reported. 3D cases are reoriented to RAS and shown in radiological convention
(patient right on the image's left; anterior / superior up) in three planes, each at
the slice showing the most classes, then the largest cross-section, with the voxel spacing's aspect ratio.
The automated checks of ``omnimedseg validate`` run too and are shown on the page.

Datasets with more than the image and reference masks get extra sheets: one tile per
named channel (``channels``), every non-reference rater's masks (``rater_<name>``) and
instance maps with one colour per instance (``instances``); ignore regions are greyed
out on every tile (legend "ignore").
"""

from __future__ import annotations

import functools
import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from omnimedseg import paths
from omnimedseg.data.display import PLANES, radiological_view
from omnimedseg.errors import UsageError
from omnimedseg.progress import SILENT, Progress

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
           (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
           (0, 0, 128), (128, 128, 128)]
IGNORE_GREY = (90, 90, 90)  # ignore / outside the field of view is blended towards this
MAX_INSTANCES_SHOWN = 256


def colour(index: int, n_classes: int = len(PALETTE)) -> tuple[int, int, int]:
    """Distinct colours: a fixed palette up to 20 classes, a far-apart palette of saturated colours beyond."""
    if n_classes <= len(PALETTE):
        return PALETTE[index]
    return _far_apart_palette(n_classes)[index]


@functools.lru_cache(maxsize=8)
def _far_apart_palette(n: int) -> list[tuple[int, int, int]]:
    """``n`` saturated colours picked one by one, each the farthest from those already picked.

    Hand-written because no palette library (colorcet's glasbey) is a dependency. Evenly spaced hues
    gave TotalSegmentator's 117 classes pairs 11 RGB units apart (liver and vertebrae_l6 looked alike).
    Distances are "redmean" weighted RGB (closer to what the eye sees than plain RGB); greys, pale and
    dark colours are left out (max - min channel >= 128): they would vanish on greyscale images.
    """
    levels = np.arange(0, 256, 17)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3).astype(float)
    grid = grid[grid.max(1) - grid.min(1) >= 128]
    picked = [np.asarray(PALETTE[0], float)]
    distance = _redmean(grid, picked[0])
    while len(picked) < n:
        best = grid[int(distance.argmax())]
        picked.append(best)
        distance = np.minimum(distance, _redmean(grid, best))
    return [tuple(int(v) for v in c) for c in picked]


def _redmean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Weighted RGB distance (the "redmean" approximation of perceived colour difference)."""
    red = (a[..., 0] + b[..., 0]) / 2
    d = a - b
    return np.sqrt((2 + red / 256) * d[..., 0] ** 2 + 4 * d[..., 1] ** 2 + (2 + (255 - red) / 256) * d[..., 2] ** 2)


@dataclass
class QAReport:
    dataset_id: str
    folder: Path
    index_html: Path
    seed: int
    sample: list[dict]
    sheets: list[Path]
    findings: list[str] = field(default_factory=list)
    validation_ok: bool = True
    validation_problems: list[str] = field(default_factory=list)


def stratified_sample(n_cases: int, class_names: Sequence[str], presence: Callable[[int], set[str]],
                      n_images: int = 20, per_class: int = 5, seed: int = 0) -> tuple[list[int], dict[int, set[str]]]:
    """(chosen case indices in visiting order, classes present in every visited case).

    Stops visiting as soon as both quotas are met, so big datasets are not read whole.
    """
    order = np.random.default_rng(seed).permutation(n_cases)
    counts = dict.fromkeys(class_names, 0)
    chosen, seen = [], {}
    for i in (int(i) for i in order):
        if len(chosen) >= n_images and all(v >= per_class for v in counts.values()):
            break
        present = seen[i] = presence(i)
        if len(chosen) < n_images or any(counts[c] < per_class for c in present):
            chosen.append(i)
            for c in present:
                counts[c] += 1
    return chosen, seen


def render_tile(image: np.ndarray, masks: np.ndarray, class_indices: Sequence[int], modality: str, title: str,
                size: int = 256, pixel_spacing: tuple[float, float] | None = None, ignore: np.ndarray | None = None):
    """Image (H, W[, C]) with the outlines and a light fill of ``masks`` (n, H, W) drawn in class colours;
    ``ignore`` (H, W) pixels are greyed out."""
    from PIL import Image, ImageDraw

    from omnimedseg.data.preprocessing import intensity_to_uint8
    from omnimedseg.interactive.clicks import inner_boundary

    h, w = image.shape[:2]
    row_mm, col_mm = pixel_spacing or (1.0, 1.0)
    height, width = h * row_mm / min(row_mm, col_mm), w * col_mm / min(row_mm, col_mm)  # square display pixels
    scale = size / max(height, width)
    out_h, out_w = max(1, round(height * scale)), max(1, round(width * scale))
    rgb = Image.fromarray(intensity_to_uint8(image, modality)).resize((out_w, out_h), Image.BILINEAR)
    px = np.asarray(rgb, dtype=np.float32).copy()
    if ignore is not None and ignore.any():
        hidden = np.asarray(Image.fromarray(ignore.astype(np.uint8) * 255).resize((out_w, out_h), Image.NEAREST)) > 0
        px[hidden] = 0.35 * px[hidden] + 0.65 * np.asarray(IGNORE_GREY, np.float32)
    for c in class_indices:
        mask = np.asarray(Image.fromarray(masks[c].astype(np.uint8) * 255).resize((out_w, out_h), Image.NEAREST)) > 0
        colour_c = np.asarray(colour(c, len(masks)), np.float32)
        px[mask] = 0.7 * px[mask] + 0.3 * colour_c
        px[inner_boundary(mask)] = colour_c
    tile = Image.new("RGB", (size, out_h + 14), (20, 20, 20))  # as tall as the image: no letterbox bands
    tile.paste(Image.fromarray(px.astype(np.uint8)), ((size - out_w) // 2, 14))
    ImageDraw.Draw(tile).text((2, 1), title[: size // 6], fill=(255, 255, 255))
    return tile


TILE_GAP = 6  # pixels between tiles, so neighbouring images do not read as one


def _sheet(tiles: list, columns: int, legend: list[tuple[str, tuple[int, int, int]]], heading: str):
    """Tiles on a grid of cells as large as the largest tile, separated by gaps; a sheet with fewer tiles
    than ``columns`` is only as wide as its tiles (no empty half page); the legend wraps under the heading."""
    from PIL import Image, ImageDraw

    w, h = max(t.size[0] for t in tiles), max(t.size[1] for t in tiles)
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    width = max(columns * (w + TILE_GAP) + TILE_GAP, 6 * len(heading) + 2 * TILE_GAP)
    places, x, y = [], TILE_GAP, 18
    for name, _ in legend:
        item = 14 + 6 * len(name) + 16
        if x > TILE_GAP and x + item > width:
            x, y = TILE_GAP, y + 14
        places.append((x, y))
        x += item
    top = (y + 14 if legend else y) + 2
    sheet = Image.new("RGB", (width, top + rows * (h + TILE_GAP)), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    draw.text((TILE_GAP, 2), heading, fill=(255, 255, 255))
    for (name, rgb), (x, y) in zip(legend, places):
        draw.rectangle([x, y + 2, x + 10, y + 11], fill=rgb)
        draw.text((x + 14, y + 1), name, fill=(255, 255, 255))
    for n, t in enumerate(tiles):
        cell_x, cell_y = TILE_GAP + (n % columns) * (w + TILE_GAP), top + (n // columns) * (h + TILE_GAP)
        sheet.paste(t, (cell_x + (w - t.size[0]) // 2, cell_y))
    return sheet


def _case_tiles(dataset, index: int, class_indices: Sequence[int], size: int, spot: int | None,
                channel: int | None = None) -> list:
    """Tiles of one case, ignore regions greyed out: the first channel of a multi-channel image, untitled,
    or, with ``channel``, that channel with its name in the title (every channel, the first included)."""
    image, masks, affine = dataset.load_case(index)
    if len(dataset.info.get("channel_names", {})) > 1:  # named channels, stacked last by the data layer
        image = image[..., channel or 0]
    ignore = dataset.load_annotations(index, masks.shape[1:])["ignore"]
    suffix = f" {list(dataset.info['channel_names'].values())[channel]}" if channel is not None else ""
    return _tiles(dataset, dataset.cases[index], image, masks, affine, ignore, class_indices, size, spot, suffix)


def _tiles(dataset, case: dict, image: np.ndarray, masks: np.ndarray, affine, ignore: np.ndarray,
           class_indices: Sequence[int], size: int, spot: int | None, suffix: str = "") -> list:
    """The image (2D), or three planes at the ``focus_slice`` of ``spot`` or of all classes (3D), masks drawn."""
    if dataset.dimensionality == 2:
        spacing = tuple(case["spacing"]) if case.get("spacing") else None
        empty = "" if any(masks[c].any() for c in class_indices) else " [no mask]"
        return [render_tile(image, masks, class_indices, dataset.modality, f"{case['case_id']}{suffix}{empty}", size,
                            spacing, ignore)]
    grey = image if image.ndim == 3 else image[..., 0]
    by_class = np.moveaxis(masks, 0, -1)  # (I, J, K, n): displayed like the image, class axis kept last
    tiles = []
    for plane in PLANES:
        view = radiological_view(affine, grey.shape, plane)
        shown = np.moveaxis(view.volume(by_class), -1, 0)  # (n, slice, row, column)
        k = focus_slice(shown[[spot] if spot is not None else list(class_indices)], 0)
        tiles.append(render_tile(view.image(grey, k), shown[:, k], class_indices, dataset.modality,
                                 f"{case['case_id']}{suffix} {plane} {k}", size, view.pixel_spacing,
                                 view.image(ignore, k)))
    return tiles


def focus_slice(masks: np.ndarray, axis: int) -> int:
    """The slice along ``axis`` (0-2) of ``masks`` (n, X, Y, Z) showing the most classes, then the largest
    area of them all: a class nested in another (a tumour in its organ) is shown, not only the widest organ."""
    per_class = masks.sum(axis=tuple(a + 1 for a in range(3) if a != axis))  # (n, slices)
    if not per_class.any():
        return masks.shape[axis + 1] // 2
    present = (per_class > 0).sum(0)
    area = masks.any(0).sum(axis=tuple(a for a in range(3) if a != axis))
    return int(np.lexsort((-area, -present))[0])


def _instance_tiles(dataset, index: int, size: int) -> list:
    """Tiles of one case with every instance (of every class) in its own colour."""
    image, _, affine = dataset.load_case(index)
    if len(dataset.info.get("channel_names", {})) > 1:
        image = image[..., 0]
    extras = dataset.load_annotations(index, image.shape[:dataset.dimensionality])
    instances = extras["instances"]
    objects = [instances[c] == v for c in range(len(instances))
               for v in np.unique(instances[c]) if v][:MAX_INSTANCES_SHOWN]
    masks = np.stack(objects) if objects else np.zeros((0, *instances.shape[1:]), bool)
    return _tiles(dataset, dataset.cases[index], image, masks, affine, extras["ignore"], range(len(masks)), size,
                  None, f" {len(objects)} instances")


def run_qa(dataset_id: str, out: str | os.PathLike | None = None, *, root=None, registry_dirs: Sequence[str] = (),
           seed: int = 0, n_images: int = 20, per_class: int = 5, tile: int = 256, force: bool = True,
           progress: Progress = SILENT) -> QAReport:
    """Write contact sheets and ``index.html`` for ``dataset_id`` into ``out`` (default ``<root>/qa/<id>/<version>``);
    ``progress`` reports the validation, the cases sampled and the sheets drawn."""
    from omnimedseg.converters._validate import recorded_raw, validate_converted
    from omnimedseg.data.datasets import ConvertedDataset
    from omnimedseg.data.exports import staged

    if n_images < 1 or per_class < 0 or tile < 32:
        raise UsageError(f"expected n_images >= 1, per_class >= 0, tile >= 32; found {n_images}, {per_class}, {tile}")
    dataset = ConvertedDataset(dataset_id, root=root, registry_dirs=registry_dirs, labelled_only=True)
    version = dataset.folder.name
    out = Path(out) if out is not None else paths.data_root(root) / "qa" / dataset.dataset_id / version
    report = validate_converted(dataset.folder, recorded_raw(dataset.folder, paths.raw_dir(dataset.dataset_id, root)),
                                progress)
    names = dataset.class_names
    if not dataset.cases:  # nothing labelled: show images only
        dataset = ConvertedDataset(dataset_id, root=root, registry_dirs=registry_dirs, labelled_only=False)

    def presence(i: int) -> set[str]:
        masks = dataset.load_case(i)[1]
        return {c for c, m in zip(names, masks) if m.any()}

    with progress.task(f"qa {dataset.dataset_id}: sampling cases", len(dataset), unit="case") as advance:
        def counted(i: int) -> set[str]:
            advance(1)
            return presence(i)

        chosen, seen = stratified_sample(len(dataset), names, counted, n_images, per_class, seed)
    chosen = sorted(chosen, key=lambda i: (dataset.cases[i]["split"], dataset.cases[i]["case_id"]))  # findable
    findings = []
    exhausted = len(seen) == len(dataset)
    labelled = any(case["masks"] for case in dataset.cases)
    having = {c: sum(c in p for p in seen.values()) for c in names}
    # a class a case does not annotate (dataset.json unlabelled) is unknown there, not empty
    annotating = {c: sum(c not in dataset.cases[i].get("unlabelled", ()) for i in seen) for c in names}
    if exhausted and labelled:
        absent = [c for c in names if having[c] == 0]
        rare = [f"{c} ({having[c]})" for c in names if 0 < having[c] < per_class]
        if absent:
            counts = sorted({annotating[c] for c in absent})
            findings.append(f"class(es) empty in all {' or '.join(map(str, counts))} labelled cases that annotate "
                            f"them: {', '.join(absent)}")
        if rare:
            findings.append(f"class(es) in fewer than {per_class} cases (count): {', '.join(rare)}")
    if len(dataset) < n_images:
        findings.append(f"only {len(dataset)} {'labelled ' if labelled else ''}case(s): fewer than {n_images} to show")
    empty = [dataset.cases[i]["case_id"] for i in chosen if dataset.cases[i]["masks"] and not seen[i]]
    if empty:
        findings.append(f"{len(empty)} sampled labelled case(s) have all masks empty: {empty[:10]}")
    legend = [(c, colour(i, len(names))) for i, c in enumerate(names)]
    if any(case.get("ignore") for case in dataset.cases):
        legend.append(("ignore (greyed)", IGNORE_GREY))
    columns = 3 if dataset.dimensionality == 3 else 5
    per_sheet = 18 if dataset.dimensionality == 3 else 20
    with staged(out, force, f"omnimedseg qa {dataset_id}") as staging, \
            progress.task(f"qa {dataset.dataset_id}: drawing sheets", None, unit="sheet") as drawn:
        sheets: list[Path] = []

        def write(prefix: str, tiles: list, heading: str, legend_items) -> None:
            for page, start in enumerate(range(0, len(tiles), per_sheet), 1):
                drawn(1)
                path = staging / f"{prefix}_{page:02d}.png"
                _sheet(tiles[start:start + per_sheet], columns, legend_items,
                       f"{dataset.dataset_id} {version} - {heading} (seed {seed}, page {page})").save(path)
                sheets.append(out / path.name)

        everything = list(range(len(names)))
        write("overview", [t for i in chosen for t in _case_tiles(dataset, i, everything, tile, None)],
              f"{len(chosen)} sampled cases, all classes", legend)
        for c, name in enumerate(names if len(names) > 1 else []):  # one class: the overview is its sheet
            with_c = [i for i in chosen if name in seen[i]][: max(per_class, 1)]
            if with_c:
                write(f"class_{c + 1:03d}_{name}", [t for i in with_c for t in _case_tiles(dataset, i, [c], tile, c)],
                      f"class {name}: {len(with_c)} cases", [legend[c]])
        few = chosen[: max(per_class, 1)]
        channel_names = list(dataset.info.get("channel_names", {}).values())
        if len(channel_names) > 1:
            write("channels", [t for i in few for ch in range(len(channel_names))
                               for t in _case_tiles(dataset, i, everything, tile, None, ch)],
                  f"channels {', '.join(channel_names)} of {len(few)} cases", legend)
        for rater in dataset.info.get("raters", []):
            if rater == dataset.info.get("reference_rater"):
                continue  # its masks are the reference masks shown above
            by_rater = ConvertedDataset(dataset_id, root=root, registry_dirs=registry_dirs, rater=rater)
            ids = {dataset.cases[i]["case_id"] for i in few}
            picked = [j for j, case in enumerate(by_rater.cases) if case["case_id"] in ids]
            if picked:
                write(f"rater_{rater}", [t for j in picked for t in _case_tiles(by_rater, j, everything, tile, None)],
                      f"rater {rater}: {len(picked)} cases", legend)
        if dataset.has_instances:
            with_instances = [i for i in chosen if dataset.cases[i].get("instances")][: max(per_class, 1)]
            write("instances", [t for i in with_instances for t in _instance_tiles(dataset, i, tile)],
                  f"instances of {len(with_instances)} cases (one colour per instance)", [])
        sample = [{"case_id": dataset.cases[i]["case_id"], "split": dataset.cases[i]["split"],
                   "classes": sorted(seen[i], key=names.index)} for i in chosen]
        qa = QAReport(dataset.dataset_id, out, out / "index.html", seed, sample, sheets, findings, report.ok,
                      list(report.problems))
        (staging / "index.html").write_text(_html(qa, dataset, version))
        (staging / "qa.json").write_text(json.dumps({"dataset": qa.dataset_id, "version": version, "seed": seed,
                                                     "sample": sample, "findings": findings,
                                                     "validation_ok": report.ok, "validation_problems": report.problems,
                                                     "sheets": [p.name for p in sheets]}, indent=2) + "\n")
    return qa


def _view_note(dataset) -> str:
    """How the tiles are displayed, for this dataset's dimensionality."""
    if dataset.dimensionality == 3:
        return ("Volumes are reoriented to RAS and shown in radiological view (patient right on the image's left), "
                "axial, coronal and sagittal planes at the slice showing the most classes, then the largest "
                "cross-section, with the voxel spacing's aspect ratio.")
    return ("Images are shown as stored (first row at the top), scaled to the tile with the pixel spacing's "
            "aspect ratio; masks are outlined with a light fill in their class colour.")


def _html(qa: QAReport, dataset, version: str) -> str:
    e = html.escape
    status = "OK" if qa.validation_ok else f"{len(qa.validation_problems)} problem(s)"
    rows = "\n".join(f"<tr><td>{e(s['case_id'])}</td><td>{e(s['split'])}</td><td>{e(', '.join(s['classes']) or '-')}</td></tr>"
                     for s in qa.sample)
    problems = "".join(f"<li>{e(p)}</li>" for p in qa.validation_problems)
    findings = "".join(f"<li>{e(f)}</li>" for f in qa.findings) or "<li>none</li>"
    sheets = "\n".join(f'<h3>{e(p.stem)}</h3><a href="{e(p.name)}"><img src="{e(p.name)}" style="max-width:100%"></a>'
                       for p in qa.sheets)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>QA {e(qa.dataset_id)} {e(version)}</title></head>
<body style="font-family:sans-serif">
<h1>QA: {e(qa.dataset_id)} {e(version)}</h1>
<p>{e(dataset.modality)}, {dataset.dimensionality}D, {len(dataset.cases)} cases, classes: {e(', '.join(dataset.class_names))}.
Folder: <code>{e(str(dataset.folder))}</code>. Sample seed {qa.seed} (cases sorted by split and id); rerun with <code>omnimedseg qa {e(qa.dataset_id)} --seed {qa.seed}</code>.
{e(_view_note(dataset))}</p>
<h2>Automated checks (validate): {e(status)}</h2><ul>{problems}</ul>
<h2>QA findings</h2><ul>{findings}</ul>
<h2>Sample ({len(qa.sample)} cases)</h2>
<table border="1" cellpadding="3"><tr><th>case</th><th>split</th><th>classes present</th></tr>
{rows}</table>
<h2>Contact sheets</h2>
{sheets}
</body></html>
"""
