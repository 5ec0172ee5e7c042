"""Random-access sampling speed: naive nibabel/PIL vs MONAI LoadImaged vs omnimedseg datasets.

Two converted datasets are generated directly in the documented layout (docs/format.md):
3D CT-like volumes (default 10 x 512x512x100 int16, 3 classes, gzip NIfTI) sampled as
random axial slices, and 2D PNG images (default 200 x 540x800 uint8, 1 class) sampled at
random. Each sample is the image (float32) and its class masks (bool), as tensors.

  (a) naive: nibabel proxy slicing ``img.dataobj[..., k]`` per file / ``PIL.Image.open``
  (b) MONAI: ``LoadImaged`` on the case's image and mask files, then the slice
  (c) ours : ``SliceDataset`` (one-time .npy cache, memory-mapped) / ``ConvertedDataset``

Each is run through a DataLoader (batches of ``--batch``) loading in the main process
(= per worker) and with 2 worker processes, for one fixed random index sequence, until
``--seconds`` or ``--samples`` is reached.
The first batch (worker start-up) is not timed; torch uses one thread, as in workers.
Prints samples/s and ratios only.

    python benchmarks/bench_loading.py [--quick] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
import warnings
from importlib import resources
from pathlib import Path

import numpy as np

CLASSES3D = ("liver", "spleen", "left_kidney")


def write_card(registry: Path, dataset_id: str, modality: str, dimensionality: int, classes) -> None:
    """A registry card for a generated dataset: the HC18 card with id, modality and classes replaced."""
    text = resources.files("omnimedseg.registry").joinpath("hc18.toml").read_text()
    text = text.replace('id = "hc18"', f'id = "{dataset_id}"').replace('modality = "ultrasound"',
                                                                      f'modality = "{modality}"')
    text = text.replace("dimensionality = 2", f"dimensionality = {dimensionality}")
    text = text.replace('1 = "fetal_head"', "\n".join(f'{i} = "{c}"' for i, c in enumerate(classes, 1)))
    registry.mkdir(parents=True, exist_ok=True)
    (registry / f"{dataset_id}.toml").write_text(text)


def write_dataset(folder: Path, dataset_id: str, modality: str, dim: int, classes, cases: list[dict]) -> None:
    info = {"name": dataset_id, "tensorImageSize": f"{dim}D", "labels": {"background": 0, **{c: i for i, c in enumerate(classes, 1)}},
            "file_ending": ".png" if dim == 2 else ".nii.gz", "cases": cases,
            "omnimedseg": {"dataset_id": dataset_id, "modality": modality, "dimensionality": dim, "classes": list(classes)}}
    (folder / "dataset.json").write_text(json.dumps(info))
    (folder / ".complete").write_text("{}\n")


def make_3d(root: Path, n: int, shape: tuple[int, int, int]) -> None:
    """CT-like phantoms: a body ellipse (HU ~ 40 +- 20), three organ ellipsoids, air around."""
    import nibabel as nib

    folder = root / "converted" / "bench3d" / "1.0.0"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    i, j, k = np.ogrid[: shape[0], : shape[1], : shape[2]]
    ci, cj, ck = (s / 2 for s in shape)
    body = ((i - ci) / (0.45 * shape[0])) ** 2 + ((j - cj) / (0.35 * shape[1])) ** 2 <= 1
    cases = []
    for c in range(n):
        case = f"case_{c:03d}"
        volume = np.where(body, 40, -1000) + rng.normal(0, 20, shape)
        organs = {}
        for o, name in enumerate(CLASSES3D):
            centre = (ci + (o - 1) * shape[0] * 0.18, cj + rng.uniform(-0.1, 0.1) * shape[1], ck)
            organs[name] = (((i - centre[0]) / (0.08 * shape[0])) ** 2 + ((j - centre[1]) / (0.1 * shape[1])) ** 2
                            + ((k - centre[2]) / (0.3 * shape[2])) ** 2) <= 1
            volume[organs[name]] += 60 + 20 * o
        nib.save(nib.Nifti1Image(volume.astype(np.int16), affine), folder / "images" / f"{case}.nii.gz")
        (folder / "masks" / case).mkdir(parents=True)
        for name, mask in organs.items():
            nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), folder / "masks" / case / f"{name}.nii.gz")
        cases.append({"case_id": case, "split": "train", "image": f"images/{case}.nii.gz",
                      "masks": {m: f"masks/{case}/{m}.nii.gz" for m in CLASSES3D}, "shape": list(shape),
                      "spacing": [0.8, 0.8, 2.5], "meta": {}})
    write_dataset(folder, "bench3d", "CT", 3, CLASSES3D, cases)


def make_2d(root: Path, n: int, shape: tuple[int, int]) -> None:
    """Ultrasound-like 8-bit PNGs with a 1-bit elliptical mask."""
    from PIL import Image

    folder = root / "converted" / "bench2d" / "1.0.0"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(1)
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    cases = []
    for c in range(n):
        case = f"img_{c:04d}"
        mask = ((rows - shape[0] / 2) / (shape[0] * 0.3)) ** 2 + ((cols - shape[1] / 2) / (shape[1] * rng.uniform(0.2, 0.3))) ** 2 <= 1
        image = np.clip(rng.gamma(2.0, 30.0, shape) + 60 * mask, 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / "images" / f"{case}.png")
        (folder / "masks" / case).mkdir(parents=True)
        Image.fromarray(mask).save(folder / "masks" / case / "fetal_head.png")
        cases.append({"case_id": case, "split": "train", "image": f"images/{case}.png",
                      "masks": {"fetal_head": f"masks/{case}/fetal_head.png"}, "shape": list(shape),
                      "spacing": None, "meta": {}})
    write_dataset(folder, "bench2d", "ultrasound", 2, ["fetal_head"], cases)


class Naive3D:
    """What a training script usually does: open the NIfTI files and slice the proxy."""

    def __init__(self, folder: Path, cases: list[dict], index: list[tuple[int, int]]):
        self.folder, self.cases, self.index = folder, cases, index

    def __len__(self):
        return len(self.index)

    def __getitem__(self, n):
        import nibabel as nib
        import torch

        c, k = self.index[n]
        case = self.cases[c]
        image = np.asarray(nib.load(self.folder / case["image"]).dataobj[:, :, k], dtype=np.float32)
        masks = np.stack([np.asarray(nib.load(self.folder / p).dataobj[:, :, k]) > 0 for p in case["masks"].values()])
        return {"image": torch.from_numpy(image[None]), "masks": torch.from_numpy(masks)}


class Naive2D(Naive3D):
    def __getitem__(self, n):
        import torch
        from PIL import Image

        case = self.cases[self.index[n][0]]
        with Image.open(self.folder / case["image"]) as im:
            image = np.asarray(im, dtype=np.float32)
        masks = []
        for p in case["masks"].values():
            with Image.open(self.folder / p) as im:
                masks.append(np.asarray(im, dtype=bool))
        return {"image": torch.from_numpy(image[None]), "masks": torch.from_numpy(np.stack(masks))}


class Monai:
    """MONAI's usual pipeline: LoadImaged + EnsureChannelFirstd on the case's files, then the slice."""

    def __init__(self, folder: Path, cases: list[dict], index: list[tuple[int, int]], dim: int):
        from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

        self.folder, self.cases, self.index, self.dim = folder, cases, index, dim
        self.classes = list(cases[0]["masks"])
        keys = ["image", *self.classes]
        self.load = Compose([LoadImaged(keys=keys, image_only=True), EnsureChannelFirstd(keys=keys)])

    def __len__(self):
        return len(self.index)

    def __getitem__(self, n):
        import torch

        c, k = self.index[n]
        case = self.cases[c]
        data = self.load({"image": str(self.folder / case["image"]),
                          **{m: str(self.folder / p) for m, p in case["masks"].items()}})
        pick = (lambda t: t[..., k]) if self.dim == 3 else (lambda t: t)
        image = torch.as_tensor(pick(data["image"])).float()
        masks = torch.cat([torch.as_tensor(pick(data[m])) > 0 for m in self.classes])
        return {"image": image, "masks": masks}


def measure(dataset, order: list[int], workers: int, seconds: float, limit: int, batch: int) -> float:
    """Samples per second over ``order`` in batches (stopping after ``seconds`` or ``limit`` samples)."""
    import torch

    class Ordered(torch.utils.data.Sampler):
        def __iter__(self):
            return iter(order[:limit])

        def __len__(self):
            return min(limit, len(order))

    keep = lambda items: {"image": torch.stack([i["image"] for i in items]),  # noqa: E731
                          "masks": torch.stack([i["masks"] for i in items])}
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=Ordered(), num_workers=workers,
                                         collate_fn=keep)
    start, count = None, 0
    for b in loader:  # the first batch (worker start-up, cold caches) is not timed
        if start is None:
            start = time.perf_counter()
            continue
        count += len(b["image"])
        if time.perf_counter() - start > seconds:
            break
    elapsed = time.perf_counter() - start
    del loader
    return count / elapsed


def run(kind: str, ours, naive, monai, order, args) -> None:
    print(f"\n{kind}")
    print(f"{'method':<26}{'loading in':>12}{'samples/s':>11}{'ours x':>9}")
    for workers in (0, 2):
        rates = {}
        for name, ds in (("(a) naive nibabel/PIL", naive), ("(b) MONAI LoadImaged", monai), ("(c) omnimedseg", ours)):
            rates[name] = measure(ds, order, workers, args.seconds, args.samples, args.batch)
        for name, rate in rates.items():
            ratio = rates["(c) omnimedseg"] / rate
            label = "1 process" if workers == 0 else "2 workers"
            print(f"{name:<26}{label:>12}{rate:>11.1f}{ratio:>9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data and short runs (a smoke test)")
    parser.add_argument("--data", type=Path, help="folder for the generated data root (kept; reused when present)")
    parser.add_argument("--seconds", type=float, help="time limit per measurement")
    parser.add_argument("--samples", type=int, default=2000, help="sample limit per measurement")
    parser.add_argument("--batch", type=int, default=8, help="DataLoader batch size")
    args = parser.parse_args()
    n3, shape3, n2, shape2 = (3, (256, 256, 40), 40, (270, 400)) if args.quick else (10, (512, 512, 100), 200, (540, 800))
    args.seconds = args.seconds or (2.0 if args.quick else 15.0)
    tag = "quick" if args.quick else "full"
    root = (args.data or Path(tempfile.gettempdir()) / "omnimedseg_bench_loading") / tag
    registry = root / "registry"
    write_card(registry, "bench3d", "CT", 3, CLASSES3D)
    write_card(registry, "bench2d", "ultrasound", 2, ["fetal_head"])
    if not (root / "converted" / "bench3d" / "1.0.0" / ".complete").is_file():
        shutil.rmtree(root / "converted", ignore_errors=True)
        start = time.perf_counter()
        make_3d(root, n3, shape3)
        make_2d(root, n2, shape2)
        print(f"generated data in {time.perf_counter() - start:.0f} s under {root}")
    shutil.rmtree(root / "cache", ignore_errors=True)
    warnings.filterwarnings("ignore")  # MONAI's optional-codec notices
    import torch

    torch.set_num_threads(1)  # as in DataLoader workers; avoids thread contention on shared CPUs
    logging.disable(logging.WARNING)

    from omnimedseg.data import ConvertedDataset, SliceDataset

    kw = {"root": root, "registry_dirs": (str(registry),)}
    start = time.perf_counter()
    slices = SliceDataset("bench3d", axis=2, **kw)
    build = time.perf_counter() - start
    print(f"3D: {n3} volumes {shape3} int16, {len(CLASSES3D)} classes; 2D: {n2} PNG {shape2} uint8, 1 class")
    print(f"one-time slice cache build: {build:.1f} s ({n3 / build:.2f} volumes/s); "
          f"time limit {args.seconds:.0f} s / {args.samples} samples per measurement")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(slices)).tolist()
    index = [(c, k) for c, k in slices.index]
    run("2D slices from converted 3D NIfTI (random access)", slices, Naive3D(slices.folder, slices.cases, index),
        Monai(slices.folder, slices.cases, index, 3), order, args)
    images = ConvertedDataset("bench2d", **kw)
    order = rng.permutation(len(images)).tolist()
    index = [(c, 0) for c in range(len(images))]
    run("2D PNG images (random access)", images, Naive2D(images.folder, images.cases, index),
        Monai(images.folder, images.cases, index, 2), order, args)


if __name__ == "__main__":
    main()
