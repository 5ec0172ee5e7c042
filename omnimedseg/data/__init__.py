"""Data layer: PyTorch datasets over converted data (docs/data.md)."""

from omnimedseg.data.datasets import ConvertedDataset, SliceDataset, open_converted

__all__ = ["ConvertedDataset", "SliceDataset", "open_converted"]
