"""The stateful Metric: per-sample state, NaN accounting, duplicates, protocol checks, DDP gather."""
from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from seethrough.core.inputs import check_maps
from seethrough.metrics import Metric


def mean_value(model, images, maps, targets, *, offset: float = 0.0, return_details: bool = False):
    """A toy metric: the mean of each map plus ``offset``; NaN for non-finite maps."""
    maps, finite = check_maps(maps, images)
    values = maps.flatten(1).mean(1) + offset
    values = torch.where(finite, values, torch.full_like(values, math.nan))
    if return_details:
        return values, {"curve": maps.flatten(1)[:, :3]}
    return values


def batch(values: list[float], size: int = 4):
    maps = torch.stack([torch.full((size, size), v) for v in values])
    return torch.zeros(len(values), 3, size, size), maps, torch.zeros(len(values), dtype=torch.long)


def test_compute_summarises_per_sample_values_and_counts_nan():
    metric = Metric(mean_value, offset=1.0)
    images, maps, targets = batch([0.0, 1.0, float("nan")])
    metric.update(None, images, maps, targets, sample_ids=[5, 6, 7])
    images, maps, targets = batch([2.0])
    metric.update(None, images, maps, targets, sample_ids=[1])
    summary = metric.compute()
    assert summary.sample_ids.tolist() == [1, 5, 6, 7]
    assert summary.count == 3 and summary.nan_count == 1 and summary.total == 4
    assert summary.mean == pytest.approx(2.0)            # (3 + 1 + 2) / 3, NaN excluded
    assert summary.std == pytest.approx(1.0)             # sample std of 1, 2, 3
    assert math.isnan(summary.values[3])
    assert summary.details["curve"].shape == (4, 3)
    assert summary.as_dict()["protocol"] == {"offset": 1.0}
    metric.reset()
    assert metric.compute().total == 0 and math.isnan(metric.compute().mean)


def test_duplicate_sample_ids_count_once():
    metric = Metric(mean_value)
    images, maps, targets = batch([1.0, 3.0])
    metric.update(None, images, maps, targets, sample_ids=[0, 1])
    metric.update(None, images[:1], maps[:1] * 0 + 9.0, targets[:1], sample_ids=[0])   # a padded repeat
    summary = metric.compute()
    assert summary.total == 2 and summary.values.tolist() == [1.0, 3.0]


def test_unknown_protocol_parameter_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown protocol parameter\(s\) ofset.*valid: offset"):
        Metric(mean_value, ofset=1.0)


def test_unknown_metric_name_is_an_error():
    with pytest.raises(ValueError, match="unknown metric 'insert'"):
        Metric("insert")


def test_all_values_nan_gives_nan_mean_and_none_in_json():
    metric = Metric(mean_value)
    images, maps, targets = batch([float("inf")])
    metric.update(None, images, maps, targets, sample_ids=[0])
    entry = metric.compute().as_dict()
    assert entry["mean"] is None and entry["nan_count"] == 1 and entry["count"] == 0


def _gather_worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        metric = Metric(mean_value)
        ids = list(range(rank, 6, world)) + ([0] if rank == 1 else [])   # rank 1 repeats sample 0 (padding)
        images, maps, targets = batch([float(i) for i in ids])
        metric.update(None, images, maps, targets, sample_ids=ids)
        summary = metric.compute()
        if rank == 0:
            torch.save({"ids": summary.sample_ids, "values": summary.values, "mean": summary.mean,
                        "curve": summary.details["curve"]}, out_file)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_gather_every_sample_once(tmp_path):
    mp.spawn(_gather_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "out.pt")), nprocs=2)
    result = torch.load(tmp_path / "out.pt")
    assert result["ids"].tolist() == [0, 1, 2, 3, 4, 5]
    assert result["values"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert result["mean"] == pytest.approx(2.5)
    assert result["curve"].shape == (6, 3)
