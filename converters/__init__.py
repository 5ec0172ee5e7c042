"""Conversion layer: one converter per dataset, shared format operations, one writer.

Write a converter by subclassing :class:`Converter` in ``converters/<dataset_id>.py``
(see docs/adding-a-dataset.md). Shared code lives in private modules and in
:mod:`omnimedseg.converters.formats`.
"""

from omnimedseg.converters._base import Case, Converter, Source

__all__ = ["Case", "Converter", "Source"]
