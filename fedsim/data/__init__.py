"""Offline image data: sources, partitioners, corruptions and augmentations."""

from fedsim.data import partition, sources  # noqa: F401  (register sources and partitioners)
from fedsim.data.base import ClientData, ImageSet

__all__ = ["ClientData", "ImageSet"]
