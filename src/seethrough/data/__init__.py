"""Datasets that carry ground truth (boxes, masks) through transforms."""
from .base import ImageDataset, RawSample, collate
from .io import BadImageError, open_image
from .registry import DATASETS, build_dataset, parse_spec
from .transforms import build_transform

__all__ = [
    "DATASETS", "BadImageError", "ImageDataset", "RawSample", "build_dataset", "build_transform",
    "collate", "open_image", "parse_spec",
]
