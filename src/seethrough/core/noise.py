"""Per-sample random streams, so perturbation metrics do not depend on batch or world size.

Every random draw for sample ``i`` comes from a generator seeded by ``(seed, sample_id,
stream)`` through numpy's ``SeedSequence`` — the same sample gets the same noise whether it
is evaluated alone, in a batch of 256 or on rank 3 of 8. (Values differ between CPU and
CUDA generators; record the device with the results.)
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

#: Random streams in use, one per consumer, so two consumers never share draws for a sample.
INFIDELITY_STREAM = 11
SENSITIVITY_STREAM = 12
RANDOMIZATION_STREAM = 13
RISE_STREAM = 0x52495345  # "RISE" in ASCII


def sample_generator(seed: int, sample_id: int, stream: int = 0, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator for one sample, seeded by ``(seed, sample_id, stream)``."""
    state = np.random.SeedSequence([int(seed), int(sample_id), int(stream)]).generate_state(2, dtype=np.uint32)
    generator = torch.Generator(device=device)
    generator.manual_seed(int(state[0]) << 32 | int(state[1]))
    return generator


def per_sample(draw: Callable[[torch.Generator], torch.Tensor], sample_ids: Sequence[int] | torch.Tensor, *,
               seed: int, stream: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """Stack ``draw(generator)`` over samples, each with its own generator (``B×...``)."""
    ids = [int(i) for i in torch.as_tensor(sample_ids).reshape(-1).tolist()]
    return torch.stack([draw(sample_generator(seed, i, stream, device)) for i in ids])
