"""``omnimedseg formats labels-to-masks``: split a label volume into one mask file per label.

Attached to the ``formats`` group by ``omnimedseg/cli/formats.py``
(``formats.add_command(labels_to_masks)``). The masks are written on the label's own
grid, unchanged (no resampling); with ``--image`` they are written on the image's grid: a
label on the same voxel grid stored in another axis order (ITK/Slicer/dcmqi row order vs
dcm2niix's) is reoriented losslessly and ``summary.json`` records it, and a label on another
grid is refused, saying which property differs, so a mis-paired label is caught before use.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from omnimedseg.cli import Env, pass_env
from omnimedseg.errors import UsageError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _parse_classes(pairs: tuple[str, ...]) -> dict[int, str]:
    classes: dict[int, str] = {}
    for pair in pairs:
        value, _, name = pair.partition("=")
        if not value.strip().isdigit() or not _NAME.match(name.strip()):
            raise UsageError(f"--class {pair!r}: expected ID=NAME, e.g. --class 1=liver (name: letters, digits, ._-)")
        classes[int(value)] = name.strip()
    if len(set(classes.values())) != len(classes):
        raise UsageError(f"--class: names must be unique, found {sorted(classes.values())}")
    return classes


def split_label_file(label_path: Path, out_dir: Path, image_path: Path | None = None,
                     classes: dict[int, str] | None = None, instances: bool = False) -> dict:
    """Write one mask per label (NIfTI for 3D, PNG for 2D) plus ``summary.json``; return the summary."""
    import numpy as np

    from omnimedseg.converters.formats.geometry import axcodes, conform_to_grid
    from omnimedseg.converters.formats.image2d import write_png
    from omnimedseg.converters.formats.imagedata import ImageData
    from omnimedseg.converters.formats.nifti import write_nifti
    from omnimedseg.converters.formats.volumes import (
        instances_to_semantic,
        labels_to_masks,
        read_geometry,
        read_label_volume,
    )

    label = read_label_volume(label_path)
    if image_path is not None:
        shape, affine = read_geometry(image_path)
        label = conform_to_grid(label, label_path, shape, affine, image_path)
    array = label.array
    if instances:
        n_instances = int(np.unique(array[array != 0]).size)
        array = instances_to_semantic(array, path=label_path)
        classes = {1: (classes or {}).get(1, "foreground")}
    masks = labels_to_masks(array, classes, label_path, keep_empty=True)
    ids = {name: value for value, name in (classes or {v: f"label_{v}" for v in np.unique(array) if v}).items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if label.is_3d else ".png"
    voxel = float(np.prod(label.spacing)) if label.spacing else None
    entries = []
    for name, mask in masks.items():
        file = f"{name}{suffix}"
        if label.is_3d:
            write_nifti(ImageData(mask.astype(np.uint8), label.affine), out_dir / file)
        else:
            write_png(mask, out_dir / file)
        count = int(mask.sum())
        entries.append({"label": int(ids[name]), "name": name, "file": file, "voxels": count,
                        "volume_mm3" if label.is_3d else "area_mm2": count * voxel if voxel else None})
    summary = {
        "label_file": str(label_path), "image": str(image_path) if image_path else None,
        "shape": list(label.array.shape), "spacing": [float(s) for s in label.spacing] if label.spacing else None,
        "affine": label.affine.tolist() if label.is_3d else None,
        "orientation": axcodes(label.affine) if label.is_3d else None,
        "instances": n_instances if instances else None, "reoriented": label.meta.get("reoriented"),
        "masks": entries,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


@click.command("labels-to-masks")
@click.argument("label_volume", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--image", "image", type=click.Path(dir_okay=False, path_type=Path),
              help="Reference image: masks are written on its grid (a label on the same voxel grid in another "
                   "axis order is reoriented losslessly); a label on another grid is refused.")
@click.option("--card", "dataset_id", help="Name masks by this dataset card's classes (every class written).")
@click.option("--class", "class_pairs", multiple=True, metavar="ID=NAME",
              help="Label id -> mask name (repeatable); default: label_<id> for each label present.")
@click.option("--instances", is_flag=True, help="Instance map: one mask of all instances (class 1, 'foreground').")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_env
def labels_to_masks(env: Env, label_volume: Path, out_dir: Path, image: Path | None, dataset_id: str | None,
                    class_pairs: tuple[str, ...], instances: bool, as_json: bool) -> None:
    """Split LABEL_VOLUME (NIfTI/MHA/MHD/NRRD, or 2D TIFF/PNG) into one mask per label in OUT_DIR.

    Writes <name>.nii.gz (3D) or <name>.png (2D) per label and summary.json.
    """
    if dataset_id and class_pairs:
        raise UsageError("give either --card or --class, not both")
    classes = dict(env.card(dataset_id).classes) if dataset_id else (_parse_classes(class_pairs) or None)
    summary = split_label_file(label_volume, out_dir, image, classes, instances)
    if as_json:
        click.echo(json.dumps(summary))
        return
    for entry in summary["masks"]:
        env.echo(f"{entry['label']:>5}  {entry['name']:<32} {entry['voxels']:>10} voxels  {entry['file']}")
    env.echo(f"{len(summary['masks'])} mask(s) written to {out_dir} (summary.json)")
