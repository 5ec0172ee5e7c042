"""PyTorch datasets over the standard output (docs/format.md).

Samples are dicts with fixed keys (MONAI-style), so dict transforms apply directly:

=============  ==============================================================
``image``      float32 tensor, channels first: (C, H, W) or (C, I, J, K); the card's named
               channels in order (``channel_names``), colour components after each other
``masks``      bool tensor (n_classes, ...spatial); all False for unlabelled cases; the
               reference masks, or the masks of the rater chosen with ``rater=``
``annotated``  bool tensor (n_classes,): False for a class the case does not annotate
               (dataset.json ``unlabelled``; its mask is all False but means "unknown", not
               "absent"): skip it in losses and metrics. All False for unlabelled cases
``ignore``     bool tensor (...spatial): True where the image is unlabelled / outside the
               field of view (all False when the dataset marks nothing); exclude it in metrics
``instances``  int32 tensor (n_classes, ...spatial) of instance ids, 0 = none (only for
               datasets with instance maps)
``labelled``   whether the case has annotations
``class_names`` list of class names, in mask order
``case_id``    str
``spacing``    float64 numpy array of mm per spatial axis; NaN where the dataset gives none
``affine``     4x4 float64 numpy array; all NaN for 2D images (no world geometry)
``modality``   e.g. "CT", "ultrasound"
``dataset``    dataset id
``split``      the dataset's own split name
=============  ==============================================================

Every value collates with torch's default ``collate_fn`` (no ``None``; see
:func:`collatable_geometry`), so a plain ``DataLoader`` batches samples of one size.

Constructors never download: missing data raises ``DatasetNotFoundError`` with the
exact commands to run.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from omnimedseg import paths
from omnimedseg.converters.formats.outputs import read_output
from omnimedseg.errors import DatasetNotFoundError, UsageError, ValidationError


def open_converted(dataset_id: str, root: str | os.PathLike | None = None,
                   registry_dirs: Sequence[str] = ()) -> tuple[Path, dict]:
    """The converted folder of ``dataset_id`` and its dataset.json; errors say what to run."""
    from omnimedseg.registry import load_registry

    card = load_registry(registry_dirs).get(dataset_id)
    folder = paths.converted_dir(card.id, card.converter_version, root)
    if not (folder / ".complete").is_file():
        raise DatasetNotFoundError(f"{dataset_id}: no complete converted data in {folder}; run: "
                                   f"omnimedseg download {dataset_id} && omnimedseg convert {dataset_id}")
    try:
        return folder, json.loads((folder / "dataset.json").read_text())
    except (OSError, ValueError) as exc:
        raise ValidationError(f"{folder / 'dataset.json'}: not readable ({' '.join(str(exc).split())}); check the "
                              f"conversion with: omnimedseg validate {dataset_id} (then convert {dataset_id} "
                              f"--force)") from None


def _completion(folder: Path) -> tuple[int, int] | None:
    """Identity of a conversion: its ``.complete`` marker, a new file each time the folder is swapped in."""
    try:
        st = (folder / ".complete").stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def collatable_geometry(spacing, affine, spatial_dims: int) -> dict:
    """``spacing`` and ``affine`` of a sample as fixed-shape float64 arrays, NaN when unknown.

    torch's default collate cannot batch ``None``; NaN keeps "unknown" explicit (any
    arithmetic on it stays NaN) while every sample of a batch has the same shapes.
    """
    spacing_array = np.full(spatial_dims, np.nan)
    if spacing is not None:
        spacing_array[:] = spacing
    affine_array = np.full((4, 4), np.nan) if affine is None else np.array(affine, dtype=np.float64)
    return {"spacing": spacing_array, "affine": affine_array}


class ConvertedDataset:
    """Whole images (2D) or volumes (3D) of one converted dataset.

    Args:
        dataset_id: registry id.
        split: keep only this split (None keeps all).
        labelled_only: drop cases without annotations (e.g. HC18's test split).
        transform: callable applied to each sample dict.
        rater: take ``masks`` from this annotator (dataset.json ``raters``) instead of the
            reference; cases that rater did not annotate are dropped.
    """

    def __init__(self, dataset_id: str, split: str | None = None, root: str | os.PathLike | None = None,
                 transform: Callable[[dict], dict] | None = None, labelled_only: bool = True,
                 registry_dirs: Sequence[str] = (), rater: str | None = None):
        self.folder, self.info = open_converted(dataset_id, root, registry_dirs)
        self._converted = _completion(self.folder)  # which conversion this object lists the cases of
        self.registry_dirs = tuple(registry_dirs)  # where its card (and [medsegdb] mapping) was found
        meta = self.info["omnimedseg"]
        self.dataset_id, self.modality = meta["dataset_id"], meta["modality"]
        self.class_names: list[str] = list(meta["classes"])
        self.dimensionality: int = meta["dimensionality"]
        cases = self.info["cases"]
        splits = sorted({c["split"] for c in cases})
        if split is not None and split not in splits:
            raise UsageError(f"{dataset_id}: no split {split!r}; the dataset has {splits}")
        raters = self.info.get("raters", [])
        if rater is not None and rater not in raters:
            raise UsageError(f"{dataset_id}: no rater {rater!r}; the dataset's raters are {raters}")
        self.rater = rater
        self.cases = [c for c in cases if (split is None or c["split"] == split)
                      and (c["masks"] or not labelled_only) and (rater is None or rater in c.get("raters", {}))]
        self.has_instances = any(c.get("instances") for c in self.cases)
        self.transform = transform

    def mask_files(self, case: dict) -> dict[str, str]:
        """class -> mask file of a case: the reference masks, or the chosen rater's."""
        return case["raters"][self.rater] if self.rater is not None else case["masks"]

    def __len__(self) -> int:
        return len(self.cases)

    def annotated(self, case: dict) -> np.ndarray:
        """bool (n_classes,): which classes a case entry annotates (none for an unlabelled case;
        not those in its ``unlabelled`` list, whose empty masks mean "unknown")."""
        unlabelled = set(case.get("unlabelled", ())) if case["masks"] else set(self.class_names)
        return np.array([name not in unlabelled for name in self.class_names], dtype=bool)

    def load_case(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(image array, bool masks (n_classes, ...), affine) of one case, as stored."""
        case = self.cases[index]
        files = list(case.get("channels", {}).values()) or [case["image"]]
        image, affine = read_output(self.folder / files[0])
        spatial = image.shape[:2] if self.dimensionality == 2 else image.shape[:3]
        if len(files) > 1:  # named channels -> channels last, as colour components are stored
            parts = [image] + [read_output(self.folder / rel, spatial)[0] for rel in files[1:]]
            image = np.concatenate([p if p.ndim > len(spatial) else p[..., None] for p in parts], axis=-1)
        masks = np.zeros((len(self.class_names), *spatial), dtype=bool)
        mask_files = self.mask_files(case)
        for i, name in enumerate(self.class_names):
            if name in mask_files:
                masks[i] = read_output(self.folder / mask_files[name], spatial)[0].astype(bool)
        return image, masks, affine

    def load_annotations(self, index: int, spatial: tuple[int, ...]) -> dict[str, np.ndarray]:
        """``ignore`` (bool, spatial) and, for datasets with instance maps, ``instances`` (int32, per class)."""
        case = self.cases[index]
        extras = {"ignore": (read_output(self.folder / case["ignore"], spatial)[0].astype(bool) if case.get("ignore")
                             else np.zeros(spatial, dtype=bool))}
        if self.has_instances:
            instances = np.zeros((len(self.class_names), *spatial), dtype=np.int32)
            for i, name in enumerate(self.class_names):
                if name in case.get("instances", {}):
                    instances[i] = read_output(self.folder / case["instances"][name], spatial)[0]
            extras["instances"] = instances
        return extras

    def ignore_mask(self, index: int) -> np.ndarray | None:
        """The sample's ignore mask (True = unlabelled / outside the field of view), None when it has none."""
        case = self.cases[index]
        return read_output(self.folder / case["ignore"])[0].astype(bool) if case.get("ignore") else None

    def _sample(self, case: dict, image: np.ndarray, masks: np.ndarray, affine, spatial_dims: int,
                extras: dict[str, np.ndarray]) -> dict:
        import torch

        channels_last = image.ndim == spatial_dims + 1
        array = np.moveaxis(image, -1, 0) if channels_last else image[None]
        sample = {
            "image": torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)),
            "masks": torch.from_numpy(masks),
            "labelled": bool(case["masks"]),
            "annotated": torch.from_numpy(self.annotated(case)),
            "class_names": list(self.class_names),
            "case_id": case["case_id"],
            **collatable_geometry(case["spacing"], affine, spatial_dims),
            "modality": self.modality,
            "dataset": self.dataset_id,
            "split": case["split"],
            **{key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in extras.items()},
            **({"slice_index": case["slice_index"]} if "slice_index" in case else {}),  # before the transform
        }
        return self.transform(sample) if self.transform else sample

    def _check_current(self) -> None:
        """The converted folder is still the one listed at construction: after ``convert --force`` the case
        list (and a slice index, cached volumes) would be stale and silently serve the old data."""
        if _completion(self.folder) != self._converted:
            raise UsageError(f"{self.folder} was converted again after this {type(self).__name__} was created; "
                             f"create it again to read the new data")

    def raw_item(self, index: int) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray | None]:
        """(case entry, image in its stored dtype, bool masks, affine) of one sample."""
        self._check_current()
        image, masks, affine = self.load_case(index)
        return self.cases[index], image, masks, affine

    def __getitem__(self, index: int) -> dict:
        case, image, masks, affine = self.raw_item(index)
        return self._sample(case, image, masks, affine, self.dimensionality,
                            self.load_annotations(index, masks.shape[1:]))


class SliceDataset(ConvertedDataset):
    """2D slices drawn from the 3D volumes of a converted dataset.

    Volumes are decompressed once into an on-disk ``.npy`` cache under
    ``<root>/cache/`` and memory-mapped, so random slice access reads one slice
    instead of inflating the whole ``.nii.gz`` (bounded memory, worker-safe).

    Args:
        axis: 0, 1 or 2 (array axis i, j, k) to slice along.
        foreground_class: keep only slices where this class is present.
        open_volumes: how many volumes' memory maps each process keeps open.
    """

    def __init__(self, dataset_id: str, axis: int = 2, foreground_class: str | None = None,
                 open_volumes: int = 32, **kwargs):
        super().__init__(dataset_id, **kwargs)
        if self.dimensionality != 3:
            raise UsageError(f"{dataset_id} is 2D; use ConvertedDataset for 2D images")
        if axis not in (0, 1, 2):
            raise UsageError(f"axis must be 0, 1 or 2, found {axis}")
        if foreground_class is not None and foreground_class not in self.class_names:
            raise UsageError(f"{dataset_id}: no class {foreground_class!r}; classes are {self.class_names}")
        self.axis = axis
        self.open_volumes = open_volumes
        self._opened: OrderedDict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()
        self.cache_dir = paths.data_root(kwargs.get("root")) / "cache" / self.folder.relative_to(
            paths.data_root(kwargs.get("root")) / "converted")
        self.index: list[tuple[int, int]] = []
        for case_index in range(len(self.cases)):
            masks = self._cached(case_index)[1]  # (slices, n_classes, ...)
            if foreground_class is None:
                self.index.extend((case_index, s) for s in range(masks.shape[0]))
            else:
                fg = masks[:, self.class_names.index(foreground_class)].reshape(masks.shape[0], -1).any(1)
                self.index.extend((case_index, int(s)) for s in np.flatnonzero(fg))

    def _cached(self, case_index: int, rebuild: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                       dict[str, np.ndarray]]:
        """Memory-mapped (image, masks, affine) with the slice axis first and contiguous.

        The last ``open_volumes`` maps are kept open per process (parsing .npy headers
        costs more than reading a slice); the cache is rebuilt when the converted files
        change (their size and mtime are recorded in ``source.json``).
        """
        opened = self._opened.get(case_index)
        if opened is not None:
            self._opened.move_to_end(case_index)
            return opened
        from omnimedseg.converters._validate import case_files

        case = self.cases[case_index]
        folder = self.cache_dir / f"axis{self.axis}" / (f"rater-{self.rater}" if self.rater else "") / case["case_id"]
        extra_names = ["ignore"] + (["instances"] if self.has_instances else [])
        files = [folder / f"{n}.npy" for n in ("image", "masks", "affine", *extra_names)]
        stamp_file = folder / "source.json"
        stamp = json.dumps([[rel, *self._stat(rel)] for rel in case_files(case)])
        if rebuild or not (stamp_file.is_file() and stamp_file.read_text() == stamp and all(f.is_file() for f in files)):
            image, masks, affine = self.load_case(case_index)
            extras = self.load_annotations(case_index, masks.shape[1:])
            arrays = (np.ascontiguousarray(np.moveaxis(image, self.axis, 0)),
                      np.ascontiguousarray(np.moveaxis(masks, self.axis + 1, 0)), affine,
                      np.ascontiguousarray(np.moveaxis(extras["ignore"], self.axis, 0)),
                      *([np.ascontiguousarray(np.moveaxis(extras["instances"], self.axis + 1, 0))]
                        if self.has_instances else []))
            folder.mkdir(parents=True, exist_ok=True)
            for f, array in zip(files, arrays):
                self._atomic(f, lambda fh, a=array: np.save(fh, a))
            self._atomic(stamp_file, lambda fh: fh.write(stamp.encode()))  # last: marks the set complete
        try:
            image, masks = (np.load(f, mmap_mode="r") for f in files[:2])
            opened = (image, masks, np.load(files[2]),
                      {n: np.load(f, mmap_mode="r") for n, f in zip(extra_names, files[3:])})
        except (ValueError, OSError, EOFError):  # a cache file cut short or damaged on disk: built once more
            if rebuild:
                raise
            return self._cached(case_index, rebuild=True)
        self._opened[case_index] = opened
        while len(self._opened) > self.open_volumes:
            self._opened.popitem(last=False)
        return opened

    def _stat(self, rel: str) -> tuple[int, int]:
        st = (self.folder / rel).stat()
        return st.st_size, st.st_mtime_ns

    @staticmethod
    def _atomic(path: Path, write: Callable) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)  # atomic: concurrent workers never read a partial cache file

    def __getstate__(self) -> dict:
        """Open maps are per process: never pickle them (spawned workers would copy whole volumes)."""
        state = dict(self.__dict__)
        state["_opened"] = OrderedDict()
        return state

    def __len__(self) -> int:
        return len(self.index)

    def ignore_mask(self, index: int) -> np.ndarray | None:
        case_index, s = self.index[index]
        return np.array(self._cached(case_index)[3]["ignore"][s]) if self.cases[case_index].get("ignore") else None

    def raw_item(self, index: int) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
        self._check_current()
        case_index, s = self.index[index]
        image, masks, affine, _ = self._cached(case_index)
        case = self.cases[case_index]
        entry = {**case, "spacing": _slice_spacing(case["spacing"], self.axis), "slice_index": s}
        return entry, np.array(image[s]), np.array(masks[s]), affine

    def __getitem__(self, index: int) -> dict:
        case, image, masks, affine = self.raw_item(index)
        case_index, s = self.index[index]
        extras = {name: np.array(array[s]) for name, array in self._cached(case_index)[3].items()}
        return self._sample(case, image, masks, affine, spatial_dims=2, extras=extras)


def _slice_spacing(spacing, axis: int):
    if spacing is None:
        return None
    return tuple(v for i, v in enumerate(spacing) if i != axis)
