"""omnimedseg: public medical segmentation datasets as one traceable benchmark."""

__version__ = "0.1.0"
