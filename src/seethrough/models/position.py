"""DETR's sine position encoding (Carion et al., 2020), as SCOUTER and INTR use it."""
from __future__ import annotations

import math

import torch

#: DETR defaults: frequency base, normalization epsilon, and the 2π scale of normalized coordinates.
TEMPERATURE, EPS, SCALE = 10_000.0, 1e-6, 2 * math.pi


def sine_position_encoding(height: int, width: int, dim: int, *, device=None, dtype=torch.float32,
                           temperature: float = TEMPERATURE) -> torch.Tensor:
    """``1×dim×h×w`` encoding: ``dim/2`` channels for y then ``dim/2`` for x.

    Coordinates are 1..h (1..w) normalized to (0, 2π]: ``e_y = y / (h + ε) · 2π``; channel
    ``i`` of an axis is ``sin(e / T^(2⌊i/2⌋/(dim/2)))`` for even ``i`` and ``cos(...)`` for odd ``i``
    (sin/cos interleaved), with ``T = temperature``.
    """
    if dim % 2:
        raise ValueError(f"the sine position encoding needs an even dimension, got {dim}")
    feats = dim // 2
    y = torch.arange(1, height + 1, device=device, dtype=torch.float32)
    x = torch.arange(1, width + 1, device=device, dtype=torch.float32)
    y = y / (height + EPS) * SCALE
    x = x / (width + EPS) * SCALE
    steps = torch.arange(feats, device=device, dtype=torch.float32)
    freqs = temperature ** (2 * torch.div(steps, 2, rounding_mode="floor") / feats)
    angle_y = y[:, None] / freqs  # h×feats
    angle_x = x[:, None] / freqs  # w×feats
    even = torch.arange(feats, device=device) % 2 == 0
    enc_y = torch.where(even, angle_y.sin(), angle_y.cos())
    enc_x = torch.where(even, angle_x.sin(), angle_x.cos())
    pos = torch.cat([enc_y[:, None, :].expand(height, width, feats),
                     enc_x[None, :, :].expand(height, width, feats)], -1)
    return pos.permute(2, 0, 1).unsqueeze(0).to(dtype)
