"""Config presets, validation, torch-free imports and the MedSegX context lookup."""

from __future__ import annotations

import subprocess
import sys

import pytest

from omnimedseg.errors import OmnimedsegError
from omnimedseg.models.config import PRESETS, ModelConfig
from omnimedseg.models.context import MODALITIES, TASKS, UNSEEN_TASK_INDEX, context_for_task
from omnimedseg.models.errors import ModelConfigError, ModelError


def test_presets_have_official_shapes():
    b, l, h = (ModelConfig.preset(n) for n in ("sam_vit_b", "sam_vit_l", "sam_vit_h"))
    assert (b.encoder_embed_dim, b.encoder_depth, b.encoder_num_heads, b.encoder_global_attn_indexes) == \
        (768, 12, 12, (2, 5, 8, 11))
    assert (l.encoder_embed_dim, l.encoder_depth, l.encoder_global_attn_indexes) == (1024, 24, (5, 11, 17, 23))
    assert (h.encoder_embed_dim, h.encoder_depth, h.encoder_global_attn_indexes) == (1280, 32, (7, 15, 23, 31))
    assert b.grid_size == 64 and b.mask_size == 256
    x = ModelConfig.preset("medsegx_vit_b")
    assert x.conmoae and x.image_size == 256 and x.grid_size == 16 and x.mask_size == 256
    assert x.upscale_channels == (64, 32, 16, 8)
    assert (x.adapter_bottleneck, x.adapter_embed_dim, x.adapter_num_experts) == (16, 16, 4)
    assert set(PRESETS) >= {"tiny", "tiny_medsegx", "medsam_vit_b"}


@pytest.mark.parametrize("changes, words", [
    (dict(encoder_num_heads=5), "divisible"),
    (dict(encoder_global_attn_indexes=(2, 12)), "outside"),
    (dict(image_size=100), "multiple of patch_size"),
    (dict(attn_impl="flash"), "attn_impl"),
    (dict(decoder_upscale_stages=9), "upscaling"),
])
def test_invalid_configs_name_the_problem(changes, words):
    with pytest.raises(ModelConfigError, match=words) as info:
        ModelConfig.preset("sam_vit_b", **changes)
    assert isinstance(info.value, OmnimedsegError) and isinstance(info.value, ValueError)


def test_config_round_trips_through_dict_and_rejects_unknown_fields():
    cfg = ModelConfig.preset("tiny_medsegx")
    values = cfg.to_dict()
    values["encoder_global_attn_indexes"] = list(values["encoder_global_attn_indexes"])  # as from JSON
    assert ModelConfig.from_dict(values) == cfg
    with pytest.raises(ModelConfigError, match="encoder_width"):
        ModelConfig.from_dict({"encoder_width": 3})
    with pytest.raises(ModelConfigError, match="unknown model preset"):
        ModelConfig.preset("sam_vit_xl")


def test_configs_and_context_import_without_torch():
    code = ("import sys, omnimedseg, omnimedseg.models, omnimedseg.models.config, omnimedseg.models.context;"
            "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_context_lookup_follows_the_hierarchy_order():
    liver = context_for_task("CT_Liver")
    assert MODALITIES[liver.modality] == "CT" and TASKS[liver.task] == "Liver"
    assert liver.as_row() == [2, 1, 4, 17, 59]
    assert context_for_task("Dermoscopy_Skin").as_row() == [4, 4, 11, 38, 110]  # alias Dermoscopy -> Dermos
    assert context_for_task("xray_LeftLung").modality == MODALITIES.index("Xray")
    # Trailing digits (spine levels) are dropped; underscores inside the task are joined.
    assert context_for_task("MRI_CervicalSpine3") == context_for_task("MRI_CervicalSpine")
    assert context_for_task("MRI_Prostate_PeripheralZone") == context_for_task("MRI_ProstatePeripheralZone")


def test_unseen_task_uses_extra_row_and_organ_levels():
    hcc = context_for_task("CT_HCC")  # liver tumour, listed in the organ groups, not a trained task
    assert hcc.task == UNSEEN_TASK_INDEX == 111
    assert hcc.as_row()[:4] == context_for_task("CT_Liver").as_row()[:4]
    new = context_for_task("CT_LiverVessel", organ_fallback="Liver")
    assert new.task == 111 and new.organ[2] == context_for_task("CT_Liver").organ[2]
    with pytest.raises(ModelError, match="organ_fallback"):
        context_for_task("CT_LiverVessel")


@pytest.mark.parametrize("name", ["Liver", "PET_Liver", "CT_"])
def test_bad_task_names_are_reported(name):
    with pytest.raises(ModelError):
        context_for_task(name)
