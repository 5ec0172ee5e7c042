"""Rebuild the demo's bundled raw files from the real sample files (a maintainer script, not run by ``demo``).

    python -m omnimedseg.demo.make_sample /path/to/shared/realdata
    omnimedseg --registry omnimedseg/demo/cards registry lock demo_hc18 --from omnimedseg/demo/files/demo_hc18 --write
    omnimedseg --registry omnimedseg/demo/cards registry lock demo_totalsegmentator \
        --from omnimedseg/demo/files/demo_totalsegmentator --write

What it writes and from what is stated in ATTRIBUTION.md. Zip entries get a fixed date so a rebuild
from the same inputs gives the same bytes (and the cards' pins stay valid).
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np

HERE = Path(__file__).resolve().parent
FILES = HERE / "files"
HC18_IMAGES = ("000_HC", "001_HC", "002_HC")
# Pixel sizes and head circumferences in the published CSV format (see ATTRIBUTION.md for their origin).
HC18_CSV = ("filename,pixel size(mm),head circumference (mm)\n"
            "000_HC.png,0.0691358041432,44.3\n001_HC.png,0.0891862285137,56.81\n002_HC.png,0.0926237475872,68.75\n")
# TotalSegmentator "total" label ids of the structures kept (the card's class names, v2 file names)
STRUCTURES = {"spleen": 1, "kidney_right": 2, "kidney_left": 3, "liver": 5}
CROP = (slice(4, 112), slice(16, 94), slice(0, 30))  # voxels holding the four structures plus a margin
CASE = "example_ct"
META = ("image_id;age;gender;institute;study_type;split;manufacturer;scanner_model;kvp;pathology;"
        "pathology_location\n" f"{CASE};;;;;train;;;;;\n")
FIXED_DATE = (2024, 1, 1, 0, 0, 0)


def _zip(path: Path, members: dict[str, bytes], compress: bool) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            info.external_attr = (0o40755 << 16) | 0x10 if name.endswith("/") else 0o644 << 16
            zf.writestr(info, data)


def _nifti_bytes(image: nib.Nifti1Image) -> bytes:
    # gzip with mtime 0 (nibabel's own writer stamps the time), so the bytes depend on the data only
    holder = io.BytesIO()
    file_map = image.make_file_map({"image": holder, "header": holder})
    image.to_file_map(file_map)
    import gzip

    return gzip.compress(holder.getvalue(), compresslevel=9, mtime=0)


def make_hc18(realdata: Path, out: Path) -> None:
    src = realdata / "hc18_ellipse" / "training_set"
    out.mkdir(parents=True, exist_ok=True)
    members = {}
    for stem in HC18_IMAGES:
        for name in (f"{stem}.png", f"{stem}_Annotation.png"):
            members[f"training_set/{name}"] = (src / name).read_bytes()  # byte-for-byte copies
    _zip(out / "training_set.zip", members, compress=False)  # PNGs are already compressed
    _zip(out / "test_set.zip", {"test_set/": b""}, compress=False)  # the sample holds no test image
    (out / "training_set_pixel_size_and_HC.csv").write_bytes(HC18_CSV.encode())
    (out / "test_set_pixel_size.csv").write_bytes(b"filename,pixel size(mm)\n")


def make_totalsegmentator(realdata: Path, out: Path) -> None:
    src = realdata / "totalseg_nifti"
    ct = nib.load(src / "example_ct_sm.nii.gz")
    labels = nib.load(src / "example_seg.nii.gz")
    ct_crop = ct.slicer[CROP]  # keeps the world position: the affine's origin moves with the crop
    label_map = np.asarray(labels.slicer[CROP].dataobj)
    members = {"meta.csv": META.encode(), f"{CASE}/ct.nii.gz": _nifti_bytes(
        nib.Nifti1Image(np.asarray(ct_crop.dataobj).astype(np.int16), ct_crop.affine))}
    for name, value in STRUCTURES.items():
        mask = nib.Nifti1Image((label_map == value).astype(np.uint8), ct_crop.affine)
        members[f"{CASE}/segmentations/{name}.nii.gz"] = _nifti_bytes(mask)
    out.mkdir(parents=True, exist_ok=True)
    _zip(out / "Totalsegmentator_dataset_v201.zip", members, compress=False)


if __name__ == "__main__":
    realdata = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/realdata")
    make_hc18(realdata, FILES / "demo_hc18")
    make_totalsegmentator(realdata, FILES / "demo_totalsegmentator")
    for path in sorted(FILES.rglob("*")):
        if path.is_file():
            print(f"{path.relative_to(HERE)}: {path.stat().st_size} B")
