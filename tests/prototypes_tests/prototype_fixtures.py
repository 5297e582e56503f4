"""Helpers of the prototype push / gallery tests: a tiny ProtoPNet on synthetic data (imported
by name: a module called conftest would be ambiguous among the test folders)."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader

import seethrough
from seethrough.data import build_dataset
from seethrough.data.base import collate
from seethrough.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform

#: A 4×4 latent map at 32 px (test_resnet with output stride 8), 3 classes, 2 prototypes each.
BACKBONE, IMG_SIZE, OUTPUT_STRIDE = "test_resnet", 32, 8
NUM_CLASSES, NUM_PROTOTYPES, PROTOTYPE_DIM, NUM_SAMPLES = 3, 6, 8, 10
MEAN, STD = IMAGENET_MEAN, IMAGENET_STD


def make_model(name: str = "protopnet", seed: int = 0):
    torch.manual_seed(seed)
    return seethrough.create_model(name, num_classes=NUM_CLASSES, backbone=BACKBONE, num_prototypes=NUM_PROTOTYPES,
                                   prototype_dim=PROTOTYPE_DIM, output_stride=OUTPUT_STRIDE).eval()


def make_dataset(num_classes: int = NUM_CLASSES, num_samples: int = NUM_SAMPLES):
    return build_dataset("synthetic", "train", num_samples=num_samples, img_size=IMG_SIZE, num_classes=num_classes,
                         transform=build_transform(IMG_SIZE, train=False, mean=MEAN, std=STD))


def make_loader(dataset, batch_size: int = 4) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
