"""One configuration dataclass for SAM, MedSAM and MedSegX (and tiny test models).

Field names follow SAM's own builder arguments (``encoder_embed_dim``, ``encoder_depth``,
``encoder_num_heads``, ``encoder_global_attn_indexes``) so a config reads like the official
``build_sam_vit_*`` calls. Everything else that changes a tensor shape is a field too, which is
what lets the tests build models with a few thousand parameters.

This module imports no torch, so configs can be listed and validated cheaply.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from omnimedseg.models.errors import ModelConfigError

SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)

ATTENTION_IMPLEMENTATIONS = ("sdpa", "explicit")
RESIZE_MODES = ("longest_side", "square")
PIXEL_NORMALIZATIONS = ("mean_std", "min_max")


@dataclass(frozen=True)
class ModelConfig:
    """Shapes and behaviour of a SAM-family model.

    Image encoder (ViT):
        encoder_embed_dim, encoder_depth, encoder_num_heads: ViT width, blocks, heads.
        encoder_global_attn_indexes: blocks that attend over the whole token grid; all
            others attend inside ``window_size`` x ``window_size`` windows.
        window_size: side of the attention windows, in tokens.
        image_size: side of the square network input in pixels (1024 for SAM, 256 for MedSegX).
        patch_size: pixels per token side; the token grid is ``image_size // patch_size``.
        mlp_ratio: hidden width of each block's MLP relative to ``encoder_embed_dim``.
        prompt_embed_dim: channels of the image embedding, prompts and decoder (256 in SAM).
    Prompt encoder: mask_in_chans (hidden channels of the mask-prompt downscaler).
    Mask decoder:
        decoder_depth, decoder_num_heads, decoder_mlp_dim: two-way transformer shape.
        decoder_upscale_stages: 2x transposed-conv stages after the transformer; SAM uses 2
            (masks at 4x the token grid), MedSegX 4 (masks at the input resolution).
        num_multimask_outputs: masks predicted besides the single-mask output (SAM: 3).
        iou_head_depth, iou_head_hidden_dim: IoU prediction MLP.
    ConMoAE adapters (MedSegX; off when ``conmoae`` is False):
        adapter_bottleneck: width of each expert's bottleneck (16 in MedSegX).
        adapter_embed_dim: size of the modality / organ / task / input embeddings (16).
        adapter_num_experts: experts per block (4).
        adapter_scale: factor on the mixed expert output (0.1).
        adapter_dropout: dropout inside each expert while training (0.1).
        num_modalities, organ_level_sizes, num_tasks: rows of the context embedding tables;
            the task table gets one extra row for unseen tasks.
    Runtime:
        attn_impl: "sdpa" (fused ``scaled_dot_product_attention``) or "explicit" (softmax of
            the materialised score matrix, as in the reference code); results agree.
        pixel_mean, pixel_std: input normalisation on the 0..255 scale ("mean_std").
        pixel_normalization: "mean_std" (SAM, MedSegX) or "min_max" (MedSAM: each image is
            scaled to 0..1 by its own minimum and maximum).
        resize_mode: how the inference API brings an image to ``image_size``: "longest_side"
            (SAM: keep the aspect ratio, pad bottom/right) or "square" (MedSegX: stretch).
        multimask_output: default of the inference API (MedSegX: True, three masks).
    """

    encoder_embed_dim: int = 768
    encoder_depth: int = 12
    encoder_num_heads: int = 12
    encoder_global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    window_size: int = 14
    image_size: int = 1024
    patch_size: int = 16
    mlp_ratio: float = 4.0
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_num_heads: int = 8
    decoder_mlp_dim: int = 2048
    decoder_upscale_stages: int = 2
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    conmoae: bool = False
    adapter_bottleneck: int = 16
    adapter_embed_dim: int = 16
    adapter_num_experts: int = 4
    adapter_scale: float = 0.1
    adapter_dropout: float = 0.1
    num_modalities: int = 10
    organ_level_sizes: tuple[int, ...] = (1, 5, 12, 39)
    num_tasks: int = 111
    attn_impl: str = "sdpa"
    pixel_mean: tuple[float, float, float] = SAM_PIXEL_MEAN
    pixel_std: tuple[float, float, float] = SAM_PIXEL_STD
    pixel_normalization: str = "mean_std"
    resize_mode: str = "longest_side"
    multimask_output: bool = True
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        # Lists from JSON/TOML become tuples so configs stay hashable and comparable.
        object.__setattr__(self, "encoder_global_attn_indexes", tuple(self.encoder_global_attn_indexes))
        object.__setattr__(self, "organ_level_sizes", tuple(self.organ_level_sizes))
        object.__setattr__(self, "pixel_mean", tuple(float(v) for v in self.pixel_mean))
        object.__setattr__(self, "pixel_std", tuple(float(v) for v in self.pixel_std))
        self.validate()

    # -- derived sizes -------------------------------------------------------------------
    @property
    def grid_size(self) -> int:
        """Tokens per side of the image embedding."""
        return self.image_size // self.patch_size

    @property
    def head_dim(self) -> int:
        return self.encoder_embed_dim // self.encoder_num_heads

    @property
    def mask_size(self) -> int:
        """Side of the decoder's mask logits (before resizing to the input image)."""
        return self.grid_size * 2**self.decoder_upscale_stages

    @property
    def upscale_channels(self) -> tuple[int, ...]:
        """Output channels of each upscaling stage: 256 -> 64 -> 32 -> 16 -> 8 for SAM width."""
        return tuple(self.prompt_embed_dim // (4 * 2**i) for i in range(self.decoder_upscale_stages))

    def validate(self) -> None:
        problems = []
        if self.encoder_embed_dim % self.encoder_num_heads:
            problems.append(f"encoder_embed_dim {self.encoder_embed_dim} is not divisible by "
                            f"encoder_num_heads {self.encoder_num_heads}")
        if self.image_size % self.patch_size:
            problems.append(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        bad = [i for i in self.encoder_global_attn_indexes if not 0 <= i < self.encoder_depth]
        if bad:
            problems.append(f"encoder_global_attn_indexes {bad} are outside 0..{self.encoder_depth - 1}")
        if self.window_size < 0:
            problems.append("window_size must be >= 0 (0 = every block global)")
        if self.decoder_upscale_stages < 1 or self.prompt_embed_dim % (4 * 2 ** (self.decoder_upscale_stages - 1)):
            problems.append(f"prompt_embed_dim {self.prompt_embed_dim} cannot be halved through "
                            f"{self.decoder_upscale_stages} upscaling stages")
        if (self.prompt_embed_dim // 2) % self.decoder_num_heads:
            problems.append("prompt_embed_dim / 2 must be divisible by decoder_num_heads")
        if self.prompt_embed_dim % 2:
            problems.append("prompt_embed_dim must be even (random Fourier position features)")
        if self.mask_in_chans % 4:
            problems.append("mask_in_chans must be a multiple of 4")
        if self.conmoae and len(self.organ_level_sizes) != 4:
            problems.append("ConMoAE needs exactly four organ levels (root, body part, region, organ)")
        if self.attn_impl not in ATTENTION_IMPLEMENTATIONS:
            problems.append(f"attn_impl {self.attn_impl!r} is not one of {ATTENTION_IMPLEMENTATIONS}")
        if self.resize_mode not in RESIZE_MODES:
            problems.append(f"resize_mode {self.resize_mode!r} is not one of {RESIZE_MODES}")
        if self.pixel_normalization not in PIXEL_NORMALIZATIONS:
            problems.append(f"pixel_normalization {self.pixel_normalization!r} is not one of {PIXEL_NORMALIZATIONS}")
        if problems:
            raise ModelConfigError("invalid model config: " + "; ".join(problems))

    def replace(self, **changes: Any) -> "ModelConfig":
        """Copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelConfigError(f"unknown model config fields {unknown}; known: {sorted(known)}")
        return cls(**values)

    @classmethod
    def preset(cls, name: str, **changes: Any) -> "ModelConfig":
        """A named configuration (see :data:`PRESETS`), optionally with fields changed."""
        try:
            values = PRESETS[name]
        except KeyError:
            raise ModelConfigError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}") from None
        return cls(**{**values, "name": name, **changes})


_SAM_B = dict(encoder_embed_dim=768, encoder_depth=12, encoder_num_heads=12,
              encoder_global_attn_indexes=(2, 5, 8, 11))
_SAM_L = dict(encoder_embed_dim=1024, encoder_depth=24, encoder_num_heads=16,
              encoder_global_attn_indexes=(5, 11, 17, 23))
_SAM_H = dict(encoder_embed_dim=1280, encoder_depth=32, encoder_num_heads=16,
              encoder_global_attn_indexes=(7, 15, 23, 31))
_MEDSEGX = dict(image_size=256, decoder_upscale_stages=4, conmoae=True, resize_mode="square",
                multimask_output=True)

_TINY = dict(encoder_embed_dim=32, encoder_depth=4, encoder_num_heads=2,
             encoder_global_attn_indexes=(1, 3), window_size=4, image_size=96,
             prompt_embed_dim=32, decoder_mlp_dim=64, decoder_num_heads=2, iou_head_hidden_dim=32)

#: Named configurations. ``sam_vit_*``/``medsam_vit_b`` load the official 1024-px checkpoints
#: unchanged; ``medsegx_vit_*`` are the 256-px ConMoAE models (only ViT-B weights are published);
#: ``tiny``/``tiny_medsegx`` are for tests and ``--quick`` benchmarks.
PRESETS: dict[str, dict[str, Any]] = {
    "sam_vit_b": dict(_SAM_B),
    "sam_vit_l": dict(_SAM_L),
    "sam_vit_h": dict(_SAM_H),
    # MedSAM stretches images to 1024x1024, feeds them min-max scaled straight to the encoder
    # and keeps the single-mask output.
    "medsam_vit_b": dict(_SAM_B, pixel_normalization="min_max", resize_mode="square",
                         multimask_output=False),
    "medsegx_vit_b": dict(_SAM_B, **_MEDSEGX),
    "medsegx_vit_l": dict(_SAM_L, **_MEDSEGX),
    "medsegx_vit_h": dict(_SAM_H, **_MEDSEGX),
    "tiny": dict(_TINY),
    "tiny_medsegx": {**_MEDSEGX, **_TINY, "prompt_embed_dim": 64, "adapter_bottleneck": 4,
                     "adapter_embed_dim": 8},
}
