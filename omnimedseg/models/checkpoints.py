"""Loading official SAM / MedSAM / MedSegX checkpoints into :class:`Sam` with strict checks.

SAM and MedSAM files load unchanged. MedSegX is assembled as the reference code does it: the
1024-px SAM checkpoint is adapted to the 256-px model (absolute position embedding and the
global blocks' relative-position tables resized by bilinear interpolation; each block's MLP
moves under the ConMoAE wrapper as ``mlp.mlp.*``), then ``medsegx_vit_b.pth["model"]``
supplies every adapter, the context embeddings and the whole mask decoder.

Every key is checked before loading: anything missing, unexpected or misshapen raises
:class:`CheckpointError` listing the keys, and a missing file says where the official file is
published. Models are built on the ``meta`` device and the checkpoint tensors are assigned,
so a ViT-H never exists twice in memory.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import torch
import torch.nn.functional as F

from omnimedseg.models.config import ModelConfig
from omnimedseg.models.errors import CheckpointError, CheckpointNotFoundError
from omnimedseg.models.sam import Sam

StateDict = Mapping[str, torch.Tensor]
CheckpointSource = Union[str, os.PathLike, Mapping[str, Any]]

#: Where the official files are published (shown when a path does not exist).
OFFICIAL_CHECKPOINTS: dict[str, str] = {
    "sam_vit_b_01ec64.pth": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
    "sam_vit_l_0b3195.pth": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "sam_vit_h_4b8939.pth": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
    "medsam_vit_b.pth": "the MedSAM repository https://github.com/bowang-lab/MedSAM (README, model checkpoint link)",
    "medsegx_vit_b.pth": "https://drive.google.com/file/d/1_lTLYQ1p0Et8GGgUNJWzONVSc6RwbRGe/view "
                         "(linked from https://github.com/MedSegX/MedSegX-code, README 'Model')",
}

#: The official SAM file for each encoder width, used in messages.
SAM_FILE_FOR_WIDTH = {768: "sam_vit_b_01ec64.pth", 1024: "sam_vit_l_0b3195.pth", 1280: "sam_vit_h_4b8939.pth"}

_MLP_KEY = re.compile(r"^(image_encoder\.blocks\.\d+\.mlp)\.(lin[12]\.(?:weight|bias))$")
_REL_POS_KEY = re.compile(r"^image_encoder\.blocks\.(\d+)\.attn\.rel_pos_[hw]$")
_LISTED = 12  # keys shown per category in error messages
#: Decoder tensors the reference never takes from the SAM file (MedSegX-code
#: ``segment_anything/build_sam.py`` ``load_from``: ``except_keys``): MedSegX's output head has
#: other shapes, so they come from the MedSegX checkpoint or keep their fresh initialisation.
MEDSEGX_DROPPED_SAM_TENSORS = ("mask_tokens", "output_hypernetworks_mlps", "iou_prediction_head")


# -- reading files -------------------------------------------------------------------------
def _where_published(path: Path, default_file: str | None) -> str:
    name = path.name if path.name in OFFICIAL_CHECKPOINTS else default_file
    if name in OFFICIAL_CHECKPOINTS:
        return f"; the official {name} is published at {OFFICIAL_CHECKPOINTS[name]}"
    return ""


def read_checkpoint(source: CheckpointSource, *, default_file: str | None = None,
                    trust_checkpoint: bool = False) -> dict[str, Any]:
    """The object stored in a checkpoint file (or ``source`` itself when it is a mapping).

    Files are read with ``torch.load(weights_only=True)`` (tensors, numbers, containers, and
    ``argparse.Namespace``); ``trust_checkpoint=True`` allows arbitrary pickled objects and
    must only be used for files from a trusted source.
    """
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source).expanduser()
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint {path} does not exist"
                                      f"{_where_published(path, default_file)}")
    try:
        allow = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
        with allow([argparse.Namespace]) if allow else contextlib.nullcontext():
            payload = torch.load(path, map_location="cpu", weights_only=not trust_checkpoint)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError or others by version
        hint = "" if trust_checkpoint else (" If the file comes from a trusted source and holds other "
                                            "pickled objects, pass trust_checkpoint=True.")
        raise CheckpointError(f"could not read checkpoint {path}: {exc}.{hint}") from exc
    if not isinstance(payload, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(payload).__name__}, not a state dict")
    return dict(payload)


def _tensors(payload: Mapping[str, Any], origin: str) -> dict[str, torch.Tensor]:
    bad = sorted(k for k, v in payload.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise CheckpointError(f"{origin}: entries {bad[:_LISTED]} are not tensors; is this a "
                              "full training checkpoint rather than a state dict?")
    return dict(payload)


def _describe(source: CheckpointSource) -> str:
    return "state dict" if isinstance(source, Mapping) else str(source)


# -- key checks ----------------------------------------------------------------------------
def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the state dict of a model built from ``config`` (built on ``meta``)."""
    with torch.device("meta"):
        model = Sam(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _listing(title: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    more = f" (+{len(keys) - _LISTED} more)" if len(keys) > _LISTED else ""
    return f"{len(keys)} {title}: {shown}{more}"


def check_state_dict(expected: Mapping[str, tuple[int, ...]], given: Mapping[str, torch.Tensor],
                     origin: str, allow_missing: set[str] | frozenset[str] = frozenset()) -> None:
    """Raise :class:`CheckpointError` unless ``given`` matches ``expected`` key for key."""
    missing = sorted(k for k in expected if k not in given and k not in allow_missing)
    unexpected = sorted(k for k in given if k not in expected)
    misshapen = sorted(
        f"{k} {tuple(given[k].shape)} != {tuple(expected[k])}"
        for k in given if k in expected and tuple(given[k].shape) != tuple(expected[k])
    )
    if missing or unexpected or misshapen:
        parts = [_listing(t, ks) for t, ks in (("missing keys", missing), ("unexpected keys", unexpected),
                                                 ("misshapen tensors (checkpoint != model)", misshapen)) if ks]
        raise CheckpointError(f"{origin} does not match the model: " + "; ".join(parts))


# -- SAM -> model adaptation ---------------------------------------------------------------
def resize_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """(1, G, G, C) -> (1, grid, grid, C), bilinear with channels as image channels."""
    if pos_embed.shape[1:3] == (grid, grid):
        return pos_embed
    resized = F.interpolate(pos_embed.permute(0, 3, 1, 2).float(), size=(grid, grid),
                            mode="bilinear", align_corners=False)
    return resized.permute(0, 2, 3, 1).to(pos_embed.dtype)


def resize_rel_pos(rel_pos: torch.Tensor, rows: int) -> torch.Tensor:
    """(L, head_dim) -> (rows, head_dim), bilinear on the table as a 1-channel image."""
    if rel_pos.shape[0] == rows:
        return rel_pos
    resized = F.interpolate(rel_pos[None, None].float(), size=(rows, rel_pos.shape[1]),
                            mode="bilinear", align_corners=False)
    return resized[0, 0].to(rel_pos.dtype)


def adapt_sam_state_dict(state_dict: StateDict, config: ModelConfig,
                         expected: Mapping[str, tuple[int, ...]] | None = None) -> dict[str, torch.Tensor]:
    """A SAM state dict rewritten for ``config``: resolution and ConMoAE key layout.

    For a MedSegX (ConMoAE) config the decoder tensors the reference drops by name
    (:data:`MEDSEGX_DROPPED_SAM_TENSORS`, whatever their shape) are dropped; they must come from
    the MedSegX checkpoint or fresh initialisation. Nothing else is dropped: any other shape
    difference stays for the key check to report as misshapen, with both shapes.
    """
    expected = expected if expected is not None else expected_shapes(config)
    global_blocks = set(config.encoder_global_attn_indexes)
    adapted: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if config.conmoae:
            match = _MLP_KEY.match(key)
            if match:
                key = f"{match.group(1)}.mlp.{match.group(2)}"
        if key == "image_encoder.pos_embed" and value.ndim == 4:
            value = resize_pos_embed(value, config.grid_size)
        rel = _REL_POS_KEY.match(key)
        if rel and int(rel.group(1)) in global_blocks and key in expected and value.ndim == 2:
            value = resize_rel_pos(value, expected[key][0])
        if config.conmoae and key.startswith("mask_decoder.") and any(
                f".{name}." in f".{key}." for name in MEDSEGX_DROPPED_SAM_TENSORS):
            continue
        adapted[key] = value
    return adapted


# -- assembling models ---------------------------------------------------------------------
def _materialise(config: ModelConfig, tensors: dict[str, torch.Tensor], device: torch.device | str,
                 fresh: set[str]) -> Sam:
    tensors = {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}
    if fresh:
        # Some tensors keep their initialisation: build for real, then overwrite the rest.
        model = Sam(config)
        model.load_state_dict(tensors, strict=False)
    else:
        with torch.device("meta"):
            model = Sam(config)
        model.load_state_dict(tensors, strict=True, assign=True)
        # Non-persistent buffers are not in checkpoints; give them real values.
        model.pixel_mean = torch.tensor(config.pixel_mean).view(-1, 1, 1)
        model.pixel_std = torch.tensor(config.pixel_std).view(-1, 1, 1)
    model.eval()
    return model.to(device)


def load_sam(config: ModelConfig | str, checkpoint: CheckpointSource, *,
             device: torch.device | str = "cpu", trust_checkpoint: bool = False) -> Sam:
    """SAM or MedSAM from its official checkpoint (path or state dict), strictly.

    ``config`` may be a preset name (``"sam_vit_b"``, ``"medsam_vit_b"``, ...). A config with
    another ``image_size`` gets the position tables resized as for MedSegX.
    """
    config = ModelConfig.preset(config) if isinstance(config, str) else config
    if config.conmoae:
        raise CheckpointError(f"config {config.name!r} is a MedSegX config; use build_medsegx or build_model "
                              "with the SAM and MedSegX checkpoints")
    expected = expected_shapes(config)
    default_file = ("medsam_vit_b.pth" if config.pixel_normalization == "min_max"
                    else SAM_FILE_FOR_WIDTH.get(config.encoder_embed_dim))
    payload = read_checkpoint(checkpoint, default_file=default_file, trust_checkpoint=trust_checkpoint)
    tensors = adapt_sam_state_dict(_tensors(payload, _describe(checkpoint)), config, expected)
    check_state_dict(expected, tensors, f"SAM checkpoint {_describe(checkpoint)}")
    return _materialise(config, tensors, device, fresh=set())


def medsegx_checkpoint_keys(config: ModelConfig) -> list[str]:
    """Keys a MedSegX checkpoint holds: adapters, context embeddings, the mask decoder."""
    with torch.device("meta"):
        model = Sam(config)
    return [name for name, _ in model.trainable_parameters()]


def build_medsegx(config: ModelConfig | str, sam_checkpoint: CheckpointSource,
                  medsegx_checkpoint: CheckpointSource | None = None, *,
                  device: torch.device | str = "cpu", trust_checkpoint: bool = False) -> Sam:
    """MedSegX from the official SAM checkpoint plus ``medsegx_vit_b.pth``.

    ``medsegx_checkpoint`` may be the file, its whole payload or just its ``"model"`` dict.
    Without it the adapters, embeddings and the decoder tensors the reference drops from the
    SAM file (mask tokens, output hypernetwork MLPs, IoU head) keep their fresh initialisation
    (zero adapters: the model then computes SAM at 256 px), the starting point of MedSegX
    training; any other SAM tensor of the wrong shape raises :class:`CheckpointError`.
    """
    config = ModelConfig.preset(config) if isinstance(config, str) else config
    if not config.conmoae:
        raise CheckpointError(f"config {config.name!r} has no ConMoAE adapters; use load_sam for SAM")
    expected = expected_shapes(config)
    sam_payload = read_checkpoint(sam_checkpoint, default_file=SAM_FILE_FOR_WIDTH.get(config.encoder_embed_dim),
                                  trust_checkpoint=trust_checkpoint)
    sam_tensors = adapt_sam_state_dict(_tensors(sam_payload, _describe(sam_checkpoint)), config, expected)
    owned = set(medsegx_checkpoint_keys(config))
    # The SAM file must provide everything except what MedSegX owns.
    check_state_dict({k: v for k, v in expected.items() if k not in owned or k in sam_tensors},
                     sam_tensors, f"SAM checkpoint {_describe(sam_checkpoint)}")
    tensors = dict(sam_tensors)
    fresh: set[str] = set()
    if medsegx_checkpoint is None:
        fresh = {k for k in owned if k not in sam_tensors}
    else:
        payload = read_checkpoint(medsegx_checkpoint, default_file="medsegx_vit_b.pth",
                                  trust_checkpoint=trust_checkpoint)
        origin = f"MedSegX checkpoint {_describe(medsegx_checkpoint)}"
        if "model" in payload and isinstance(payload["model"], Mapping):
            payload = payload["model"]
        elif not any(k.startswith("mask_decoder.") for k in payload):
            raise CheckpointError(f"{origin} has no 'model' entry (keys: {sorted(payload)[:_LISTED]})")
        medsegx_tensors = _tensors(payload, origin)
        check_state_dict({k: expected[k] for k in owned}, medsegx_tensors, origin)
        tensors.update(medsegx_tensors)
    check_state_dict(expected, tensors, "SAM + MedSegX checkpoints", allow_missing=fresh)
    return _materialise(config, tensors, device, fresh)


def build_model(config: ModelConfig | str, sam_checkpoint: CheckpointSource | None = None,
                medsegx_checkpoint: CheckpointSource | None = None, *,
                device: torch.device | str = "cpu", trust_checkpoint: bool = False) -> Sam:
    """One call for every variant: the config decides SAM/MedSAM or MedSegX.

    Without any checkpoint the model is freshly initialised (for tests and training).
    """
    config = ModelConfig.preset(config) if isinstance(config, str) else config
    if sam_checkpoint is None and medsegx_checkpoint is None:
        return Sam(config).eval().to(device)
    if config.conmoae:
        if sam_checkpoint is None:
            raise CheckpointError("MedSegX needs the SAM checkpoint too (its encoder weights come from "
                                  f"{SAM_FILE_FOR_WIDTH.get(config.encoder_embed_dim, 'the SAM file')})")
        return build_medsegx(config, sam_checkpoint, medsegx_checkpoint, device=device,
                             trust_checkpoint=trust_checkpoint)
    if medsegx_checkpoint is not None:
        raise CheckpointError(f"config {config.name!r} is not a MedSegX config; drop medsegx_checkpoint")
    return load_sam(config, sam_checkpoint, device=device, trust_checkpoint=trust_checkpoint)
