"""Errors of the model layer, rooted in :class:`omnimedseg.errors.OmnimedsegError`.

They live here rather than in ``omnimedseg/errors.py`` so the model code stays self-contained;
each also inherits the matching builtin (``ValueError``/``FileNotFoundError``).
"""

from __future__ import annotations

from omnimedseg.errors import OmnimedsegError


class ModelError(OmnimedsegError, ValueError):
    """A model could not be built, loaded or run with the given inputs."""


class ModelConfigError(ModelError):
    """A :class:`~omnimedseg.models.config.ModelConfig` is inconsistent or unknown."""


class CheckpointError(ModelError):
    """A checkpoint's tensors do not match the model (missing, unexpected or misshapen keys)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint file is not at the given path."""
