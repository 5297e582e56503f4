"""Datasets and loaders of a run: transforms, normalization, deterministic sharded order."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, cast

import timm
from lightning.fabric import Fabric
from torch.utils.data import DataLoader

from ..config import TrainConfig
from ..data import ImageDataset, build_dataset, build_transform, collate
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..models.backbone import check_pretrained_tag
from .sampling import EpochSampler, SeededDataset


@dataclass
class RunData:
    train: ImageDataset
    val: ImageDataset
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return self.train.num_classes


def normalization(cfg: TrainConfig, dataset: ImageDataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """mean/std: explicit flags > the data's own (MNIST) > the pretrained backbone's > ImageNet."""
    if cfg.mean is not None and cfg.std is not None:
        mean, std = tuple(cfg.mean), tuple(cfg.std)
    elif dataset.normalization is not None:
        mean, std = dataset.normalization
    else:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        if cfg.pretrained:
            check_pretrained_tag(cfg.backbone)
            pretrained_cfg = timm.models.get_pretrained_cfg(cfg.backbone)  # ARCH.TAG: that tag's statistics
            if pretrained_cfg is not None:
                mean, std = tuple(pretrained_cfg.mean), tuple(pretrained_cfg.std)
    if cfg.in_chans == 1 and len(mean) == 3:
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    if len(mean) == 1 and cfg.in_chans == 3:
        mean, std = tuple(mean) * 3, tuple(std) * 3
    return tuple(mean), tuple(std)


#: Where a run keeps the Grad-CAM targets it computed from a base model (``attention_maps: RUN_DIR``).
COMPUTED_TARGETS = "gradcam-targets.safetensors"


def attention_maps_file(cfg: TrainConfig, out: Path, *, is_main: bool, barrier) -> str | None:
    """LVW's targets file: ``cfg.attention_maps`` itself, or — when it names a base model (a run or
    model directory) — the targets computed once from it on the training split into
    ``out/gradcam-targets.safetensors`` (rank 0; the others wait), so LVW trains in one command."""
    if not cfg.attention_maps or not Path(cfg.attention_maps).is_dir():
        return cfg.attention_maps
    target = out / COMPUTED_TARGETS
    if is_main and not target.exists():
        from ..prototypes.gradcam_targets import compute_gradcam_targets

        compute_gradcam_targets(cfg.attention_maps, cfg.data, split="train", data_options=cfg.data_options,
                                out=target)
    barrier()
    return str(target)


def build_run_data(cfg: TrainConfig, *, attention_maps: str | None = None) -> RunData:
    """Train and val datasets with their transforms; checks the class count against ``cfg``.

    With ``resize: detr`` images keep their aspect ratio, so batches are padded by
    :func:`~seethrough.data.base.collate` and carry a ``padding_mask``. With
    ``attention_maps`` (LVW) every training sample carries its base model's Grad-CAM map,
    moved with the image by the augmentation (validation needs none); ``attention_maps``
    overrides the file (see :func:`attention_maps_file`).
    """
    attention_maps = attention_maps or cfg.attention_maps
    mode = "L" if cfg.in_chans == 1 else "RGB"
    common = dict(mode=mode, on_bad_image=cfg.on_bad_image, **cfg.data_options)
    train = build_dataset(cfg.data, "train", **common)
    if attention_maps:
        from ..prototypes.gradcam_targets import WithAttentionTargets, load_gradcam_targets

        train = WithAttentionTargets(train, load_gradcam_targets(attention_maps))
    val = build_dataset(cfg.val_data or cfg.data, "val", **common)
    mean, std = normalization(cfg, train)
    geometry: dict[str, Any] = dict(mean=mean, std=std, resize=cfg.resize, resize_options=cfg.resize_options)
    train.transform = build_transform(cfg.img_size, train=True, augment=cfg.augment, **geometry)
    if attention_maps and train.transform.photometric:
        raise ValueError(f"--augment {cfg.augment} has photometric ops (blur) that would alter the Grad-CAM targets of "
                         f"attention_maps {cfg.attention_maps}; use --augment none, flip, crop-flip or castream")
    val.transform = build_transform(cfg.img_size, train=False, **geometry)
    if cfg.num_classes is not None and cfg.num_classes != train.num_classes:
        raise ValueError(
            f"--num-classes {cfg.num_classes} does not match --data {cfg.data}, which has "
            f"{train.num_classes} classes; drop --num-classes (it is read from the data) or "
            "select classes with the dataset's num_classes option"
        )
    if val.num_classes != train.num_classes:
        raise ValueError(
            f"validation data has {val.num_classes} classes but training data has {train.num_classes}"
        )
    return RunData(train, val, mean, std)


def build_push_data(cfg: TrainConfig, mean: Sequence[float], std: Sequence[float],
                    classes: list[str] | None = None) -> ImageDataset:
    """The push set of prototype models, with the evaluation transform (no augmentation): the
    train split of ``cfg.push_data`` when given — ProtoPNet's main.py:59-78 trains on the
    offline-augmented ``train_cropped_augmented`` and pushes onto the unaugmented
    ``train_cropped`` — else the train split of ``cfg.data``. ``classes`` (the training data's)
    must match the push set's."""
    mode = "L" if cfg.in_chans == 1 else "RGB"
    spec = cfg.push_data or cfg.data
    dataset = build_dataset(spec, "train", mode=mode, on_bad_image=cfg.on_bad_image, **cfg.data_options)
    if classes is not None and list(dataset.classes) != list(classes):
        raise ValueError(f"--push-data {spec} has classes {dataset.classes[:5]}... ({dataset.num_classes}) but the "
                         f"training data has {list(classes)[:5]}... ({len(classes)}); push onto the same classes "
                         "(e.g. the unaugmented copy of the training folder)")
    dataset.transform = build_transform(cfg.img_size, train=False, mean=mean, std=std, resize=cfg.resize,
                                        resize_options=cfg.resize_options)
    return dataset


def make_loader(dataset: ImageDataset, cfg: TrainConfig, *, train: bool, rank: int, world_size: int,
                pin_memory: bool = False) -> DataLoader:
    """A loader over ``(epoch, index)`` keys: per-epoch permutation, per-sample augmentation seed."""
    sampler = EpochSampler(len(dataset), shuffle=train, seed=cfg.seed, rank=rank, world_size=world_size,
                           drop_last=train and cfg.drop_last)
    return DataLoader(
        SeededDataset(dataset, cfg.seed), batch_size=cfg.batch_size, sampler=sampler,
        collate_fn=collate, num_workers=cfg.workers, drop_last=train and cfg.drop_last,
        persistent_workers=cfg.workers > 0, pin_memory=pin_memory,
    )


def setup_loader(fabric: Fabric, loader: DataLoader) -> DataLoader:
    """``loader`` moved to Fabric's device, keeping seethrough's own sharded sampler."""
    return cast(DataLoader, fabric.setup_dataloaders(loader, use_distributed_sampler=False))
