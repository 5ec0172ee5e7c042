"""The reference evaluation protocol of MedSegX, on MedSegDB trees and on our converted data.

Per labelled image: the tight box of the label is the prompt, the model predicts three masks
(``sigmoid > 0.5``), the mask with the best Dice is kept and HD95 (pixels) is taken from that
same mask. Results are written as the reference scripts write them: a per-file CSV
(``File,DSC,HD``) and a markdown summary per dataset / task (/ sequence) with the mean over all
files, one pair per report: ``ID`` (internal), ``<OOD|RealWorld>/<cross_site|cross_task>``
(external) and ``converted`` for our datasets (evaluated at MedSegDB's 256 x 256).

HD95 is :func:`omnimedseg.metrics.hd95` (boundary pixels, larger of the two directed 95th
percentiles, as MONAI's metric the reference uses). For an empty prediction the reference's
HausdorffDistance copy returns the 95th percentile of the distances from the label's
background pixels to the label; ``empty_hd="reference"`` (default) reproduces that, while
``empty_hd="diagonal"`` keeps :func:`hd95`'s convention (image diagonal).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from omnimedseg.files import atomic_write_text
from omnimedseg.metrics import dice, hd95
from omnimedseg.models.errors import ModelError
from omnimedseg.models.inference import predict
from omnimedseg.models.sam import Sam
from omnimedseg.models.training import MEDSEGDB_SIZE, PromptedSamples, unwrap

EMPTY_HD = ("reference", "diagonal")

#: (task, dataset) pairs and sequences of the reference external evaluation (evaluate_external.py).
REFERENCE_EXTERNAL = {
    "cross_site": {("CBCT_Tooth", "DentalPanoramicRadiographsDataset"), ("CT_GallBladder", "Totalsegmentator_dataset"),
                   ("CT_LeftKidney", "BTCV"), ("CT_RightKidney", "BTCV"), ("CT_LeftLung", "COVID_19_Seg"),
                   ("CT_RightLung", "COVID_19_Seg"), ("CT_Liver", "SLIVER07"), ("CT_Pancreas", "FLARE22Train"),
                   ("CT_Stomach", "FLARE22Train"), ("Fundus_OpticCup", "inFundus"), ("Fundus_OpticDisc", "ADAM"),
                   ("MRI_LeftAtrium", "HeartSegMRI"), ("MRI_Prostate", "prostate158"), ("MRI_RightVentricle", "MM"),
                   ("MRI_RightVentricularMyocardium", "MM"), ("MRI_Spleen", "CHAOS"), ("xray_LeftLung", "ShenZhen"),
                   ("xray_RightLung", "ShenZhen")},
    "cross_task": {("CT_ColonCancer", "MSD_Task10"), ("CT_KidneyTumor", "KiPA22"), ("CT_KidneyTumor", "KiTS19"),
                   ("CT_LiverCancer", "MSD_Task03"), ("CT_LiverCancer", "MSD_Task08"), ("CT_LungCancer", "LNDb"),
                   ("CT_PancreasCancer", "MSD_Task07"), ("MRI_ProstateTumor", "prostate158"),
                   ("MRI_ProstateTumor", "PicaiBaseline"), ("MRI_VestibularSchwannoma", "CrossMoDA2022")},
}
REFERENCE_SEQUENCES = {("cross_site", "CHAOS"): "T2W", ("cross_task", "prostate158"): "T2",
                       ("cross_task", "PicaiBaseline"): "T2W"}


def reference_hd_for_empty_prediction(label: np.ndarray) -> float:
    """The reference's HD for an empty prediction: 95th percentile, over background pixels,
    of the Euclidean distance to the nearest label pixel."""
    from scipy.ndimage import distance_transform_edt

    label = np.asarray(label, dtype=bool)
    return float(np.percentile(distance_transform_edt(~label)[~label], 95)) if (~label).any() else 0.0


def best_of_masks(masks: np.ndarray, label: np.ndarray, empty_hd: str = "reference") -> tuple[int, float, float]:
    """(index, Dice, HD95 in pixels) of the mask with the best Dice among ``masks`` (M, H, W).

    Ties keep the first mask, as ``torch.max`` in the reference. HD95 comes from that mask.
    """
    if empty_hd not in EMPTY_HD:
        raise ModelError(f"empty_hd must be one of {EMPTY_HD}, got {empty_hd!r}")
    scores = [dice(m, label) for m in masks]
    best = int(np.argmax(scores))
    mask = masks[best]
    if empty_hd == "reference" and not mask.any() and np.asarray(label).any():
        hd = reference_hd_for_empty_prediction(label)
    else:
        hd = hd95(mask, label)
    return best, float(scores[best]), float(hd)


@dataclass
class Report:
    """One CSV + markdown pair (e.g. internal ID, or OOD cross_site)."""

    name: str  # "ID", "OOD/cross_site", "converted", ...
    rows: list[dict] = field(default_factory=list)  # File, DSC, HD, mask + grouping keys

    @property
    def title(self) -> str:
        if self.name in ("ID", "converted"):
            return "internal evaluation" if self.name == "ID" else "evaluation (converted datasets)"
        group, shift = self.name.split("/")
        return f"external {shift} evaluation" + ("" if group == "OOD" else f" ({group})")

    @property
    def stem(self) -> str:
        return "internal" if self.name == "ID" else self.name.split("/")[-1]

    def means(self, rows=None) -> dict[str, float]:
        rows = self.rows if rows is None else rows
        return {"DSC": float(np.mean([r["DSC"] for r in rows])), "HD": float(np.mean([r["HD"] for r in rows]))}

    def csv_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["File", "DSC", "HD"])
        for row in sorted(self.rows, key=lambda r: r["File"]):
            writer.writerow([row["File"], repr(row["DSC"]), repr(row["HD"])])
        return buffer.getvalue()

    def markdown(self) -> str:
        """The reference layout: ID lists dataset -> task (-> sequence); external task -> dataset."""
        external = "/" in self.name
        outer, inner = ("task", "dataset") if external else ("dataset", "task")
        tree: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
        for row in self.rows:
            tree[row[outer]][row[inner]][row["sequence"]].append(row)
        fmt = lambda m: f"DSC ({m['DSC']:.4f}), HD ({m['HD']:.4f})"  # noqa: E731
        lines = [f"# {self.title}", ""]
        for a in sorted(tree):
            lines.append(f"- {a}")
            for b in sorted(tree[a]):
                sequences = tree[a][b]
                if list(sequences) == [None]:
                    lines.append(f"  - {b}: {fmt(self.means(sequences[None]))}")
                    continue
                lines.append(f"  - {b}")
                for seq in sorted(sequences, key=str):
                    lines.append(f"    - {seq}: {fmt(self.means(sequences[seq]))}")
        lines += ["- ALL", f"  - Mean: {fmt(self.means())}", ""]
        return "\n".join(lines)


@dataclass
class EvaluationResult:
    reports: dict[str, Report]
    files: list[Path]

    def summary(self) -> dict:
        return {name: {"files": len(r.rows), **r.means()} for name, r in self.reports.items()}


def _write(path: Path, text: str) -> Path:
    atomic_write_text(path, text)
    return path


def _selected(meta: dict) -> bool:
    if meta["shift"] is None:
        return True
    pairs = REFERENCE_EXTERNAL.get(meta["shift"])
    if pairs is None or (meta["task"], meta["dataset"]) not in pairs:
        return False
    wanted = REFERENCE_SEQUENCES.get((meta["shift"], meta["dataset"]))
    return wanted is None or meta["sequence"] == wanted


def evaluate(model: Sam, data, out_dir: str | os.PathLike | None = None, *, batch_size: int = 8,
             autocast_dtype=None, empty_hd: str = "reference", reference_selection: bool = False,
             progress=None) -> EvaluationResult:
    """Run the reference protocol on ``data`` (a dataset or :class:`PromptedSamples`).

    Writes ``<out_dir>/<report>/<stem>.csv`` and ``.md`` (``ID/internal.*``,
    ``OOD/cross_site/cross_site.*``, ``converted/converted.*``...) and ``summary.json``.
    ``reference_selection`` keeps only the external (task, dataset, sequence) combinations the
    reference script evaluates (a no-op for ID data).
    """
    model = unwrap(model)
    samples = data if isinstance(data, PromptedSamples) else PromptedSamples(
        data, size=MEDSEGDB_SIZE, require_context=model.is_medsegx)
    samples = samples.for_evaluation().with_options(box_shift=0)  # inference files, tight box
    positions = range(len(samples))
    metas = {p: samples.describe(p) for p in positions}
    if reference_selection:
        positions = [p for p in positions if _selected(metas[p])]
        if not positions:
            raise ModelError("no file left after the reference selection of (task, dataset) pairs")
    was_training = model.training
    model.eval()
    reports: dict[str, Report] = {}
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(samples, list(positions)), batch_size=batch_size)
    try:
        for batch in loader:
            pred = predict(model, batch["image"], boxes=batch["box"], context=batch["context"],
                           autocast_dtype=autocast_dtype)
            masks = pred.masks.cpu().numpy()
            labels = batch["mask"].numpy()
            for b, position in enumerate(batch["position"].tolist()):
                meta = metas[position]
                index, dsc, hd = best_of_masks(masks[b], labels[b], empty_hd)
                name = "converted" if meta["group"] == "converted" else (
                    "ID" if meta["shift"] is None else f"{meta['group']}/{meta['shift']}")
                report = reports.setdefault(name, Report(name))
                report.rows.append({"File": meta["file"], "DSC": dsc, "HD": hd, "mask": index,
                                    "dataset": meta["dataset"], "task": meta["task"], "sequence": meta["sequence"]})
            if progress is not None:
                progress(len(batch["position"]))
    finally:
        model.train(was_training)
    files: list[Path] = []
    if out_dir is not None:
        out_dir = Path(out_dir)
        for name, report in sorted(reports.items()):
            folder = out_dir / name
            files.append(_write(folder / f"{report.stem}.csv", report.csv_text()))
            files.append(_write(folder / f"{report.stem}.md", report.markdown()))
        result = EvaluationResult(reports, files)
        files.append(_write(out_dir / "summary.json", json.dumps(result.summary(), indent=2) + "\n"))
        return result
    return EvaluationResult(reports, files)
