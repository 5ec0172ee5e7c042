"""SAM, MedSAM and MedSegX as benchmark models (``model = "sam"`` in a suite).

SAM takes clicks (scribbles become a few of their points), boxes, and its own previous
low-resolution mask for iterative refinement; MedSegX is driven by boxes, its training
prompt, with the modality/organ/task context of the class from the MedSegDB label tree.
The image is encoded once per case and reused for every interaction.
"""

from __future__ import annotations

import numpy as np

from omnimedseg.benchmark.models import InteractiveModel
from omnimedseg.errors import UsageError
from omnimedseg.interactive.prompts import Box, Click, Polygon, Scribble

POINTS_PER_SCRIBBLE = 5


class SamInteractiveModel(InteractiveModel):
    """Args:
        config: a preset of :data:`omnimedseg.models.PRESETS` (``sam_vit_b``, ``medsegx_vit_b``, ``tiny``...).
        sam_checkpoint / medsegx_checkpoint: official files (paths); none = random weights (tests only).
        device: "cpu" or "cuda"; autocast: None, "bf16" or "fp16".
        organ_fallback: MedSegDB task of the same organ, for classes outside the organ tree.
        refine: feed the previous low-resolution mask back to the decoder (SAM's iterative mode).
    """

    name = "sam"

    def __init__(self, config: str = "sam_vit_b", sam_checkpoint: str | None = None,
                 medsegx_checkpoint: str | None = None, device: str = "cpu", autocast: str | None = None,
                 organ_fallback: str | None = None, refine: bool = True):
        from omnimedseg.models import build_model

        self.model = build_model(config, sam_checkpoint, medsegx_checkpoint, device=device)
        self.autocast, self.organ_fallback, self.refine = autocast, organ_fallback, refine

    def set_image(self, image, meta):
        from omnimedseg.data.preprocessing import intensity_to_uint8

        super().set_image(image, meta)
        is_2d = self.image.ndim == 2 or (self.image.ndim == 3 and meta.get("affine") is None)
        if not is_2d:
            raise UsageError("the SAM/MedSegX adapter segments 2D images; for 3D data use "
                             "mode = \"slices\" in the suite's [[datasets]] entry")
        self.rgb = intensity_to_uint8(self.image, meta.get("modality", ""))
        self.context = self._context(meta) if self.model.is_medsegx else None
        self.embeddings = None
        self.low_res = None

    def _context(self, meta: dict) -> list[int]:
        from dataclasses import replace

        from omnimedseg.data.medsegdb import LabelTree, dataset_tasks

        tree = LabelTree.load()
        tasks = dataset_tasks(meta["dataset"]) if meta.get("dataset") else None  # the card's mapping first
        context = tree.context_for_class(meta.get("modality", ""), meta.get("class_name", ""), tasks)
        if context.organ is None and self.organ_fallback:
            organ = tree.organ_indices(self.organ_fallback)
            if organ is None:
                raise UsageError(f"organ_fallback {self.organ_fallback!r} is not a task of the MedSegDB organ "
                                 f"tree (e.g. Liver, BrainWholeTumor, Prostate)")
            context = replace(context, organ=organ)
        if not context.complete:
            raise UsageError(f"MedSegX has no context for class {meta.get('class_name')!r} "
                             f"({meta.get('modality')}): it is not in the MedSegDB label tree; pass "
                             f"params = {{ organ_fallback = \"<MedSegDB task of the same organ>\" }}")
        return context.as_row()

    def predict(self, prompts, previous, reference=None):
        import torch

        from omnimedseg.models import predict

        boxes = [p for p in prompts if isinstance(p, (Box, Polygon))]
        points, labels = [], []
        for p in prompts:
            if isinstance(p, Click):
                points.append(p.xy)
                labels.append(int(p.positive))
            elif isinstance(p, Scribble):
                take = np.linspace(0, len(p.coords) - 1, min(POINTS_PER_SCRIBBLE, len(p.coords))).astype(int)
                points.extend(tuple(int(v) for v in p.coords[i][::-1]) for i in take)
                labels.extend([int(p.positive)] * len(take))
        box = None
        if boxes:
            last = boxes[-1]
            box = np.array([last.to_xyxy()], dtype=np.float32) if isinstance(last, Box) else \
                _polygon_box(last.vertices)
        if self.model.is_medsegx and box is None:
            raise UsageError("MedSegX is prompted with boxes (its training prompt); use a box_* robot user")
        if box is None and not points:
            return np.zeros(self.rgb.shape[:2], dtype=bool)
        result = predict(
            self.model, self.rgb, boxes=box,
            points=np.array([points], dtype=np.float32) if points and not self.model.is_medsegx else None,
            point_labels=np.array([labels]) if points and not self.model.is_medsegx else None,
            mask_inputs=self.low_res if (self.refine and self.low_res is not None) else None,
            context=torch.tensor([self.context]) if self.context is not None else None,
            image_embeddings=self.embeddings, autocast_dtype=self.autocast)
        self.embeddings = result.image_embeddings
        best = int(result.iou_scores[0].argmax())
        self.low_res = result.low_res_logits[:, best:best + 1]
        return result.masks[0, best].cpu().numpy()


def _polygon_box(vertices) -> np.ndarray:
    v = np.asarray(vertices, dtype=np.float32)
    return np.array([[v[:, 1].min(), v[:, 0].min(), v[:, 1].max(), v[:, 0].max()]], dtype=np.float32)
