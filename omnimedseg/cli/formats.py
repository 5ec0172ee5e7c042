"""``omnimedseg formats``: the DICOM-family format operations as standalone commands.

Each command is a thin wrapper over one documented function (docs/formats.md) and raises
:class:`~omnimedseg.errors.OmnimedsegError` subclasses; the main CLI prints them in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from omnimedseg.cli.options import jobs_option

_LEVEL = click.option("--compression-level", type=click.IntRange(0, 9), default=None,
                      help="gzip level for .nii.gz (default: the measured default in formats.nifti).")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON summary.")
_SERIES = click.option("--series", "series_uid", metavar="UID", default=None,
                       help="SeriesInstanceUID to use when the folder holds several series.")


@click.group()
def formats() -> None:
    """Convert DICOM series, RTSTRUCT and DICOM-SEG files to NIfTI."""


@formats.command("dicom-to-nifti")
@click.argument("series_dir", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@_SERIES
@click.option("--resample", is_flag=True,
              help="Resample series with gantry tilt, missing slices or uneven spacing onto a regular grid "
                   "(default: refuse them).")
@click.option("--split", is_flag=True,
              help="Write a 4D series (positions repeated per time point: fMRI, DCE, multi-phase) as one 3D "
                   "file per time point, <name>_t001.nii.gz ... (default: one 4D file).")
@jobs_option(1, "Processes decoding compressed (JPEG-2000, JPEG-LS, RLE) slices in parallel.")
@_LEVEL
@_JSON
def dicom_to_nifti_command(series_dir: Path, out: Path, series_uid: str | None, resample: bool, split: bool,
                           jobs: int, compression_level: int | None, as_json: bool) -> None:
    """Convert the DICOM series in SERIES_DIR to OUT.

    OUT ending in .nii/.nii.gz receives the one series (use --series when there are several);
    any other OUT is a folder that receives every series as <number>_<description>.nii.gz.
    A series whose slice positions repeat is stacked as 4D, ordered by temporal position /
    acquisition number / acquisition time / instance number (docs/formats.md).
    """
    from omnimedseg.converters.formats.dicom import dicom_to_nifti

    written = dicom_to_nifti(series_dir, out, series_uid=series_uid,
                             on_irregular="resample" if resample else "error", compression_level=compression_level,
                             split=split, workers=jobs)
    if as_json:
        click.echo(json.dumps({"source": str(series_dir), "outputs": written}))
        return
    for item in written:
        shape = "x".join(str(v) for v in item["shape"])
        spacing = "x".join(f"{v:.3f}" for v in item["spacing_mm"])
        note = " (resampled)" if item["resampled"] else ""
        if item.get("time_points"):
            info = item["time_points"]
            note += (f" (time point {info['index']} of {info['count']}" if "index" in info
                     else f" ({info['count']} time points") + f", ordered by {info['ordered_by']})"
        click.echo(f"wrote {item['file']}: {shape} {item['dtype']}, {spacing} mm, {item['n_files']} files of series "
                   f"{item['series_uid'] or '(no UID)'}{note}")


def _print_masks(summary: dict, out_dir: Path, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"wrote {len(summary['masks'])} masks and summary.json to {out_dir} "
               f"(series {summary['series_uid']}, shape {'x'.join(str(v) for v in summary.get('shape', []))})")
    for m in summary["masks"]:
        where = f"slices {m['contour_slices'] if 'contour_slices' in m else m['slices']}" if not m["empty"] else "empty"
        click.echo(f"  {m['file']}: {m['voxels']} voxels, {where}")


@formats.command("seg-to-masks")
@click.argument("seg", type=click.Path(path_type=Path))
@click.argument("series_dir", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@_SERIES
@click.option("--fractional", type=click.Choice(["threshold", "probability"]), default="threshold",
              show_default=True, help="FRACTIONAL segments: binary mask at --threshold, or float32 fractions.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Fraction at or above which a FRACTIONAL voxel is in the mask.")
@_LEVEL
@_JSON
def seg_to_masks_command(seg: Path, series_dir: Path, out_dir: Path, series_uid: str | None, fractional: str,
                         threshold: float, compression_level: int | None, as_json: bool) -> None:
    """Write one NIfTI mask per segment of SEG (on the series in SERIES_DIR) into OUT_DIR."""
    from omnimedseg.converters.formats.dicom_seg import seg_to_masks

    summary = seg_to_masks(seg, series_dir, out_dir, series_uid=series_uid, fractional=fractional,
                           threshold=threshold, compression_level=compression_level)
    _print_masks(summary, out_dir, as_json)


@formats.command("rtstruct-to-masks")
@click.argument("rtstruct", type=click.Path(path_type=Path))
@click.argument("series_dir", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@_SERIES
@_LEVEL
@_JSON
def rtstruct_to_masks_command(rtstruct: Path, series_dir: Path, out_dir: Path, series_uid: str | None,
                              compression_level: int | None, as_json: bool) -> None:
    """Write one NIfTI mask per ROI of RTSTRUCT (on the series in SERIES_DIR) into OUT_DIR."""
    from omnimedseg.converters.formats.rtstruct import rtstruct_to_masks

    summary = rtstruct_to_masks(rtstruct, series_dir, out_dir, series_uid=series_uid,
                                compression_level=compression_level)
    _print_masks(summary, out_dir, as_json)


__all__ = ["formats"]


from omnimedseg.cli.formats_labels import labels_to_masks  # noqa: E402  (its own module, one command)

formats.add_command(labels_to_masks)
