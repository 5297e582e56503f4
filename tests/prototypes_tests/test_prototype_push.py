"""push_prototypes: every prototype lands exactly on the nearest latent patch of the push set."""
from __future__ import annotations

import json

import pytest
import torch
from prototype_fixtures import NUM_CLASSES, make_dataset, make_loader, make_model
from torch.utils.data import Subset

from seethrough.models.heads.prototype import squared_distances
from seethrough.prototypes import NearestPatchSearch, PushResult, push_prototypes


def all_latents(model, dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent maps N×D×h×w of every image (one batch) and the labels."""
    batch = next(iter(make_loader(dataset, batch_size=len(dataset))))
    with torch.no_grad():
        return model.latent(batch["image"]), batch["label"]


def brute_force(model, dataset, class_specific: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per prototype: the smallest distance over every allowed patch and its (index, y, x)."""
    latent, labels = all_latents(model, dataset)
    d = squared_distances(latent, model.prototypes)  # N×P×h×w
    if class_specific:
        own = model.prototype_class_identity.argmax(1)
        d = d.masked_fill((labels[:, None] != own[None, :])[:, :, None, None], float("inf"))
    n, p, h, w = d.shape
    best = torch.empty(p, 3, dtype=torch.long)
    values = torch.empty(p)
    for j in range(p):  # a plain loop over prototypes: independent of the implementation under test
        flat = int(d[:, j].argmin())
        best[j] = torch.tensor([flat // (h * w), (flat % (h * w)) // w, flat % w])
        values[j] = d[:, j].min()
    return values, best


@pytest.mark.parametrize("name", ["protopnet", "lvw"])
def test_push_finds_the_true_minimum_patch(name, dataset):
    model = make_model(name)
    class_specific = model.config["class_specific"]
    values, where = brute_force(model, dataset, class_specific)
    result = push_prototypes(model, make_loader(dataset, batch_size=3))
    assert result.class_specific == class_specific and result.num_images == len(dataset)
    assert torch.equal(torch.stack([result.index, result.y, result.x], 1), where)
    torch.testing.assert_close(result.distance, values, rtol=1e-5, atol=1e-6)
    assert result.latent_size == (4, 4)


def test_prototypes_are_latent_patches_of_the_push_set(dataset):
    model = make_model()
    loader = make_loader(dataset, batch_size=3)
    result = push_prototypes(model, loader)
    with torch.no_grad():  # the same batches again: the same numbers, bit for bit
        latents = {int(i): z for batch in loader for i, z in zip(batch["index"], model.latent(batch["image"]))}
    for j in range(model.num_prototypes):
        patch = latents[int(result.index[j])][:, result.y[j], result.x[j]]
        assert torch.equal(model.prototypes[j, :, 0, 0], patch)
    latent, _ = all_latents(model, dataset)  # one batch of everything: equal up to rounding
    patches = latent[result.index, :, result.y, result.x]
    torch.testing.assert_close(model.prototypes[:, :, 0, 0], patches, rtol=0, atol=1e-5)
    d = squared_distances(latent, model.prototypes).flatten(2).min(dim=-1).values.min(dim=0).values
    assert bool((d < 1e-4).all()), "every prototype now has a patch at distance ~0"


def test_class_specific_sources_have_the_prototype_class(dataset):
    model = make_model("protopnet")
    result = push_prototypes(model, make_loader(dataset))
    own = model.prototype_class_identity.argmax(1)
    assert torch.equal(result.label, own)
    assert all(dataset[int(i)]["label"] == int(c) for i, c in zip(result.index, own))


def test_batch_size_does_not_change_the_push(dataset):
    small, large = make_model(), make_model()
    a = push_prototypes(small, make_loader(dataset, batch_size=2))
    b = push_prototypes(large, make_loader(dataset, batch_size=5))
    for key in ("index", "label", "y", "x"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key
    torch.testing.assert_close(small.prototypes, large.prototypes, rtol=0, atol=1e-6)
    torch.testing.assert_close(a.distance, b.distance, rtol=1e-5, atol=1e-6)


def test_push_restores_training_mode_and_keeps_no_grad(dataset):
    model = make_model().train()
    push_prototypes(model, make_loader(dataset))
    assert model.training and model.prototypes.grad is None and model.prototypes.requires_grad


def test_result_json_round_trip(dataset, tmp_path):
    result = push_prototypes(make_model(), make_loader(dataset))
    text = result.to_json(tmp_path / "push.json")
    back = PushResult.from_dict(json.loads((tmp_path / "push.json").read_text()))
    assert text == back.to_json()
    assert torch.equal(back.index, result.index) and back.latent_size == result.latent_size


def test_empty_push_set_is_refused(dataset):
    model = make_model()
    before = model.prototypes.detach().clone()
    with pytest.raises(ValueError, match="push set is empty"):
        push_prototypes(model, make_loader(Subset(dataset, [])))
    with pytest.raises(ValueError, match="push set is empty"):
        push_prototypes(model, [{"skipped": 2}])  # every image of the only batch was unreadable
    assert torch.equal(model.prototypes, before)


def test_class_count_mismatch_is_refused():
    with pytest.raises(ValueError, match="has 4 classes but the model was built for 3"):
        push_prototypes(make_model(), make_loader(make_dataset(num_classes=4)))


def test_missing_class_is_refused_and_named(dataset):
    model = make_model("protopnet")
    before = model.prototypes.detach().clone()
    no_last_class = Subset(dataset, [i for i in range(len(dataset)) if i % NUM_CLASSES != NUM_CLASSES - 1])
    with pytest.raises(ValueError, match=r"no image of 1 class\(es\).*: 2 \(" + dataset.classes[2]):
        push_prototypes(model, make_loader(no_last_class))
    assert torch.equal(model.prototypes, before), "a refused push leaves the prototypes unchanged"
    result = push_prototypes(model, make_loader(no_last_class), class_specific=False)  # any image will do
    assert int(result.label.max()) < NUM_CLASSES - 1


def test_nan_distances_are_refused(dataset):
    model = make_model()
    model.prototypes.data.fill_(float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        push_prototypes(model, make_loader(dataset))


class Recorder:
    """A fabric of world size 2 that records this rank's state and 'gathers' it with itself."""

    world_size = 2

    def __init__(self) -> None:
        self.state = None

    def all_gather(self, state: dict) -> dict:
        self.state = {k: v.clone() for k, v in state.items()}
        return {k: torch.stack([v, v]) for k, v in state.items()}


class TwoRanks:
    """A fabric of world size 2 whose other rank had ``other`` (placed first or second)."""

    world_size = 2

    def __init__(self, other: dict, other_first: bool) -> None:
        self.other, self.other_first = other, other_first

    def all_gather(self, state: dict) -> dict:
        pairs = {k: (self.other[k], v) if self.other_first else (v, self.other[k]) for k, v in state.items()}
        return {k: torch.stack(pair) for k, pair in pairs.items()}


def test_ddp_ranks_agree_with_a_single_process_push(dataset):
    reference = make_model()
    expected = push_prototypes(reference, make_loader(dataset))
    shards = [Subset(dataset, list(range(r, len(dataset), 2))) for r in range(2)]  # the EpochSampler split
    local = []
    for shard in shards:
        recorder = Recorder()
        push_prototypes(make_model(), make_loader(shard), fabric=recorder)
        local.append(recorder.state)
    for rank in range(2):  # each rank gathers the other's state: both set the same prototypes
        model = make_model()
        result = push_prototypes(model, make_loader(shards[rank]), fabric=TwoRanks(local[1 - rank], rank == 1))
        for key in ("index", "label", "y", "x"):
            assert torch.equal(getattr(result, key), getattr(expected, key)), (rank, key)
        assert result.num_images == len(dataset)
        torch.testing.assert_close(model.prototypes, reference.prototypes, rtol=0, atol=1e-6)


def test_rank_merge_breaks_ties_by_dataset_index():
    search = NearestPatchSearch(torch.zeros(2, 3, 1, 1), None)
    gathered = {"distance": torch.tensor([[1.0, 2.0], [1.0, 3.0]]), "vector": torch.arange(12.0).reshape(2, 2, 3),
                "index": torch.tensor([[7, 1], [4, 0]]), "label": torch.zeros(2, 2, dtype=torch.long),
                "y": torch.zeros(2, 2, dtype=torch.long), "x": torch.zeros(2, 2, dtype=torch.long),
                "count": torch.tensor([[5], [6]]), "nan_batches": torch.zeros(2, 1, dtype=torch.long),
                "latent_hw": torch.tensor([[4, 4], [4, 4]])}
    search.merge(gathered)
    assert search.index.tolist() == [4, 1] and search.distance.tolist() == [1.0, 2.0]
    assert torch.equal(search.vector, torch.stack([gathered["vector"][1, 0], gathered["vector"][0, 1]]))
    assert int(search.count) == 11



def test_push_through_fabric_wrappers(dataset):
    """A Fabric-wrapped model and loader (one process): the same push as the plain ones."""
    from lightning.fabric import Fabric

    fabric = Fabric(accelerator="cpu", devices=1)
    plain, wrapped = make_model(), make_model()
    expected = push_prototypes(plain, make_loader(dataset))
    model = fabric.setup_module(wrapped)
    result = push_prototypes(model, fabric.setup_dataloaders(make_loader(dataset), use_distributed_sampler=False),
                             fabric=fabric)
    for key in ("index", "y", "x"):
        assert torch.equal(getattr(result, key), getattr(expected, key)), key
    assert torch.equal(wrapped.prototypes, plain.prototypes)
    with pytest.raises(ValueError, match="has 4 classes"):  # the dataset is found through the Fabric loader
        push_prototypes(model, fabric.setup_dataloaders(make_loader(make_dataset(num_classes=4))), fabric=fabric)


def test_labels_outside_the_model_classes_are_refused(dataset):
    batch = next(iter(make_loader(dataset)))
    batch["label"] = batch["label"] + NUM_CLASSES  # a plain list of batches: no dataset to ask for its class count
    with pytest.raises(ValueError, match=r"labels \[3, 4, 5\] are outside \[0, 3\)"):
        push_prototypes(make_model(), [batch])
