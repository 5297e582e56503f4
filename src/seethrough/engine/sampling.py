"""Deterministic data order and augmentation, independent of workers, batch and world size.

Every epoch's order is a permutation seeded by ``(seed, epoch)``; each rank takes its
strided shard; a resumed run skips the samples already seen. Each sample's augmentation
RNG is seeded by ``(seed, epoch, index)``, so a sample is augmented identically whichever
worker or process loads it — which is what makes mid-epoch resume exact.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import Dataset, Sampler

#: Multipliers that fold (seed, epoch, index) into one 63-bit augmentation seed.
_SEED_MIX = (1_000_003, 998_244_353)
_SEED_MASK = (1 << 63) - 1


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(epoch, index)`` pairs for one rank.

    Args:
        size: dataset length.
        shuffle: permute per epoch (training) or keep order (evaluation).
        seed: run seed.
        rank, world_size: this process's shard (``indices[rank::world_size]``).
        drop_last: training drops the tail so every rank sees the same number of samples;
            evaluation keeps every sample exactly once (shards may differ by one).
    """

    def __init__(self, size: int, *, shuffle: bool, seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False) -> None:
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch = 0
        self.skip = 0

    def start_epoch(self, epoch: int, *, skip: int = 0) -> None:
        """Select the epoch's permutation (not named ``set_epoch``: Fabric would call that
        itself with its own counter); ``skip`` samples of this rank's shard were already seen."""
        self.epoch, self.skip = epoch, skip

    def _shard(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * _SEED_MIX[0] + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        if self.drop_last:
            order = order[: (self.size // self.world_size) * self.world_size]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self._shard()[self.skip :]:
            yield self.epoch, index

    def __len__(self) -> int:
        per_rank = self.size // self.world_size if self.drop_last else math.ceil(
            max(self.size - self.rank, 0) / self.world_size)
        return max(per_rank - self.skip, 0)


class SeededDataset(Dataset):
    """Wraps a dataset so ``ds[(epoch, index)]`` runs its transform under a per-sample seed."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        sample_seed = ((self.seed * _SEED_MIX[0] + epoch) * _SEED_MIX[1] + index) & _SEED_MASK
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed)
            return self.dataset[index]
