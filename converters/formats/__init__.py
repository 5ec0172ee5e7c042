"""Shared format operations: the hard parts of reading medical files, written once.

Every reader returns an :class:`ImageData` (array + geometry). Converters name these
functions in their ``Case`` records; the core calls them. See docs/formats.md.
"""

from omnimedseg.converters.formats.imagedata import ImageData

__all__ = ["ImageData"]
