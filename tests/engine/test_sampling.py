import torch

from seethrough.engine.sampling import EpochSampler, SeededDataset


def test_shards_are_disjoint_and_cover_the_epoch():
    shards = [list(EpochSampler(10, shuffle=True, seed=3, rank=r, world_size=3, drop_last=True)) for r in range(3)]
    indices = [i for shard in shards for _, i in shard]
    assert len(indices) == len(set(indices)) == 9
    assert all(len(s) == 3 for s in shards)


def test_eval_sharding_keeps_every_sample_once():
    shards = [list(EpochSampler(10, shuffle=False, rank=r, world_size=3)) for r in range(3)]
    assert sorted(i for shard in shards for _, i in shard) == list(range(10))
    assert [len(EpochSampler(10, shuffle=False, rank=r, world_size=3)) for r in range(3)] == [4, 3, 3]


def test_epochs_differ_and_skip_resumes_the_same_order():
    sampler = EpochSampler(20, shuffle=True, seed=0)
    sampler.start_epoch(1)
    first = list(sampler)
    sampler.start_epoch(2)
    assert list(sampler) != first
    sampler.start_epoch(1, skip=5)
    assert list(sampler) == first[5:] and len(sampler) == 15


class Noisy(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.rand(3)


def test_augmentation_seed_depends_on_epoch_and_index_only():
    ds = SeededDataset(Noisy(), seed=0)
    a = ds[(0, 1)]
    torch.rand(100)  # global RNG use elsewhere must not matter
    assert torch.equal(ds[(0, 1)], a)
    assert not torch.equal(ds[(1, 1)], a) and not torch.equal(ds[(0, 2)], a)
