"""SAM, MedSAM and MedSegX in plain PyTorch, loading the official checkpoints unchanged.

This is the only part of omnimedseg that uses torch. Names are imported lazily, so
``import omnimedseg.models`` (or its torch-free ``config`` and ``context`` modules) stays cheap
and torch is loaded on first use of a model name. See docs/models.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "checkpoints": ["OFFICIAL_CHECKPOINTS", "adapt_sam_state_dict", "build_medsegx", "build_model",
                    "check_state_dict", "expected_shapes", "load_sam", "medsegx_checkpoint_keys",
                    "read_checkpoint"],
    "config": ["PRESETS", "ModelConfig"],
    "context": ["MODALITIES", "TASKS", "TaskContext", "context_for_task", "context_tensor"],
    "errors": ["CheckpointError", "CheckpointNotFoundError", "ModelConfigError", "ModelError"],
    "inference": ["Prediction", "autocast_context", "predict"],
    "sam": ["Sam"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'omnimedseg.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"omnimedseg.models.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
